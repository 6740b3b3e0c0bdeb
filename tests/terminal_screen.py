"""A command's output as a person would see it: run in a real pty, drawn by pyte.

Comparing strings cannot show what a terminal does with an escape sequence
(move the cursor up, erase a line, rewrite what was printed); a terminal
emulator can. :func:`screen_of` runs a command on a pseudo-terminal of a
given size, feeds everything it writes to a pyte screen, and returns the
lines that screen shows when the command has exited.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyte

TIMEOUT = 60.0


@dataclass(frozen=True)
class Screen:
    code: int
    lines: list[str]  # the screen's rows, right-stripped, trailing empty rows dropped
    raw: bytes  # every byte the command wrote

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def screen_of(
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    width: int = 200,
    height: int = 60,
) -> Screen:
    """Run ``argv`` with its stdout and stderr on a ``width`` x ``height`` pty; its screen."""
    leader, follower = pty.openpty()
    os.set_blocking(leader, False)
    import fcntl
    import struct
    import termios

    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
    environment = {**(env if env is not None else os.environ), "TERM": "xterm-256color"}
    environment.pop("NO_COLOR", None)
    environment["COLUMNS"], environment["LINES"] = str(width), str(height)
    process = subprocess.Popen(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=environment,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(follower)
    raw = bytearray()
    deadline = time.monotonic() + TIMEOUT
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise AssertionError(f"{argv} did not finish in {TIMEOUT} s")
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer has closed the pty
                break
            if not chunk:
                break
            raw += chunk
        code = process.wait(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(leader)
    screen = pyte.Screen(width, height)
    pyte.ByteStream(screen).feed(bytes(raw))
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return Screen(code, lines, bytes(raw))
