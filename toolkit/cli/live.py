"""The customer's live view while a session runs (``toolkit share`` on a terminal).

Who is connected (name, key fingerprint, trusted or not), the ticket, the
granted scope and the elapsed time; the operations as they happen; while a
shell is open, its screen, mirrored read-only (a pyte terminal fed with the
shell's output); and any question for the customer (a fix, an operation
outside the approved scope) with its exact commands, a default of no and a
countdown. Keys, read on the event loop with the terminal in cbreak mode:
``q`` (or Ctrl-C) ends the session at once for both sides (``q`` is an end on
purpose, exit 0; Ctrl-C an interruption, exit 130); ``y`` answers yes, ``n`` or
Enter no.

While a shell is open (granted, started and not yet ended) the header says
so, whether or not its mirror shows anything: the technician may have
detached from it on their side, which the agent cannot see, and it runs on.
When the session ends the view goes, and its whole log is printed as plain
lines, so that the terminal's scrollback keeps what the view had to drop.

Without a terminal on stderr there is no drawing: lines are printed as they
come, and questions are asked on their own line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import termios
import time
import tty
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.agent.operations import COMPLETION, Answer
from toolkit.text import printable

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from toolkit.agent.server import Agent

LOG_LINES = 12
#: Log lines kept for the scrollback at the end (a line is about 100 bytes); older ones
#: are counted, and the customer's copy of the transcript has them all.
LOG_KEEP = 5000
#: The header's word while a shell runs: the technician may type in it, even after they
#: detached from it on their side (the agent cannot see that).
SHELL_OPEN = "open: it runs until it exits or the session ends"
#: Paths a folded line of completion look-ups names (the newest).
FOLD_PATHS = 4
#: The agent's line for a listing: "list PATH (ENTRIES)".
_LISTED = re.compile(r"list (.*) \(\d+\)", re.DOTALL)
#: The view's last line. q is the customer ending the share on purpose (exit 0); Ctrl-C
#: and SIGTERM are interruptions (130), as everywhere else (docs/exit-codes.md).
HELP = "q ends the session at once (exit 0); so does Ctrl-C (exit 130)"


@dataclass
class Question:
    title: str
    lines: list[str]
    deadline: float
    #: What the log says was answered, a whole phrase: "the fix flush-dns (...): 1 command".
    subject: str
    answer: asyncio.Future[bool] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: Whether every line of it is on the screen (drawn whole, or printed): y counts then.
    shown: bool = False


@dataclass
class _Fold:
    """Consecutive look-ups for the technician's Tab completion, as one line of the log.

    Each is still an operation the agent's policy decided and both transcripts
    record; the customer's screen only shows them together, marked as completion.
    Only answered listings fold: the technician alone chooses the mark, so a
    refused one is a line of its own, with its path (a probe shows).
    """

    paths: list[str] = field(default_factory=list)
    count: int = 0

    def add(self, path: str) -> None:
        self.count += 1
        if path in self.paths:
            self.paths.remove(path)
        self.paths.append(path)  # the newest last

    def text(self) -> str:
        shown = self.paths[-FOLD_PATHS:]
        parts = [*(["..."] if len(self.paths) > len(shown) else []), *shown]
        many = "s" if self.count != 1 else ""
        return f"completion (Tab): {', '.join(parts)} ({self.count} look-up{many})"


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

    def rows(self, limit: int = 1000) -> list[str]:
        """The screen's rows down to its last non-blank one; the bottom ``limit`` of them."""
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
        self.log: deque[str] = deque(maxlen=LOG_KEEP)
        self.dropped = 0  # log lines older than the LOG_KEEP kept
        self.mirror = Mirror()
        self.shell_open = False  # from its first size to its end
        self.question: Question | None = None
        self.on_quit: Callable[[], None] | None = None
        self._fold: _Fold | None = None  # the log's last line, while it folds look-ups
        self._saved: list[Any] | None = None
        self._live: Any = None

    # -- what the agent reports ------------------------------------------------------

    def say(self, message: str) -> None:
        listed = _LISTED.fullmatch(message.removeprefix(COMPLETION))
        if message.startswith(COMPLETION) and listed is not None and self.draw:
            self._complete(listed.group(1))
            return
        self._fold = None
        line = f"{time.strftime('%H:%M:%S')} {printable(message)}"
        self._append(line)
        if not self.draw:
            self.console.print(f"[{line[:8]}]{line[8:]}", markup=False, highlight=False)

    def _complete(self, path: str) -> None:
        """A look-up for the technician's Tab completion: folded into one line, kept updated."""
        fold = self._fold
        if fold is None or not self.log:
            fold = self._fold = _Fold()
            self._append("")
        fold.add(path)
        self.log[-1] = f"{time.strftime('%H:%M:%S')} {printable(fold.text())}"

    def _append(self, line: str) -> None:
        if len(self.log) == self.log.maxlen:
            self.dropped += 1
        self.log.append(line)

    def shell_size(self, width: int, height: int) -> None:
        """A shell opened (its first size), or its window changed size."""
        self.shell_open = True
        self.mirror.resize(width, height)

    def shell_output(self, data: bytes) -> None:
        self.mirror.feed(data)

    def shell_ended(self) -> None:
        self.shell_open = False
        self.mirror = Mirror()

    def scrollback(self) -> None:
        """The whole log as plain lines, once the view is gone: the view dropped its
        oldest lines to fit the terminal, and the terminal's scrollback keeps these."""
        if self.dropped:
            self.console.print(
                f"({self.dropped} earlier lines: see your copy of the transcript)",
                markup=False,
                highlight=False,
            )
        for line in self.log:
            # nosemgrep: toolkit-print-untrusted -- log lines are printable() (say, _complete)
            self.console.print(f"[{line[:8]}]{line[8:]}", markup=False, highlight=False)

    # -- questions ---------------------------------------------------------------

    async def ask(
        self, title: str, lines: Sequence[str], timeout: float, subject: str | None = None
    ) -> bool | Answer:
        """Yes or no, in the view; Answer.NO_ANSWER when none came by ``timeout``.

        ``subject`` names what is asked about in the log ("you approved SUBJECT");
        without it, the title does.
        """
        while self.question is not None:  # one question at a time, in order
            with contextlib.suppress(BaseException):
                await asyncio.shield(self.question.answer)
        # Made printable here, whoever asks: the view shows them as they are below.
        shown = [printable(line, None) for line in lines]
        question = Question(
            printable(title, None),
            shown,
            time.monotonic() + timeout,
            printable(subject if subject is not None else title, None),
        )
        self.question = question
        if not self.draw:
            text = "\n".join([title, *lines, f"Allow? [y/N] (no in {int(timeout)} s): "])
            self.console.print(text, end="", markup=False, highlight=False)
            question.shown = True
        try:
            return await asyncio.wait_for(asyncio.shield(question.answer), timeout)
        except TimeoutError:
            self.say(f"no answer in time: refused {question.subject}")
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
            if not question.shown:
                return  # a yes to lines the customer cannot see is no yes
            question.answer.set_result(True)
        elif key in ("n", "N", "\r", "\n"):
            question.answer.set_result(False)
        else:
            return
        if not self.draw:
            self.console.print("yes" if question.answer.result() else "no", markup=False)
        answer = "approved" if question.answer.result() else "declined"
        # nosemgrep: toolkit-print-untrusted -- a Question's subject is printable() (ask)
        self.say(f"you {answer} {question.subject}")

    # -- the view ----------------------------------------------------------------

    def __rich__(self) -> RenderableType:
        """The view, fitted to the terminal: the log and the mirror show their newest lines.

        The header, a question and the help line come first; what rows are left go
        to the log and, while a shell runs, to its mirror (the bottom rows of the
        shell's screen, so the newest line and the prompt always show). Nothing is
        left for the terminal to cut at the bottom.
        """
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        width, height = self.console.size
        inner = max(1, width - 4)  # a panel's borders and padding
        top = self._header()
        asked = self.question  # drawn in a thread of rich's: the one question, throughout
        question = self._question(asked)
        shell = self.shell_open or self.mirror.active
        used = (0 if top is None else self._height(top, width)) + 1  # and the help line
        if asked is not None and question is not None:
            tall = self._height(question, width)
            # A question the terminal cannot show whole, beside the smallest log (and
            # mirror), would lose its bottom rows, commands included: it is not shown in
            # part, and y waits until it fits.
            least = 3 + (3 if shell else 0)
            asked.shown = used + tall + least <= height - 1
            if not asked.shown:
                question = self._too_tall(asked, tall, height)
            used += self._height(question, width)
        # One row spare: a view as tall as the terminal would scroll it by a line.
        left = max(0, height - 1 - used)
        mirror = self.mirror.rows(limit=max(1, height)) if shell else None
        if mirror is None:
            log_rows = max(1, left - 2)
        else:
            log_rows = max(1, min(LOG_LINES, (left - 2) // 3, left - 5))
        parts: list[RenderableType] = [] if top is None else [top]
        log_height = min(self._log_height(log_rows, inner), log_rows) + 2
        log = self._log(log_rows, inner)
        parts.append(Panel(log, title="what happens", title_align="left", height=log_height))
        if mirror is not None:
            mirror_rows = max(1, left - log_height - 2)
            shown = Text("\n".join(mirror[-mirror_rows:]), no_wrap=True, overflow="crop")
            title = "the technician's shell (read-only): open"
            parts.append(Panel(shown, title=title, title_align="left"))
        if question is not None:
            parts.append(question)
        parts.append(Text(HELP, style="dim", no_wrap=True, overflow="ellipsis"))
        return Group(*parts)

    def _height(self, part: RenderableType, width: int) -> int:
        options = self.console.options.update(width=width, height=None)
        return len(self.console.render_lines(part, options, pad=False))

    def _wrapped(self, line: str, inner: int) -> int:
        from rich.text import Text

        return max(1, len(Text(line, no_wrap=False, overflow="fold").wrap(self.console, inner)))

    def _log_lines(self, rows: int, inner: int) -> list[str]:
        """The newest log lines that fit in ``rows`` rows once wrapped (the newest, always)."""
        chosen: list[str] = []
        used = 0
        for line in reversed(list(self.log)[-LOG_LINES:]):
            need = self._wrapped(line, inner)
            if chosen and used + need > rows:
                break
            chosen.append(line)
            used += need
        return chosen[::-1]

    def _log_height(self, rows: int, inner: int) -> int:
        lines = self._log_lines(rows, inner)
        return sum(self._wrapped(line, inner) for line in lines) if lines else 1

    def _log(self, rows: int, inner: int) -> RenderableType:
        from rich.text import Text

        # A newest line longer than the panel is cut at the panel's bottom row, never
        # the panel's tail: the rows above it give way first.
        shown = "\n".join(self._log_lines(rows, inner)) or "(nothing yet)"
        return Text(shown, no_wrap=False, overflow="fold")  # share's console soft-wraps

    def _header(self) -> RenderableType | None:
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        session = self.agent.session
        if session is None:
            return None
        consent = session.consent
        header = Table.grid(padding=(0, 2))
        header.add_column(style="bold", no_wrap=True)
        header.add_column(no_wrap=True, overflow="ellipsis")
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
        granted = sorted(s.value for s in consent.granted)
        header.add_row("scope", Text(", ".join(granted)))
        if "shell" in granted:  # whether one runs now: the technician's side may hide it
            shell = Text(SHELL_OPEN, style="bold") if self.shell_open else Text("none open")
            header.add_row("shell", shell)
        elapsed = int(time.monotonic() - session.started)
        header.add_row("elapsed", f"{elapsed // 60:02d}:{elapsed % 60:02d}")
        return Panel(header, title="toolkit share: session running", title_align="left")

    def _too_tall(self, question: Question, rows: int, height: int) -> RenderableType:
        from rich.panel import Panel
        from rich.text import Text

        left = max(0, int(question.deadline - time.monotonic()))
        body = Text(
            f"This question takes {rows} rows and your terminal shows {height}: make the "
            f"window taller to read all of it (y counts only then), or press n to refuse "
            f"({left} s).",
            no_wrap=False,
            overflow="fold",
        )
        # nosemgrep: toolkit-print-untrusted -- a Question's title is printable() (ask)
        title = Text(question.title)
        # nosemgrep: toolkit-print-untrusted -- numbers, and a title made printable (ask)
        return Panel(body, title=title, style="bold yellow", title_align="left")

    def _question(self, question: Question | None) -> RenderableType | None:
        from rich.panel import Panel
        from rich.text import Text

        if question is None:
            return None
        left = max(0, int(question.deadline - time.monotonic()))
        lines = [*question.lines, "", f"y = yes, n or Enter = no ({left} s)"]
        # nosemgrep: toolkit-print-untrusted -- a Question's lines are printable() (ask)
        body = Text("\n".join(lines), no_wrap=False, overflow="fold")
        # nosemgrep: toolkit-print-untrusted -- and so is its title
        title = Text(question.title)
        # nosemgrep: toolkit-print-untrusted -- both made of printable() text, above
        return Panel(body, title=title, style="bold yellow", title_align="left")

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
                try:
                    # Transient: the log printed after it says each line once.
                    with Live(self, console=self.console, refresh_per_second=8, transient=True):
                        await asyncio.shield(until)
                finally:
                    self.scrollback()
            else:
                await asyncio.shield(until)
        finally:
            if self.keys:
                loop.remove_reader(fd)
                if self._saved is not None:
                    termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)


__all__ = ["LiveView", "Mirror"]
