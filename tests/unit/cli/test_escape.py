"""ssh's escape sequences at the technician's shell: only right after a newline."""

from __future__ import annotations

from toolkit.cli.shell import HELP, EscapeReader


def test_tilde_dot_at_the_start_leaves() -> None:
    reader = EscapeReader()
    assert reader.feed(b"~.") == (b"", b"")
    assert reader.left


def test_tilde_dot_after_enter_leaves_and_sends_what_came_before() -> None:
    reader = EscapeReader()
    assert reader.feed(b"ls\r") == (b"ls\r", b"")
    assert not reader.left
    assert reader.feed(b"~") == (b"", b"")  # held: it may start an escape
    assert reader.feed(b".") == (b"", b"")
    assert reader.left


def test_tilde_inside_a_line_is_just_a_tilde() -> None:
    reader = EscapeReader()
    assert reader.feed(b"cd ~.") == (b"cd ~.", b"")
    assert not reader.left


def test_double_tilde_sends_one_and_other_keys_send_both() -> None:
    reader = EscapeReader()
    assert reader.feed(b"~~.") == (b"~.", b"")
    reader = EscapeReader()
    assert reader.feed(b"~x") == (b"~x", b"")
    assert not reader.left


def test_tilde_question_mark_shows_help_locally() -> None:
    reader = EscapeReader()
    assert reader.feed(b"\n~?") == (b"\n", HELP)
    assert not reader.left
