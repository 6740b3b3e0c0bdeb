"""Which typed bytes a transcript keeps: the echo rule, byte by byte, in every terminal mode."""

from __future__ import annotations

from toolkit.protocol.echo import ECHOED, HIDDEN, SELF_ECHO, EchoJudge, characters


def test_characters_skip_control_bytes_and_escape_sequences() -> None:
    assert characters(b"ls -l\r") == b"ls -l"
    assert characters(b"\x1b[A\x1b[1;5C\x1bOP\t\x7f\x03") == b""
    assert characters(b"\x1bb") == b""  # Alt-b
    assert characters("café".encode()) == "café".encode()


def test_echoed_input_is_recorded_and_hidden_input_withheld_in_order() -> None:
    judge = EchoJudge()
    judge.typed(b"echo hi\r", ECHOED, 0.0)
    judge.typed(b"hunter2\r", HIDDEN, 0.1)
    judge.typed(b"ls\r", ECHOED, 0.2)
    assert judge.take() == [(b"echo hi\r", True), (b"hunter2\r", False), (b"ls\r", True)]


def test_self_echo_input_is_recorded_once_the_program_echoes_it() -> None:
    judge = EchoJudge()
    judge.typed(b"l", SELF_ECHO, 0.0)
    assert judge.take() == []  # waits for its echo
    judge.shown(b"\x1b[?2004hl")
    assert judge.take() == [(b"l", True)]


def test_self_echo_input_shown_as_stars_is_withheld_after_the_window() -> None:
    """sudo with pwfeedback: ECHO off, non-canonical, and a * for each key."""
    judge = EchoJudge(window=0.3)
    for i, key in enumerate(b"pw"):
        judge.typed(bytes([key]), SELF_ECHO, i * 0.01)
        judge.shown(b"*")
    judge.typed(b"\r", SELF_ECHO, 0.05)
    judge.expire(0.2)
    assert judge.take() == []  # still inside the window
    judge.expire(0.4)
    assert judge.take() == [(b"p", False), (b"w", False), (b"\r", True)]


def test_a_later_chunk_never_overtakes_one_waiting_for_its_echo() -> None:
    judge = EchoJudge()
    judge.typed(b"x", SELF_ECHO, 0.0)
    judge.typed(b"y\r", ECHOED, 0.01)
    assert judge.take() == []
    judge.shown(b"x")
    assert judge.take() == [(b"x", True), (b"y\r", True)]


def test_control_keys_alone_carry_no_secret_and_are_recorded_at_once() -> None:
    judge = EchoJudge()
    judge.typed(b"\x1b[A", SELF_ECHO, 0.0)
    judge.typed(b"\t", SELF_ECHO, 0.0)
    assert judge.take() == [(b"\x1b[A", True), (b"\t", True)]


def test_a_paste_must_come_back_whole_and_in_order() -> None:
    judge = EchoJudge()
    judge.typed(b"abc", SELF_ECHO, 0.0)
    judge.shown(b"c b a")  # every byte there, but not in order: only "a"... then nothing
    judge.expire(1.0)
    assert judge.take() == [(b"abc", False)]
    judge.typed(b"abc", SELF_ECHO, 2.0)
    judge.shown(b"a\x1b[1mb")
    judge.shown(b"c")
    assert judge.take() == [(b"abc", True)]


def test_at_the_end_whatever_waits_is_withheld() -> None:
    judge = EchoJudge()
    judge.typed(b"secret", SELF_ECHO, 0.0)
    assert judge.next_deadline() is not None
    assert judge.give_up() == [(b"secret", False)]
    assert judge.next_deadline() is None
