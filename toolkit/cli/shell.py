"""``shell`` at the technician's prompt: the local terminal goes raw and talks to the agent's PTY.

Keys go to the remote shell as typed; output goes to the terminal as it
comes. Window size changes (SIGWINCH) go to the agent and into the
transcript. Like ssh, a ``~`` at the start of a line is an escape:
``~.`` returns to the toolkit prompt (the session goes on), ``~?`` lists the
escapes, ``~~`` sends one ``~``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.session.protocol import Response
    from toolkit.session.technician import TechnicianSession

ESCAPE = 0x7E  # "~"
HELP = (
    b"\r\nSupported escape sequences:\r\n"
    b" ~.   back to the toolkit prompt (the session goes on)\r\n"
    b" ~?   this message\r\n"
    b" ~~   send the escape character\r\n"
    b"(Escapes are only recognised right after a newline.)\r\n"
)


class EscapeReader:
    """ssh's escape handling over typed bytes: what to send, and whether ``~.`` came."""

    def __init__(self) -> None:
        self._line_start = True
        self._pending = False  # a "~" at the start of a line, waiting for the next key
        self.left = False

    def feed(self, data: bytes) -> tuple[bytes, bytes]:
        """(bytes for the shell, bytes to show locally)."""
        send, show = bytearray(), bytearray()
        for b in data:
            if self.left:
                break
            if self._pending:
                self._pending = False
                if b == ord("."):
                    self.left = True
                    continue
                if b == ord("?"):
                    show += HELP
                    continue
                if b == ESCAPE:
                    send.append(ESCAPE)
                    self._line_start = False
                    continue
                send.append(ESCAPE)
            elif b == ESCAPE and self._line_start:
                self._pending = True
                continue
            send.append(b)
            self._line_start = b in (0x0D, 0x0A)
        return bytes(send), bytes(show)


def terminal_size() -> tuple[int, int]:
    """The terminal's own size (not $COLUMNS/$LINES, which may be stale), else 80x24."""
    for fd in (sys.stdout.fileno(), sys.stdin.fileno()):
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        return size.columns or 80, size.lines or 24
    return 80, 24


async def interactive_shell(session: TechnicianSession) -> Response | None:
    """Run the granted shell on this terminal until it exits or ``~.``; the agent's account."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    width, height = terminal_size()
    term = os.environ.get("TERM") or "xterm-256color"

    def show(data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(stdout, view) :]
            except BlockingIOError:
                continue

    sys.stdout.flush()
    shell = await session.open_shell(term, width, height, show)
    loop = asyncio.get_running_loop()
    escapes = EscapeReader()
    left = asyncio.Event()
    saved = termios.tcgetattr(stdin)

    def typed() -> None:
        try:
            data = os.read(stdin, 4096)
        except BlockingIOError:
            return
        if not data:
            left.set()
            return
        send, local = escapes.feed(data)
        if local:
            show(local)
        if send:
            shell.write(send)
        if escapes.left:
            left.set()

    def resized() -> None:
        shell.resize(*terminal_size())

    try:
        tty.setraw(stdin, termios.TCSANOW)
        loop.add_reader(stdin, typed)
        loop.add_signal_handler(signal.SIGWINCH, resized)
        ended = asyncio.ensure_future(session.client.wait_ended())
        waiting = {asyncio.ensure_future(left.wait()), asyncio.ensure_future(shell.wait()), ended}
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiting:
                task.cancel()
    finally:
        loop.remove_reader(stdin)
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGWINCH)
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
    if session.ended is not None:
        raise session.ended
    show(b"\r\n")
    return await shell.close()


__all__ = ["EscapeReader", "interactive_shell"]
