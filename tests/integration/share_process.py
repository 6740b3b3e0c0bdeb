"""Real `toolkit share` and `toolkit connect` processes, each person in a HOME of their own.

:class:`Person` is one side (customer or technician): a root directory holding
its HOME and XDG dirs, and the environment that points there. :func:`sharing`
starts `toolkit share` as a subprocess, waits for its JSON line and always
ends the process (its whole process group) on the way out, whatever the test
did.
"""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

PASSPHRASE = "correct horse battery"
NAME = "Alice Tech"
EMAIL = "alice@example.com"
#: Generous for a loaded machine; a healthy run takes about a second.
START_TIMEOUT = 15.0
RUN_TIMEOUT = 30.0
TOOLKIT = [sys.executable, "-m", "toolkit"]
# Python ignores SIGXFSZ, so past the limit a write comes up short, then fails with EFBIG.
_LIMITED = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


@dataclass(frozen=True)
class Person:
    """One side of a session, in ``root``: home/, config/, data/, state/."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data(self) -> Path:
        return self.root / "data" / "toolkit"

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TOOLKIT_", "XDG_", "SSH_")) and k != "PYTHON_KEYRING_BACKEND"
        }
        env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.root / "config"),
            XDG_DATA_HOME=str(self.root / "data"),
            XDG_STATE_HOME=str(self.root / "state"),
            XDG_CACHE_HOME=str(self.root / "cache"),
            XDG_RUNTIME_DIR=str(self.root / "runtime"),
            PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
            TOOLKIT_KEY_PASSPHRASE=PASSPHRASE,
            NO_COLOR="1",
            COLUMNS="200",
            PYTHONUNBUFFERED="1",
        )
        return env

    @classmethod
    def make(cls, root: Path) -> Person:
        person = cls(root)
        for sub in ("home", "config", "data", "state", "cache", "runtime"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        (root / "runtime").chmod(0o700)
        return person

    def toolkit(
        self,
        *args: str | Path,
        stdin: str | None = None,
        timeout: float = RUN_TIMEOUT,
        max_file_size: int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run one toolkit command to its end (its process group is killed on a timeout).

        ``max_file_size`` caps every file it writes (RLIMIT_FSIZE), as a full disk would.
        """
        proc = self.popen(
            *args,
            stdin=subprocess.PIPE if stdin is not None else None,
            max_file_size=max_file_size,
        )
        try:
            out, err = proc.communicate(stdin, timeout=timeout)
        finally:
            end(proc)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def popen(
        self,
        *args: str | Path,
        stdin: int | None = None,
        stdout: int | IO[Any] = subprocess.PIPE,
        stderr: int | IO[Any] = subprocess.PIPE,
        max_file_size: int | None = None,
    ) -> subprocess.Popen[str]:
        argv = [*TOOLKIT, *(str(a) for a in args)]
        if max_file_size is not None:  # set in the child before exec: no preexec_fn here
            argv = [sys.executable, "-c", _LIMITED, str(max_file_size), *argv[1:]]
        return subprocess.Popen(
            argv,
            env=self.env(),
            cwd=self.root,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            text=True,
            start_new_session=True,  # its own group: signals and clean-up reach only it
        )


def end(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """Make sure ``proc`` and everything it started are gone; close its pipes."""
    stop(proc, grace)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def stop(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    """TERM the process group, then KILL whatever is left of it."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    _signal_group(proc, signal.SIGKILL)  # stragglers it left behind, if any
    if proc.poll() is None:
        proc.wait(grace)


def _signal_group(proc: subprocess.Popen[str], sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


@dataclass
class Share:
    """A running `toolkit share --json`: its code lines as they come, its stderr in a file."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    terminal: int | None = None  # the controlling side of its stdin's pty, when it has one
    lines: list[dict[str, Any]] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            try:
                line = json.loads(raw)
            except ValueError:
                line = {"not_json": raw}
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def line(self, index: int = 0, timeout: float = START_TIMEOUT) -> dict[str, Any]:
        """The ``index``-th JSON line (0: the first code), waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.lines) <= index:
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and len(self.lines) <= index):
                    raise AssertionError(
                        f"toolkit share printed {len(self.lines)} JSON line(s), "
                        f"expected line {index + 1} (exit {self.proc.poll()}); "
                        f"stderr:\n{self.stderr()}"
                    )
                self._changed.wait(min(left, 0.05))
            return self.lines[index]

    @property
    def code(self) -> str:
        return str(self.line()["code"])

    @property
    def address(self) -> str:
        line = self.line()
        return f"{line['address']}:{line['port']}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_stderr(self, text: str, timeout: float = START_TIMEOUT, count: int = 1) -> str:
        """Its stderr, once ``text`` is there (``count`` times)."""
        deadline = time.monotonic() + timeout
        while (shown := self.stderr()).count(text) < count:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"{text!r} not on toolkit share's stderr:\n{shown}")
            time.sleep(0.02)
        return shown

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def interrupt(self) -> None:
        """Ctrl-C, as the customer's terminal sends it (to the process only)."""
        self.proc.send_signal(signal.SIGINT)

    def type(self, text: str) -> None:
        """Type at the customer's terminal (``sharing(..., terminal=True)`` only)."""
        assert self.terminal is not None, "toolkit share was not started on a terminal"
        os.write(self.terminal, text.encode())


@contextmanager
def sharing(
    customer: Person,
    *args: str | Path,
    logs: Path,
    terminal: bool = False,
    scripted: bool = False,
    max_file_size: int | None = None,
) -> Iterator[Share]:
    """``toolkit share --json ARGS`` until the block ends; its first JSON line is read.

    Without ``terminal`` it runs with ``--yes``; with it, its stdin is a pseudo-terminal
    that the test types the customer's answers into (:meth:`Share.type`). ``scripted``:
    its stdin is a pipe the test writes (``proc.stdin``), as a script's would be.
    ``logs`` is where its stderr goes (outside both people's dirs, so that a search there
    for the code does not see the file the test keeps); it goes there through a pipe, so
    that ``max_file_size`` (as for :meth:`Person.toolkit`: RLIMIT_FSIZE, as a full disk)
    limits what share writes, not its stderr.
    """
    logs.mkdir(parents=True, exist_ok=True)
    stderr_path = logs / f"share-{time.monotonic_ns()}.err"
    controller, stdin = pty.openpty() if terminal else (None, None)
    try:
        flags = ("--json",) if terminal else ("--yes", "--json")
        proc = customer.popen(
            "share",
            *flags,
            *args,
            stdin=subprocess.PIPE if scripted else stdin,
            stderr=subprocess.PIPE,
            max_file_size=max_file_size,
        )
    except BaseException:
        if controller is not None:
            os.close(controller)
        raise
    finally:
        if stdin is not None:
            os.close(stdin)
    share = Share(proc, stderr_path, controller)

    def keep_stderr() -> None:
        # As it comes, not by lines: a prompt has no newline until it is answered.
        assert proc.stderr is not None
        with stderr_path.open("wb") as kept:
            while chunk := os.read(proc.stderr.fileno(), 65536):
                kept.write(chunk)
                kept.flush()

    readers = [
        threading.Thread(target=share._read, daemon=True, name="share-stdout"),
        threading.Thread(target=keep_stderr, daemon=True, name="share-stderr"),
    ]
    for reader in readers:
        reader.start()
    try:
        share.line()
        yield share
    finally:
        stop(proc)
        for reader in readers:
            reader.join(5)  # the pipes are at their end once the process is gone
        end(proc)
        if controller is not None:
            os.close(controller)


__all__ = ["EMAIL", "NAME", "PASSPHRASE", "Person", "Share", "end", "sharing", "stop"]
