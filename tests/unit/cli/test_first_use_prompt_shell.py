"""``~^Z`` detaches; the modes a full-screen program set are undone on the way out (issue 15)."""

from __future__ import annotations

import pytest

from toolkit.cli.shell import Attachment, EscapeReader, TerminalModes


@pytest.mark.parametrize(
    ("typed", "sent", "left", "detached"),
    [
        ([b"~\x1a"], b"", True, True),
        ([b"ls\r", b"~", b"\x1a"], b"ls\r", True, True),
        ([b"a\x1a"], b"a\x1a", False, False),  # Ctrl-Z inside a line goes to the shell
        ([b"~."], b"", True, False),
    ],
)
def test_tilde_ctrl_z_detaches(typed: list[bytes], sent: bytes, left: bool, detached: bool) -> None:
    reader = EscapeReader()
    out = b"".join(reader.feed(chunk)[0] for chunk in typed)
    assert (out, reader.left, reader.detached) == (sent, left, detached)


def test_nothing_changed_restores_colours_only() -> None:
    modes = TerminalModes()
    modes.feed(b"plain output\r\n\x1b[31mred\x1b[0m")
    assert modes.restore() == b"\x0f\x1b(B\x1b[0m"  # ASCII characters and colours, always
    assert modes.reapply() == b""
    assert not modes.full_screen


def test_a_full_screen_program_s_modes_are_undone_alternate_screen_first() -> None:
    modes = TerminalModes()
    modes.feed(b"\x1b[?25l\x1b[?1000;1006h\x1b=\x1b[?1049h")
    assert modes.full_screen
    assert modes.restore() == (b"\x1b[?1049l\x1b[?25h\x1b[?1000l\x1b[?1006l\x1b>\x0f\x1b(B\x1b[0m")
    assert modes.reapply() == b"\x1b[?1049h\x1b[?25l\x1b[?1000h\x1b[?1006h\x1b="


def test_modes_the_program_undid_itself_are_left_alone() -> None:
    modes = TerminalModes()
    modes.feed(b"\x1b[?1049h\x1b[?25l")
    modes.feed(b"\x1b[?25h\x1b[?1049l\x1b>")
    assert modes.restore() == b"\x0f\x1b(B\x1b[0m"


def test_a_sequence_cut_between_chunks_still_counts() -> None:
    modes = TerminalModes()
    for chunk in (b"text\x1b[", b"?10", b"49h more"):
        modes.feed(chunk)
    assert modes.full_screen


def test_output_while_detached_is_kept_and_shown_on_return() -> None:
    shown: list[bytes] = []
    attachment = Attachment()
    attachment.attach(shown.append)
    attachment.output(b"\x1b[?1049hvim")
    attachment.detach()
    attachment.output(b" meanwhile")
    assert b"".join(shown) == b"\x1b[?1049hvim"
    shown.clear()
    attachment.attach(shown.append)
    assert b"".join(shown) == b"\x1b[?1049h meanwhile"


def test_output_while_detached_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import toolkit.cli.shell as shell

    monkeypatch.setattr(shell, "DETACHED_OUTPUT", 8)
    attachment = Attachment()
    attachment.output(b"0123456789abcdef")
    shown: list[bytes] = []
    attachment.attach(shown.append)
    said = b"".join(shown)
    assert said.endswith(b"89abcdef") and b"01234567" not in said
    assert b"8 bytes of the shell's output while detached are not shown" in said


def test_modes_that_would_hide_or_garble_toolkit_s_next_lines_are_undone() -> None:
    # A shell may leave autowrap off (toolkit's next lines cut at the screen's edge, so the
    # end of a warning hides), reverse video, origin mode, a scroll region, line drawing.
    import pyte
    from pyte import modes as mo

    left = b"\x1b[?7l\x1b[?5h\x1b[?6h\x1b[3;5r\x0e\x1b(0\x1b[?1049h"
    modes = TerminalModes()
    modes.feed(left)
    undo = modes.restore()
    assert undo.startswith(b"\x1b[?1049l") and undo.endswith(b"\x0f\x1b(B\x1b[0m")
    screen = pyte.Screen(40, 10)
    stream = pyte.ByteStream(screen)
    stream.feed(b"line 1\r\n" + left + undo)
    assert mo.DECAWM in screen.mode and mo.DECSCNM not in screen.mode
    assert mo.DECOM not in screen.mode and screen.margins in (None, (0, 9))
    assert screen.cursor.y == 9  # on the bottom line, not home over what was there
    stream.feed(b"x" * 45)  # wraps again
    assert screen.display[9].startswith("x" * 40) or screen.display[8].startswith("x" * 40)
    modes.feed(b"\x1b[r")  # a program that resets its region itself
    assert not modes.region
