"""Which typed bytes a transcript may keep: the rule, without I/O.

Each chunk of input is judged in the terminal mode it arrived in
(:func:`toolkit.agent.pty.input_mode`):

- ``echoed`` (ECHO on): recorded. The terminal shows it anyway.
- ``hidden`` (ECHO off, canonical mode): withheld. This is how getpass, sudo,
  ssh, passwd and ``read -s`` read a password.
- ``self-echo`` (ECHO off, non-canonical): the program shows what it wants.
  Readline echoes every character typed, sudo with ``pwfeedback`` shows ``*``,
  ``read -s -n 1`` shows nothing. So the chunk is recorded only if every
  character it carries (bytes outside escape sequences and other control
  bytes) comes back, in order, in the output within :data:`MATCH_WINDOW`
  seconds; otherwise it is withheld. A chunk of control keys only (Enter,
  Tab, arrows, Ctrl-C) carries no secret and is recorded.

Verdicts come out in the order the input came in, so a later chunk never
overtakes one that still waits for its echo.

The agent judges by this rule with the PTY's real mode (toolkit.agent.shell).
The technician's side keeps only what the agent kept *and* whose characters
it saw come back in its own output (toolkit.session.shell): an agent that
calls a password "echoed" without showing it cannot get it into the
technician's copy.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

ECHOED, HIDDEN, SELF_ECHO = "echoed", "hidden", "self-echo"
#: How long a self-echo chunk waits for its characters to come back.
MATCH_WINDOW = 0.3
ESC = 0x1B


def characters(data: bytes) -> bytes:
    """The bytes of ``data`` a person typed as characters: not control bytes or escape sequences."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            i += 1
            if i < n and data[i] in (0x5B, 0x4F):  # CSI "[" or SS3 "O": up to the final byte
                csi = data[i] == 0x5B
                i += 1
                while csi and i < n and not 0x40 <= data[i] <= 0x7E:
                    i += 1
            i += 1  # the final byte, or the key pressed with Alt
            continue
        if b >= 0x20 and b != 0x7F:
            out.append(b)
        i += 1
    return bytes(out)


@dataclass
class _Held:
    data: bytes
    needed: bytes  # characters that must come back
    deadline: float
    matched: int = 0
    verdict: bool | None = None


class EchoJudge:
    """Input in, output seen, verdicts out in order: ``(bytes, recorded)``."""

    def __init__(self, window: float = MATCH_WINDOW) -> None:
        self._window = window
        self._queue: deque[_Held] = deque()

    def typed(self, data: bytes, mode: str, now: float) -> None:
        if not data:
            return
        held = _Held(data, b"", now + self._window)
        if mode == ECHOED:
            held.verdict = True
        elif mode == SELF_ECHO:
            held.needed = characters(data)
            held.verdict = None if held.needed else True
        else:
            held.verdict = False
        self._queue.append(held)

    def shown(self, output: bytes) -> None:
        """Output arrived: match it against what waits for its echo, oldest first."""
        pos = 0
        for held in self._queue:
            if held.verdict is not None:
                continue
            while held.matched < len(held.needed):
                found = output.find(held.needed[held.matched : held.matched + 1], pos)
                if found < 0:
                    return
                pos = found + 1
                held.matched += 1
            held.verdict = True

    def expire(self, now: float) -> None:
        for held in self._queue:
            if held.verdict is None and now >= held.deadline:
                held.verdict = False

    def next_deadline(self) -> float | None:
        return next((h.deadline for h in self._queue if h.verdict is None), None)

    def take(self) -> list[tuple[bytes, bool]]:
        """The verdicts ready, in input order (stops at the first chunk still waiting)."""
        out: list[tuple[bytes, bool]] = []
        while self._queue and self._queue[0].verdict is not None:
            held = self._queue.popleft()
            out.append((held.data, bool(held.verdict)))
        return out

    def give_up(self) -> list[tuple[bytes, bool]]:
        """The end: whatever still waits is withheld."""
        for held in self._queue:
            if held.verdict is None:
                held.verdict = False
        return self.take()


__all__ = ["ECHOED", "HIDDEN", "MATCH_WINDOW", "SELF_ECHO", "EchoJudge", "characters"]
