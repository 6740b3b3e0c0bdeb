"""The customer's live view while a session runs (``toolkit share`` on a terminal).

Who is connected (name, key fingerprint, trusted or not), the ticket, the
granted scope and the elapsed time; the operations as they happen; while a
shell is open, its screen, mirrored read-only (a pyte terminal fed with the
shell's output); and any question for the customer (a fix, an operation
outside the approved scope) with its exact commands, a default of no and a
countdown. Keys, read on the event loop with the terminal in cbreak mode:
``q`` (or Ctrl-C) ends the session at once for both sides; ``y`` answers yes,
``n`` or Enter no.

Without a terminal on stderr there is no drawing: lines are printed as they
come, and questions are asked on their own line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.agent.operations import Answer
from toolkit.text import printable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from toolkit.agent.server import Agent

LOG_LINES = 12
#: The mirror is cut to this many rows of the shell's screen (the bottom ones).
MIRROR_ROWS = 16


@dataclass
class Question:
    title: str
    lines: list[str]
    deadline: float
    answer: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Mirror:
    """The shell's screen as the technician sees it, rebuilt from its output."""

    def __init__(self, width: int = 80, height: int = 24) -> None:
        import pyte

        self._screen = pyte.Screen(width, height)
        self._stream = pyte.ByteStream(self._screen)
        self.active = False

    def resize(self, width: int, height: int) -> None:
        self._screen.resize(lines=max(1, height), columns=max(1, width))

    def feed(self, data: bytes) -> None:
        self.active = True
        self._stream.feed(data)

    def rows(self, limit: int = MIRROR_ROWS) -> list[str]:
        display: list[str] = [str(line).rstrip() for line in self._screen.display]
        while display and not display[-1]:
            display.pop()
        return display[-limit:]


class LiveView:
    """The customer's screen during a session: drawn with rich, keys read on the loop."""

    def __init__(self, agent: Agent, console: Console, *, keys: bool) -> None:
        self.agent = agent
        self.console = console
        self.draw = console.is_terminal
        self.keys = keys
        self.log: deque[str] = deque(maxlen=200)
        self.mirror = Mirror()
        self.question: Question | None = None
        self.on_quit: Callable[[], None] | None = None
        self._saved: list[Any] | None = None
        self._live: Any = None

    # -- what the agent reports ------------------------------------------------------

    def say(self, message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {printable(message)}"
        self.log.append(line)
        if not self.draw:
            self.console.print(f"[{line[:8]}]{line[8:]}", markup=False, highlight=False)

    def shell_size(self, width: int, height: int) -> None:
        self.mirror.resize(width, height)

    def shell_output(self, data: bytes) -> None:
        self.mirror.feed(data)

    def shell_ended(self) -> None:
        self.mirror = Mirror()

    # -- questions ---------------------------------------------------------------

    async def ask(self, title: str, lines: Sequence[str], timeout: float) -> bool | Answer:
        """Yes or no, in the view; Answer.NO_ANSWER when none came by ``timeout``."""
        while self.question is not None:  # one question at a time, in order
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.question.answer)
        # Made printable here, whoever asks: the view shows them as they are below.
        shown = [printable(line, None) for line in lines]
        question = Question(printable(title, None), shown, time.monotonic() + timeout)
        self.question = question
        if not self.draw:
            text = "\n".join([title, *lines, f"Allow? [y/N] (no in {int(timeout)} s): "])
            self.console.print(text, end="", markup=False, highlight=False)
        try:
            return await asyncio.wait_for(asyncio.shield(question.answer), timeout)
        except TimeoutError:
            self.say(f"no answer in time: refused ({printable(title, 80)})")
            return Answer.NO_ANSWER
        finally:
            if not question.answer.done():
                question.answer.set_result(False)
            self.question = None

    def _key(self, key: str) -> None:
        question = self.question
        if key in ("q", "Q") and self.on_quit is not None:
            if question is not None and not question.answer.done():
                question.answer.set_result(False)
            self.on_quit()
            return
        if question is None or question.answer.done():
            return
        if key in ("y", "Y"):
            question.answer.set_result(True)
        elif key in ("n", "N", "\r", "\n"):
            question.answer.set_result(False)
        else:
            return
        if not self.draw:
            self.console.print("yes" if question.answer.result() else "no", markup=False)
        answer = "yes" if question.answer.result() else "no"
        # nosemgrep: toolkit-print-untrusted -- a Question's title is printable() (ask)
        self.say(f"you answered {answer}: {question.title}")

    # -- the view ----------------------------------------------------------------

    def __rich__(self) -> RenderableType:
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        parts: list[RenderableType] = []
        session = self.agent.session
        if session is not None:
            consent = session.consent
            header = Table.grid(padding=(0, 2))
            header.add_column(style="bold")
            header.add_column()
            trusted = (
                Text("trusted (your allowed_signers vouches for this key)", style="green")
                if consent.trusted
                else Text("NOT trusted: no allowed_signers vouches for this key", style="yellow")
            )
            header.add_row(
                "technician", Text(f"{printable(consent.name)} <{printable(consent.email)}>")
            )
            header.add_row("key", Text(consent.fingerprint))
            header.add_row("", trusted)
            header.add_row("ticket", Text(printable(consent.ticket)))
            header.add_row("scope", Text(", ".join(sorted(s.value for s in consent.granted))))
            elapsed = int(time.monotonic() - session.started)
            header.add_row("elapsed", f"{elapsed // 60:02d}:{elapsed % 60:02d}")
            parts.append(Panel(header, title="toolkit share: session running", title_align="left"))
        log = Text("\n".join(list(self.log)[-LOG_LINES:]) or "(nothing yet)")
        parts.append(Panel(log, title="what happens", title_align="left"))
        if self.mirror.active:
            rows = Text("\n".join(self.mirror.rows()))
            parts.append(
                Panel(rows, title="the technician's shell (read-only)", title_align="left")
            )
        question = self.question
        if question is not None:
            left = max(0, int(question.deadline - time.monotonic()))
            # nosemgrep: toolkit-print-untrusted -- a Question's lines are printable() (ask)
            body = Text("\n".join([*question.lines, "", f"y = yes, n or Enter = no ({left} s)"]))
            # nosemgrep: toolkit-print-untrusted -- and so is its title
            title = Text(question.title)
            # nosemgrep: toolkit-print-untrusted -- both made of printable() text, above
            parts.append(Panel(body, title=title, style="bold yellow", title_align="left"))
        parts.append(Text("q or Ctrl-C ends the session at once", style="dim"))
        return Group(*parts)

    async def run(self, until: asyncio.Future[Any]) -> None:
        """Draw and read keys until ``until`` is done."""
        from rich.live import Live

        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        if self.keys:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)  # keys one by one, not echoed; Ctrl-C stays SIGINT

            def readable() -> None:
                try:
                    data = os.read(fd, 64)
                except OSError:
                    data = b""
                if not data:
                    loop.remove_reader(fd)
                    return
                for key in data.decode("utf-8", errors="replace"):
                    self._key(key)

            loop.add_reader(fd, readable)
        try:
            if self.draw:
                with Live(self, console=self.console, refresh_per_second=8, transient=False):
                    await asyncio.shield(until)
            else:
                await asyncio.shield(until)
        finally:
            if self.keys:
                loop.remove_reader(fd)
                if self._saved is not None:
                    termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)


__all__ = ["LiveView", "Mirror"]
