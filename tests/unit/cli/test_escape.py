"""ssh's escape sequences at the technician's shell: only right after a newline."""

from __future__ import annotations

import pytest

from toolkit.cli.shell import HELP, EscapeReader


@pytest.mark.parametrize(
    ("typed", "sent", "shown", "left"),
    [
        ([b"~."], b"", b"", True),  # at the very start
        ([b"ls\r", b"~", b"."], b"ls\r", b"", True),  # after Enter, key by key
        ([b"cd ~."], b"cd ~.", b"", False),  # inside a line: just a tilde
        ([b"~~."], b"~.", b"", False),  # ~~ sends one ~
        ([b"~x"], b"~x", b"", False),  # any other key: both go
        ([b"\n~?"], b"\n", HELP, False),  # help, shown locally only
        ([b"~.ls"], b"", b"", True),  # nothing after the escape is sent
    ],
)
def test_escapes(typed: list[bytes], sent: bytes, shown: bytes, left: bool) -> None:
    reader = EscapeReader()
    out, local = b"", b""
    for chunk in typed:
        send, show = reader.feed(chunk)
        out, local = out + send, local + show
    assert (out, local, reader.left) == (sent, shown, left)
