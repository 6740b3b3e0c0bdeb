"""Real terminals for end-to-end tests: toolkit commands under tmux, keys in, screens out.

Each :class:`Tmux` is a server of its own (``tmux -L``), so tests never touch
a tmux the developer runs, and :meth:`Tmux.kill` ends everything it started.
A window's command is wrapped so that the screen stays after the program
exits, with ``[exit N]`` under it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

from tests.integration.share_process import TOOLKIT, Person

#: Generous for a loaded machine.
WAIT = 20.0


class Tmux:
    def __init__(self, root: Path) -> None:
        self.socket = f"toolkit-test-{os.getpid()}-{time.monotonic_ns()}"
        self.root = root

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"tmux {' '.join(args)}: {done.stderr}")
        return done.stdout

    def start(
        self, name: str, person: Person, *args: str | Path, width: int = 100, height: int = 30
    ) -> None:
        """``toolkit ARGS`` as ``person`` in a new window ``name`` of ``width`` x ``height``."""
        env = {k: v for k, v in person.env().items() if k not in ("COLUMNS", "NO_COLOR")}
        command = " ".join(
            [
                "env -i",
                *(shlex.quote(f"{k}={v}") for k, v in env.items()),
                "TERM=xterm-256color",
                *(shlex.quote(str(a)) for a in [*TOOLKIT, *args]),
            ]
        )
        # The wrapper survives a Ctrl-C meant for toolkit (a trap with a command is not
        # inherited), so the screen stays after toolkit exits.
        wrapped = (
            f"trap true INT; cd {shlex.quote(str(person.root))} && {command};"
            ' echo "[exit $?]"; sleep 600'
        )
        self._run(
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            str(width),
            "-y",
            str(height),
            "sh",
            "-c",
            wrapped,
        )

    def keys(self, name: str, *keys: str, literal: bool = False) -> None:
        self._run("send-keys", "-t", name, *(["-l"] if literal else []), *keys)

    def type(self, name: str, text: str) -> None:
        """Type ``text`` (literally), then Enter."""
        self.keys(name, text, literal=True)
        self.keys(name, "Enter")

    def resize(self, name: str, width: int, height: int) -> None:
        self._run("resize-window", "-t", name, "-x", str(width), "-y", str(height))

    def screen(self, name: str, history: bool = False) -> str:
        args = ["capture-pane", "-p", "-J", "-t", name]
        if history:
            args += ["-S", "-2000"]
        return self._run(*args)

    def wait_for(self, name: str, text: str, timeout: float = WAIT, count: int = 1) -> str:
        """The screen (with its history) once ``text`` is on it ``count`` times."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.screen(name, history=True)
            if shown.count(text) >= count:
                return shown
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never showed in {name}:\n{shown}")
            time.sleep(0.05)

    def kill(self) -> None:
        subprocess.run(
            ["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=15, check=False
        )


__all__ = ["Tmux"]
