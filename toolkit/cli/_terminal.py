"""Reading from and writing to the person at the terminal, safely.

A prompt in a thread (input(), rich's Prompt) cannot be taken back: when
Ctrl-C or the other side ends things while it waits, the thread still holds
stdin as Python exits. :class:`TerminalLines` reads on the event loop instead.
"""

from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING, TextIO

from toolkit.text import PrintableStream

if TYPE_CHECKING:
    import asyncio


class TerminalLines:
    """Lines typed at the terminal, read on the event loop: a wait that can be cancelled.

    A prompt in a thread (input(), rich's Prompt) cannot be taken back: when Ctrl-C
    or the other side ends things while it waits, the thread still holds stdin as
    Python exits, a fatal error at shutdown. Reading the file descriptor when the
    loop says it is readable leaves nothing behind; the terminal's own line editing
    still applies. Used for the customer's approvals and the technician's prompt.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = bytearray()
        self._eof = False

    async def line(self) -> str:
        """The next line, without its newline; EOFError at the end of input."""
        import asyncio

        loop = asyncio.get_running_loop()
        while b"\n" not in self._buffer:
            if self._eof:
                if not self._buffer:
                    raise EOFError
                break
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self._fd, _settle, readable)
            try:
                await readable
            finally:
                loop.remove_reader(self._fd)
            chunk = os.read(self._fd, 4096)
            self._eof = not chunk
            self._buffer += chunk
        line, _, rest = bytes(self._buffer).partition(b"\n")
        self._buffer = bytearray(rest)
        return line.decode("utf-8", errors="replace")


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


#: Per stream object, not per descriptor number: a number is reused once its file closes.
_streams: weakref.WeakKeyDictionary[TextIO, PrintableStream] = weakref.WeakKeyDictionary()


def write_output(stream: TextIO, data: bytes) -> None:
    """The agent's output bytes onto ``stream`` (stdout or stderr).

    Into a pipe or a file they go as they are, byte for byte, as ssh passes
    them; on a terminal they go through toolkit.text, so that a file or a
    command's output on the customer's machine cannot drive the technician's
    terminal (the granted shell, a terminal by intent, does not come here).
    """
    if not data:
        return
    if not stream.isatty():
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
        return
    decoder = _streams.setdefault(stream, PrintableStream())
    stream.write(decoder.feed(data))
    stream.flush()


__all__ = ["TerminalLines", "write_output"]
