"""printable() and printable_lines(): what reaches a terminal from elsewhere."""

from __future__ import annotations

import pytest

from toolkit.text import LIMIT, PrintableStream, printable, printable_lines

ESC = "\x1b"


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain text, é and 日本", "plain text, é and 日本"),
        (f"{ESC}[2A{ESC}[1G{ESC}[2K", "\\x1b[2A\\x1b[1G\\x1b[2K"),
        ("bell\x07 del\x7f nul\x00", "bell\\x07 del\\x7f nul\\x00"),
        ("c1 csi\x9b2J", "c1 csi\\x9b2J"),
        ("line\nbreak\rreturn\ttab", "line\\nbreak\\rreturn\\ttab"),
        ("rtl \u202eevil\u202c zwj\u200d", "rtl \\u202eevil\\u202c zwj\\u200d"),
        ("separators \u2028\u2029", "separators \\u2028\\u2029"),
        ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
        ("private \ue000 use", "private \\ue000 use"),
        # A backslash is kept: a Windows path or a source file reads as written.
        ("C:\\Users\\x", "C:\\Users\\x"),
    ],
)
def test_printable_escapes_what_a_terminal_would_obey(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(raw).isprintable()


def test_printable_cuts_long_text_and_says_so() -> None:
    assert printable("x" * (LIMIT + 1)) == "x" * LIMIT + "..."
    assert printable("x" * LIMIT) == "x" * LIMIT
    assert printable("abcdef", 3) == "abc..."
    assert printable("y" * 10_000, None) == "y" * 10_000


def test_printable_cuts_before_escaping_so_an_escape_is_never_split() -> None:
    assert printable(ESC * 10, 2) == "\\x1b\\x1b..."


def test_printable_takes_any_value() -> None:
    assert printable(42) == "42"
    assert printable(["a\x1b"]) == "['a\\x1b']"


def test_printable_lines_keeps_lines_and_tabs_and_escapes_the_rest() -> None:
    data = b"one\ttwo\r\nthree \x1b[31mred\x1b[0m\nbad \xff byte\n\n"
    assert printable_lines(data) == "one\ttwo\nthree \\x1b[31mred\\x1b[0m\nbad \ufffd byte"
    assert printable_lines("a\rb") == "a\\rb"


def test_printable_stream_is_the_same_wherever_the_pieces_are_cut() -> None:
    data = "é ok\r\n\x1b[2J日本\tx\r\nlast\n".encode()
    whole = PrintableStream().feed(data, final=True)
    assert whole == "é ok\n\\x1b[2J日本\tx\nlast\n"
    for cut in range(1, len(data)):
        stream = PrintableStream()
        pieces = stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.feed(b"", final=True)
        assert pieces == whole, cut


def test_printable_stream_shows_a_lone_carriage_return_once_the_stream_ends() -> None:
    stream = PrintableStream()
    assert stream.feed(b"50%\r") == "50%"
    assert stream.feed(b"", final=True) == "\\r"
