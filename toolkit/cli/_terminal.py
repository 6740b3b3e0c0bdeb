"""Reading from and writing to the person at the terminal, safely.

A prompt in a thread (input(), rich's Prompt) cannot be taken back: when
Ctrl-C or the other side ends things while it waits, the thread still holds
stdin as Python exits. :class:`TerminalLines` reads on the event loop instead.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import weakref
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

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
_streams: weakref.WeakKeyDictionary[IO[str], PrintableStream] = weakref.WeakKeyDictionary()


def write_output(stream: IO[str], data: bytes) -> None:
    """The agent's output bytes onto ``stream`` (stdout or stderr).

    Into a pipe or a file they go as they are, byte for byte, as ssh passes
    them; on a terminal they go through toolkit.text, so that a file or a
    command's output on the customer's machine cannot drive the technician's
    terminal (the granted shell, a terminal by intent, does not come here).
    """
    if not data:
        return
    binary = getattr(stream, "buffer", None)
    if not stream.isatty() and binary is not None:
        stream.flush()
        binary.write(data)
        binary.flush()
        return
    decoder = _streams.setdefault(stream, PrintableStream())
    stream.write(decoder.feed(data))
    stream.flush()


def stream_output(stream: int, data: bytes) -> None:
    """A streamed command's output as it comes: its stderr on stderr, the rest on stdout."""
    import sys

    from toolkit.protocol import STDERR

    write_output(sys.stderr if stream == STDERR else sys.stdout, data)


class Captured(io.StringIO):
    """Text as it would go to the terminal (``isatty`` says so), kept to page it."""

    def isatty(self) -> bool:
        return True


#: Used when neither $TOOLKIT_PAGER nor $PAGER is set, with $LESS defaulting to
#: :data:`LESS` (as git does: -F quit if one screen, -R keep colours, -X no clearing).
DEFAULT_PAGER = "less"
LESS = "FRX"
_SGR_OR_CONTROL = re.compile(r"\x1b\[[0-9;]*m|[\x00-\x1f]")


def pager_command(environ: Mapping[str, str] | None = None) -> str | None:
    """The pager to use: $TOOLKIT_PAGER, else $PAGER, else less; None when disabled
    (set to ``""`` or ``cat``)."""
    environ = os.environ if environ is None else environ
    for name in ("TOOLKIT_PAGER", "PAGER"):
        if name in environ:
            value = environ[name].strip()
            return None if value in ("", "cat") else value
    return DEFAULT_PAGER


def rows(text: str, width: int) -> int:
    """How many terminal rows ``text`` takes at ``width`` columns (long lines wrap)."""
    from rich.cells import cell_len

    width = max(width, 1)
    return sum(
        max(1, -(-cell_len(_SGR_OR_CONTROL.sub("", line)) // width)) for line in text.splitlines()
    )


async def page(text: str, stop: asyncio.Future[Any] | None = None) -> bool:
    """``text`` through the pager, if there is one and ``text`` is longer than the screen.

    Only when stdout is a terminal. False when it was not paged: the caller
    writes it as it is. ``stop`` done (the session ended) ends the pager. The
    text has already been made printable; the pager adds nothing but paging.
    """
    import asyncio
    import signal
    import sys

    command = pager_command()
    if command is None or not sys.stdout.isatty():
        return False
    try:
        argv = shlex.split(command)  # as gh does: words, never a shell
    except ValueError:
        return False
    if not argv:
        return False
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return False
    if rows(text, size.columns) < size.lines:  # the prompt's line must fit too
        return False
    env = dict(os.environ)
    env.setdefault("LESS", LESS)
    env.setdefault("LV", "-c")
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    try:
        pager = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.PIPE, env=env)
    except OSError:  # not installed: the text is shown as it is
        return False
    loop.add_signal_handler(signal.SIGINT, lambda: None)  # Ctrl-C is the pager's
    try:
        assert pager.stdin is not None
        feeding = asyncio.ensure_future(_feed(pager.stdin, text.encode("utf-8", "replace")))
        waiting: set[asyncio.Future[Any]] = {asyncio.ensure_future(pager.wait())}
        if stop is not None:
            waiting.add(stop)
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if pager.returncode is None:  # the session ended under it
            with contextlib.suppress(ProcessLookupError):
                pager.terminate()
            await pager.wait()
        feeding.cancel()
        with contextlib.suppress(BaseException):
            await feeding
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    return True


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


__all__ = [
    "Captured",
    "TerminalLines",
    "page",
    "pager_command",
    "rows",
    "stream_output",
    "write_output",
]
