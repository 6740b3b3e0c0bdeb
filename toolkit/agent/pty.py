"""A shell in a pseudo-terminal on the agent, and the one question transcripts ask of it.

:class:`PtyShell` starts the customer's login shell (from the password
database, else ``/bin/sh``) on a fresh PTY, in a session and process group
of its own with the PTY as its controlling terminal, with a fixed
environment. The agent keeps the PTY's master side: it writes the
technician's input there, reads the output from there, and sets the window
size there.

:meth:`PtyShell.echo` answers whether the terminal echoes input right now.
On Linux the master and the slave of a PTY share one set of termios flags,
so ``tcgetattr`` on the master reads exactly what a program on the slave set
with ``stty -echo`` or ``tcsetattr`` (sudo, passwd, ssh, ``read -s``, getpass
all clear ECHO before they print their prompt). The agent asks it for every
chunk of input as the chunk arrives; input that arrives while ECHO is off is
never recorded (docs/transcript-format.md, "Terminal input and echo").
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import signal
import struct
import termios
from collections.abc import Callable

from toolkit.protocol.echo import ECHOED, HIDDEN, SELF_ECHO

#: The only variables the shell gets (plus TERM, HOME, USER, LOGNAME, SHELL, TOOLKIT_SESSION).
BASE_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
    "LANG": "C.UTF-8",
}
READ_SIZE = 64 * 1024
#: TERM values passed through as the technician's terminal says; anything else is xterm's.
_TERM_OK = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-+._")


def login_shell() -> str:
    """The agent user's shell from the password database, if it is executable; else /bin/sh."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell if shell and os.access(shell, os.X_OK) else "/bin/sh"


def shell_environment(term: str, home: str, session: str, shell: str) -> dict[str, str]:
    """The fixed environment of a shell: nothing from the agent's own environment leaks in."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    term = term if term and len(term) <= 64 and set(term) <= _TERM_OK else "xterm-256color"
    return {
        **BASE_ENV,
        "TERM": term,
        "HOME": home,
        "USER": user,
        "LOGNAME": user,
        "SHELL": shell,
        "TOOLKIT_SESSION": session,
    }


def set_size(fd: int, width: int, height: int) -> None:
    """Set the window size of the terminal on ``fd`` (the kernel tells its programs: SIGWINCH)."""
    width = max(1, min(int(width), 10_000))
    height = max(1, min(int(height), 10_000))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def input_mode(fd: int) -> str:
    """How the terminal of ``fd`` takes input now.

    ``echoed``: ECHO is on, the terminal shows what is typed. ``hidden``: ECHO
    off in canonical (line) mode: a password read (getpass, sudo, ssh, passwd,
    ``read -s``). ``self-echo``: ECHO off in non-canonical mode: a program that
    reads key by key and shows what it wants (readline, vim; also sudo with
    pwfeedback, which shows ``*``). When the flags cannot be read: ``hidden``.
    """
    try:
        lflag = termios.tcgetattr(fd)[3]
    except (OSError, termios.error):
        return HIDDEN
    if lflag & termios.ECHO:
        return ECHOED
    return HIDDEN if lflag & termios.ICANON else SELF_ECHO


def echo_on(fd: int) -> bool:
    """Whether the terminal of ``fd`` echoes input now; when that cannot be read, no."""
    return input_mode(fd) == ECHOED


def _controlling_terminal() -> None:  # pragma: no cover - runs in the child, before exec
    # start_new_session made the child a session leader; make its stdin (the PTY's
    # slave) the session's controlling terminal, so Ctrl-C, job control and
    # /dev/tty work as on any login.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyShell:
    """A running shell on a PTY. Build it with :meth:`start`; end it with :meth:`close`."""

    def __init__(self, process: asyncio.subprocess.Process, master: int, argv0: str) -> None:
        self.process = process
        self.master = master
        self.shell = argv0
        self._reading = False
        self._closed = False
        self._pending = bytearray()  # input the PTY had no room for yet
        #: Called when input that had to wait has all gone to the PTY.
        self.on_input_drained: Callable[[], None] | None = None
        self._readable: Callable[[], None] = lambda: None

    @classmethod
    async def start(
        cls, *, term: str, width: int, height: int, home: str, session: str
    ) -> PtyShell:
        shell = login_shell()
        master, slave = os.openpty()
        try:
            set_size(master, width or 80, height or 24)
            os.set_blocking(master, False)
            process = await asyncio.create_subprocess_exec(
                "-" + os.path.basename(shell),  # argv[0]: a login shell, as sshd starts it
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=shell_environment(term, home, session, shell),
                cwd=home,
                start_new_session=True,
                preexec_fn=_controlling_terminal,
                executable=shell,
                close_fds=True,
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        return cls(process, master, shell)

    def echo(self) -> bool:
        return echo_on(self.master)

    def input_mode(self) -> str:
        return input_mode(self.master)

    def resize(self, width: int, height: int) -> None:
        if not self._closed:
            with contextlib.suppress(OSError):
                set_size(self.master, width, height)

    @property
    def input_waiting(self) -> int:
        """Bytes of input the PTY had no room for yet (the shell is not reading)."""
        return len(self._pending)

    def write(self, data: bytes) -> None:
        """Input for the shell; what the PTY has no room for waits, in order, never dropped."""
        if self._closed:
            return
        if not self._pending:
            try:
                written = os.write(self.master, data)
            except BlockingIOError:
                written = 0
            except OSError:
                return  # the shell is gone; the reader reports its end
            data = data[written:]
            if not data:
                return
            asyncio.get_running_loop().add_writer(self.master, self._flush)
        self._pending += data

    def _flush(self) -> None:
        try:
            written = os.write(self.master, self._pending)
        except BlockingIOError:
            return
        except OSError:
            written = len(self._pending)
        del self._pending[:written]
        if not self._pending:
            asyncio.get_running_loop().remove_writer(self.master)
            if self.on_input_drained is not None:
                self.on_input_drained()

    def read_into(self, on_output: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        """Call ``on_output`` with each chunk of output, then ``on_end`` once the PTY closes."""

        def readable() -> None:
            try:
                data = os.read(self.master, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:  # EIO: every program holding the slave has exited
                data = b""
            if data:
                on_output(data)
                return
            self.pause()
            on_end()

        self._readable = readable
        self.resume()

    def pause(self) -> None:
        """Stop reading output (the technician's window is full)."""
        if self._reading:
            asyncio.get_running_loop().remove_reader(self.master)
            self._reading = False

    def resume(self) -> None:
        if not self._reading and not self._closed:
            asyncio.get_running_loop().add_reader(self.master, self._readable)
            self._reading = True

    async def close(self, grace: float = 1.0) -> int:
        """Hang up: SIGHUP to the shell's group, SIGKILL after ``grace``; its exit status."""
        self.pause()
        if self._pending:
            self._pending.clear()
            asyncio.get_running_loop().remove_writer(self.master)
        if not self._closed:
            self._closed = True
            _signal_group(self.process.pid, signal.SIGHUP)
            _signal_group(self.process.pid, signal.SIGCONT)
        try:
            status = await asyncio.wait_for(asyncio.shield(self.process.wait()), grace)
        except TimeoutError:
            _signal_group(self.process.pid, signal.SIGKILL)
            status = await self.process.wait()
        # Whatever the shell left running in its group would outlive the session.
        _signal_group(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.close(self.master)
        return status if status >= 0 else 128 - status


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


__all__ = [
    "BASE_ENV",
    "ECHOED",
    "HIDDEN",
    "SELF_ECHO",
    "PtyShell",
    "echo_on",
    "input_mode",
    "login_shell",
    "set_size",
    "shell_environment",
]
