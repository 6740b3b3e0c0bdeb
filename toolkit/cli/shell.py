"""``shell`` at the technician's prompt: the local terminal goes raw and talks to the agent's PTY.

Keys go to the remote shell as typed; output goes to the terminal as it
comes. Window size changes (SIGWINCH) go to the agent and into the
transcript. Like ssh, a ``~`` at the start of a line is an escape: ``~.``
ends the shell (the agent hangs it up, as ssh's ``~.`` ends the connection)
and comes back to the toolkit prompt; ``~^Z`` (a ``~``, then Ctrl-Z)
detaches: back at the toolkit prompt, the shell keeps running, and
``shell`` goes back to it (its output meanwhile is recorded, and shown on
return). ``~?`` lists the escapes, ``~~`` sends one ``~``.

Whatever ends it (the shell's exit, an escape, the customer, a lost
connection), the technician's terminal is given back as it was before
anything is printed: cooked mode, and the modes a full-screen program set
(alternate screen, hidden cursor, mouse reporting, ...) reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import termios
import tty
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from toolkit.protocol import Response
    from toolkit.session.shell import ShellClient
    from toolkit.session.technician import TechnicianSession

ESCAPE = 0x7E  # "~"
SUSPEND = 0x1A  # Ctrl-Z
HELP = (
    b"\r\nSupported escape sequences:\r\n"
    b" ~.   end the shell (hang it up) and go back to the toolkit prompt\r\n"
    b" ~^Z  detach: back to the toolkit prompt, the shell keeps running;\r\n"
    b"      `shell` there comes back to it\r\n"
    b" ~?   this message\r\n"
    b" ~~   send the escape character\r\n"
    b"(Escapes are only recognised right after a newline.)\r\n"
)
#: Output kept while the shell is detached, shown on return (the newest; all of it is
#: in the transcript).
DETACHED_OUTPUT = 1 << 20


class EscapeReader:
    """ssh's escape handling over typed bytes: what to send, and whether ``~.`` came."""

    def __init__(self) -> None:
        self._line_start = True
        self._pending = False  # a "~" at the start of a line, waiting for the next key
        self.left = False
        self.detached = False  # ``~^Z``: left, the shell kept running

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
                if b == SUSPEND:
                    self.left = self.detached = True
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


#: DEC private modes a program may leave set, and how each is put back
#: (1049/1047/47: the alternate screen; 25: the cursor shown).
_MODES_OFF = {
    "1": "l", "5": "l", "6": "l", "7": "h", "9": "l", "25": "h", "47": "l", "1000": "l",
    "1001": "l", "1002": "l", "1003": "l", "1004": "l", "1005": "l", "1006": "l",
    "1015": "l", "1047": "l", "1049": "l", "2004": "l",
}  # fmt: skip
_PRIVATE_MODE = re.compile(rb"\x1b\[\?([0-9;]+)([hl])|\x1b([=>])|\x1b\[([0-9;]*)r")
_SCREENS = ("1049", "1047", "47")
#: Always sent on restore: the G0 character set as ASCII, shifted in (line drawing off).
_CHARSET = "\x0f\x1b(B"


@dataclass
class TerminalModes:
    """The terminal modes the shell's output has changed from their defaults, as it goes."""

    changed: dict[str, str] = field(default_factory=dict)  # mode -> "h" or "l", as set
    keypad: bool = False  # application keypad (ESC =)
    region: bool = False  # a scroll region (DECSTBM) narrower than the screen is set
    _tail: bytes = b""

    def feed(self, data: bytes) -> None:
        # A sequence may be cut between two chunks: look again at the end of the last one.
        view = self._tail + data
        for found in _PRIVATE_MODE.finditer(view):
            if found.group(3) is not None:
                self.keypad = found.group(3) == b"="
                continue
            if found.group(4) is not None:
                self.region = found.group(4).strip(b";") != b""
                continue
            for mode in found.group(1).decode().split(";"):
                if mode in _MODES_OFF:
                    if found.group(2).decode() == _MODES_OFF[mode]:
                        self.changed.pop(mode, None)
                    else:
                        self.changed[mode] = found.group(2).decode()
        cut = view.rfind(b"\x1b")
        self._tail = view[cut:][:32] if cut >= 0 and len(view) - cut < 32 else b""

    def _order(self) -> list[str]:
        # The alternate screen first: the modes after it then apply to the screen it shows.
        return sorted(self.changed, key=lambda m: m not in _SCREENS)

    def restore(self) -> bytes:
        """What puts the terminal back: every changed mode reset, the whole screen as the
        scroll region, ASCII characters, colours off.

        Without it a shell could leave autowrap off (cutting toolkit's next lines at the
        screen's edge), reverse video, a scroll region or line-drawing characters behind.
        """
        undo = "".join(f"\x1b[?{m}{_MODES_OFF[m]}" for m in self._order())
        if self.region or "6" in self.changed:
            # Both move the cursor home: back to the bottom line, where output goes on.
            undo += "\x1b[r\x1b[999;1H"
        return (undo + ("\x1b>" if self.keypad else "") + _CHARSET + "\x1b[0m").encode()

    def reapply(self) -> bytes:
        """What sets the modes again (coming back to a detached shell)."""
        redo = "".join(f"\x1b[?{m}{self.changed[m]}" for m in self._order())
        return (redo + ("\x1b=" if self.keypad else "")).encode()

    @property
    def full_screen(self) -> bool:
        return any(m in self.changed for m in _SCREENS)


class Attachment:
    """Where one shell's output goes: this terminal while attached, a buffer while not."""

    def __init__(self) -> None:
        self.modes = TerminalModes()
        self._show: Callable[[bytes], None] | None = None
        self._held = bytearray()
        self.dropped = 0

    def output(self, data: bytes) -> None:
        self.modes.feed(data)
        if self._show is not None:
            self._show(data)
            return
        self._held += data
        if len(self._held) > DETACHED_OUTPUT:
            cut = len(self._held) - DETACHED_OUTPUT
            del self._held[:cut]
            self.dropped += cut

    def attach(self, show: Callable[[bytes], None]) -> None:
        """Back on this terminal: the modes as the shell left them, then what it wrote."""
        if self.dropped:
            show(
                f"\r\n[{self.dropped:,} bytes of the shell's output while detached are not"
                " shown here; the transcript has them]\r\n".encode()
            )
        show(self.modes.reapply())
        held, self._held, self.dropped = bytes(self._held), bytearray(), 0
        self._show = show
        if held:
            show(held)

    def detach(self) -> None:
        self._show = None


#: The attachment of each open shell (a detached one is kept until it ends).
_attachments: weakref.WeakKeyDictionary[ShellClient, Attachment] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Left:
    """How the technician came back from the shell."""

    how: str  # "exited" (the shell ended), "hung up" (~.) or "detached" (~^Z)
    response: Response | None  # the agent's account of the shell, once it ended


def detached(session: TechnicianSession) -> ShellClient | None:
    """The shell left running with ``~^Z``, if there is one."""
    shell = session.shell
    if shell is not None and not shell.closed and shell in _attachments:
        return shell
    return None


async def interactive_shell(session: TechnicianSession) -> Left:
    """Run the granted shell on this terminal until it exits, ``~.`` or ``~^Z``.

    A shell detached with ``~^Z`` is attached again instead of opening another.
    """
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
    shell = detached(session)
    if shell is None:
        attachment = Attachment()
        attachment.attach(show)
        shell = await session.open_shell(term, width, height, attachment.output)
        _attachments[shell] = attachment
        nudge = False
    else:
        attachment = _attachments[shell]
        nudge = attachment.modes.full_screen
        shell.mark_attached()
        attachment.attach(show)
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
        shell.resize(*terminal_size())  # it may have changed while detached
        if nudge:
            # A full-screen program draws again on a size change, not on its return.
            width, height = terminal_size()
            shell.resize(width, max(height - 1, 1))
            loop.call_later(0.1, resized)
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
        # The terminal as it was, before anything else is printed: the modes a program
        # left set (vim, less), then cooked mode.
        attachment.detach()
        with contextlib.suppress(OSError):
            show(attachment.modes.restore())
        termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
    if session.ended is not None:
        raise session.ended
    show(b"\r\n")
    if escapes.detached and not shell.closed:
        shell.mark_detached()
        return Left("detached", None)
    _attachments.pop(shell, None)
    hung_up = escapes.left and not shell.closed
    return Left("hung up" if hung_up else "exited", await shell.close())


async def close_detached(session: TechnicianSession) -> Response | None:
    """Hang up a detached shell (the session ends) and record its end; its account."""
    shell = detached(session)
    if shell is None:
        return None
    _attachments.pop(shell, None)
    return await shell.close()


__all__ = [
    "Attachment",
    "EscapeReader",
    "Left",
    "TerminalModes",
    "close_detached",
    "detached",
    "interactive_shell",
]
