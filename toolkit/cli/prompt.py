"""The technician's prompt on a terminal: line editing, history, completion, a status line.

prompt_toolkit edits the line (history in the state dir, kept across
sessions; Tab completes commands, ``diag``/``fix`` names from the agent's
catalogue, the agent's command templates after ``run``, and paths the agent
lists under its policy, a directory with its ``/``); rich draws the results
(toolkit.cli.render), through $PAGER when longer than the screen. The bottom
line shows ticket, customer host, granted scope, the session's elapsed time,
a detached shell and the keys, dropping whole parts on a narrow terminal.
While a command runs, one line says so, and while the agent asks the
customer (its notices), that it waits for the customer.

Ctrl-C while a command runs cancels that command on the agent (a ``cancel``
request); Ctrl-C at the prompt clears the line; ``exit`` or Ctrl-D ends the
session. When the customer ends it, or the connection drops, the prompt
stops at once and says why. The exit code is the session's own end (0 for
``exit``, 3 when the customer ended it, 4 when the connection dropped), as
ssh's: what each command did was shown when it came.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import AsyncGenerator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import HTML
from prompt_toolkit.history import FileHistory

from toolkit.cli._console import err, out
from toolkit.cli.render import DIRECTORY
from toolkit.cli.shell import close_detached, detached
from toolkit.errors import ExitCode, ToolkitError, TranscriptWriteError, UsageError
from toolkit.protocol import Op
from toolkit.session.commands import COMMANDS, Command
from toolkit.session.results import ENDED_BY_TECHNICIAN
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.session.results import OperationResult
    from toolkit.session.technician import TechnicianSession

PROMPT = "toolkit> "
#: Directory listings for completion are reused this long (seconds).
LIST_TTL = 10.0
PATH_COMMANDS = frozenset({"read", "ls", "stat"})
MAX_HISTORY_LINE = 4096


def history_path() -> Path:
    from toolkit import paths

    directory = paths.state_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    return directory / "history"


def _templates(info: dict[str, Any]) -> list[tuple[str, str]]:
    """The agent's command templates as (template, scope), diagnostics first."""
    commands = info.get("commands")
    found: list[tuple[str, str]] = []
    for scope, templates in commands.items() if isinstance(commands, dict) else ():
        if isinstance(templates, list):
            found += [(t, str(scope)) for t in templates if isinstance(t, str)]
    return sorted(found, key=lambda pair: (pair[1] != "diagnostics", pair[1], pair[0]))


def _up_to_placeholder(template: str) -> str:
    """The words of ``template`` before its first ``{placeholder}``, with their space."""
    words = template.split(" ")
    for i, word in enumerate(words):
        if word.startswith("{") and word.endswith("}"):
            return " ".join(words[:i]) + " "
    return template


def _names(info: dict[str, Any], scope: str) -> list[str]:
    procedures = info.get("procedures")
    named = procedures.get(scope) if isinstance(procedures, dict) else None
    return sorted(str(n) for n in named) if isinstance(named, dict) else []


class SessionCompleter(Completer):
    """Commands, then diag/fix names, then paths as far as the agent lists them."""

    def __init__(self, session: TechnicianSession) -> None:
        self._session = session
        self._listings: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        # Everything but paths is known locally; paths need the agent (the async variant).
        yield from self._local(document)

    def _local(self, document: Document) -> Iterable[Completion]:
        text = document.text_before_cursor
        words = text.split()
        if len(words) >= 1 and words[0] == "run" and text.startswith("run "):
            yield from self._commands(text[len("run ") :].lstrip(" "))
            return
        if not words or (len(words) == 1 and not text.endswith(" ")):
            word = words[0] if words else ""
            for name in COMMANDS:
                if name.startswith(word):
                    yield Completion(name + " ", -len(word), display=name)
            return
        if len(words) > 2 or (len(words) == 2 and text.endswith(" ")):
            return
        command, word = words[0], (words[1] if len(words) == 2 else "")
        candidates: list[str] = []
        if command == "diag":
            candidates = _names(self._session.info, "diagnostics")
        elif command == "fix":
            candidates = _names(self._session.info, "fixes")
        elif command == "help":
            candidates = list(COMMANDS)
        for name in candidates:
            if name.startswith(word):
                yield Completion(name, -len(word), display=printable(name, 80))

    def _commands(self, typed: str) -> Iterable[Completion]:
        """``run`` + Tab: the agent's templates, as far as their first placeholder."""
        offered: set[str] = set()
        for template, scope in _templates(self._session.info):
            if not template.startswith(typed) or not template.isprintable():
                continue  # (one that cannot be typed back as it is shown is not offered)
            completed = _up_to_placeholder(template)
            if len(completed) < len(typed):
                completed = template  # typed past the placeholder's start: the whole template
            if completed in offered:
                continue
            offered.add(completed)
            meta = "the customer is asked" if scope == "fixes" else scope
            yield Completion(
                completed,
                -len(typed),
                display=printable(template, 80),
                display_meta=printable(meta, 30),
            )

    async def get_completions_async(
        self, document: Document, complete_event: CompleteEvent
    ) -> AsyncGenerator[Completion, None]:
        for completion in self._local(document):
            yield completion
        text = document.text_before_cursor
        words = text.split(" ")
        if (
            len(words) != 2
            or words[0] not in PATH_COMMANDS
            or not complete_event.completion_requested
        ):
            return
        typed = words[1]
        if not typed.startswith(("/", "~")):
            return
        cut = typed.rfind("/") + 1
        directory, stem = typed[:cut], typed[cut:]  # "~/" keeps its slash: "~" alone is no path
        for entry in await self._list(directory):
            name = entry.get("name")
            if not isinstance(name, str) or not name.startswith(stem) or "/" in name:
                continue
            if any(not c.isprintable() for c in name) or " " in name:
                continue  # cannot be typed back as one word here
            is_dir = entry.get("kind") == DIRECTORY
            full = directory + name + ("/" if is_dir else "")
            yield Completion(full, -len(typed), display=name + ("/" if is_dir else ""))

    async def _list(self, directory: str) -> list[dict[str, Any]]:
        now = time.monotonic()
        cached = self._listings.get(directory)
        if cached is not None and now - cached[0] < LIST_TTL:
            return cached[1]
        try:
            entries = await self._session.list_names(directory)
        except Exception:  # a completion must never break the prompt
            entries = []
        self._listings[directory] = (now, entries)
        return entries


class Waiting:
    """One line on the terminal while a command waits, redrawn until it is over.

    ``running fix NAME ... 3s`` while the agent works (after :data:`QUIET` seconds,
    so that quick commands do not flicker), ``waiting for the customer to approve
    fix NAME ... 12s`` while the agent says (a notice, docs/protocol.md) that it
    is asking the customer. Erased when the answer or the result comes. Only on
    a terminal: a pipe gets nothing.
    """

    QUIET = 1.0

    def __init__(self, command: str, *, running: bool = True, stream: TextIO | None = None):
        import sys

        self._stream = stream if stream is not None else sys.stderr
        self._on = self._stream.isatty()
        self._command = printable(command, 60)
        self._running = running
        self._asking: str | None = None
        self._since = time.monotonic()
        self._shown = False
        self._ticker: asyncio.Task[None] | None = None
        if self._on:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def notice(self, request_id: int, notice: dict[str, Any]) -> None:
        """A notice from the agent: the customer is being asked, or has answered."""
        asking = notice.get("asking")
        if isinstance(asking, str):
            self._asking, self._since = printable(asking, 120), time.monotonic()
        elif notice.get("answered") is True and self._asking is not None:
            self._asking, self._since = None, time.monotonic()
            if not self._running:
                self.clear()
        self._draw()

    def text(self, width: int = 0) -> str | None:
        """The line as it is now, within ``width`` columns if given (None: nothing to show).

        One row only, or erasing it would leave its first rows behind: what is
        asked or run is shortened, the time stays.
        """
        seconds = int(time.monotonic() - self._since)
        if self._asking is not None:
            head, what = "waiting for the customer to approve ", self._asking
        elif self._running and time.monotonic() - self._since >= self.QUIET:
            head, what = "running ", self._command
        else:
            return None
        tail = f" ... {seconds}s"
        room = width - len(head) - len(tail) if width > 0 else len(what)
        if len(what) > room:
            what = what[: max(room - 1, 0)] + "…"
        return (head + what + tail)[: width if width > 0 else None]

    def _draw(self) -> None:
        if not self._on:
            return
        try:
            width = os.get_terminal_size(self._stream.fileno()).columns - 1
        except (OSError, ValueError):
            width = 79
        line = self.text(width)
        if line is None:
            return
        dim = ("", "") if os.environ.get("NO_COLOR") else ("\x1b[2m", "\x1b[0m")
        self._stream.write(f"\r\x1b[2K{dim[0]}{line}{dim[1]}")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self._stream.write("\r\x1b[2K")
            self._stream.flush()
            self._shown = False

    def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        self._running = False
        self._asking = None
        self.clear()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._draw()


def _elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


#: When the status line is wider than the terminal, its parts give way, first to
#: last: the keys' hint gets shorter, the host goes, the keys' hint goes, then the
#: scope, then the detached shell's hint gets shorter (twice), then the time. The
#: ticket always stays; no part is ever cut mid-word.
_GIVE_WAY = ("keys", "host", "keys", "scope", "shell", "shell", "time")


def status_line(session: TechnicianSession, started: float, width: int = 0) -> HTML:
    """The bottom line; within ``width`` columns if given, parts dropped or shortened whole."""
    from html import escape

    from prompt_toolkit.utils import get_cwidth

    from toolkit.consent import scope_names

    host = printable(str(session.info.get("host") or "?"), 60)
    scope = ", ".join(scope_names(session.consent.granted))
    ticket = printable(session.consent.ticket, 60)
    # Each part: its forms from the longest to the shortest, as (plain, markup).
    forms: dict[str, list[tuple[str, str]]] = {
        "ticket": [(f"ticket {ticket}", f"ticket <b>{escape(ticket)}</b>")],
        "host": [(f"host {host}", f"host <b>{escape(host)}</b>")],
        "scope": [(f"scope {scope}", f"scope <b>{escape(scope)}</b>")],
        "time": [(_elapsed(time.monotonic() - started),) * 2],
        "keys": [
            ("Tab, Ctrl-C cancels, Ctrl-D ends",) * 2,
            ("Ctrl-D ends",) * 2,
        ],
    }
    if detached(session):
        forms["shell"] = [
            (f"shell detached{hint}", f"<b>shell detached</b>{hint}")
            for hint in (": type shell to go back", ": type shell", "")
        ]
    order = ["ticket", "host", "scope", "time", "shell", "keys"]
    chosen = {name: 0 for name in order if name in forms}

    def plain() -> str:
        return " " + " | ".join(forms[n][chosen[n]][0] for n in order if n in chosen) + " "

    steps = iter(_GIVE_WAY)
    while width > 0 and get_cwidth(plain()) >= width:
        name = next(steps, None)
        if name is None:
            break  # the ticket alone: as it is
        if name not in chosen:
            continue
        if chosen[name] + 1 < len(forms[name]):
            chosen[name] += 1
        else:
            del chosen[name]
    return HTML(" " + " | ".join(forms[n][chosen[n]][1] for n in order if n in chosen) + " ")


def _columns() -> int:
    """The terminal's width, as the prompt draws it."""
    from prompt_toolkit.application.current import get_app

    try:
        return get_app().output.get_size().columns
    except Exception:  # no app running: no limit
        return 0


async def _run(session: TechnicianSession, command: Command) -> OperationResult | None:
    """One command, with Ctrl-C cancelling it on the agent (not ending the session)."""
    from toolkit.cli import render
    from toolkit.cli._terminal import stream_output

    if command.op is Op.SHELL:
        from toolkit.cli.shell import interactive_shell
        from toolkit.session.client import ConnectionLost, SessionEnded

        try:
            left = await interactive_shell(session)
        except (SessionEnded, ConnectionLost, TranscriptWriteError):
            raise  # the session is over (or can no longer be recorded): said once, above
        except ToolkitError as exc:
            err().print(printable(exc.message), style="red", highlight=False, markup=False)
            return None
        response = left.response
        if left.how == "detached":
            how = "the shell keeps running: type shell to go back"  # fits 80 columns
        elif left.how == "hung up":
            how = "~. hung up the shell"
        elif response is not None and response.ok:
            how = f"the shell exited {printable(response.result.get('exit_status'))}"
        else:
            how = "the shell ended"
        err().print(
            f"[back at the toolkit prompt; {how}]", style="dim", highlight=False, markup=False
        )
        return None
    loop = asyncio.get_running_loop()
    cancelling: list[asyncio.Task[int]] = []
    streaming = command.op is Op.RUN
    # Output streamed as it comes owns the screen: its line shows only while the customer
    # is asked (nothing streams before the answer).
    waiting = Waiting(command.text, running=not streaming)

    def interrupt() -> None:
        waiting.clear()
        err().print("^C cancelling...", style="yellow", highlight=False, markup=False)
        cancelling.append(loop.create_task(session.cancel_running()))

    loop.add_signal_handler(signal.SIGINT, interrupt)
    session.client.on_notice = waiting.notice
    try:
        result = await session.execute(command, stream_output if streaming else None)
    finally:
        session.client.on_notice = None
        waiting.stop()
        loop.remove_signal_handler(signal.SIGINT)
        for task in cancelling:
            with contextlib.suppress(Exception):
                await task
    if streaming:
        result = replace(result, stdout=b"")
    if result.error == "cancelled":
        err().print("cancelled", style="yellow", highlight=False)
        return result
    if streaming:
        render.show(result, out(), err())
    else:
        await _show_paged(session, result)
    return result


async def _show_paged(session: TechnicianSession, result: OperationResult) -> None:
    """``result`` drawn as always; through the pager when longer than the screen.

    Drawn first (escaped and coloured as on the terminal), then either written
    or handed to the pager, so the pager sees exactly what the screen would.
    """
    import sys

    from rich.console import Console

    from toolkit.cli import render
    from toolkit.cli._terminal import Captured, page

    screen = out()
    if not sys.stdout.isatty():
        render.show(result, screen, err())
        return
    drawn = Captured()
    console = Console(
        file=drawn,
        force_terminal=True,
        width=screen.width,
        soft_wrap=True,
        emoji=False,  # as toolkit.cli._console: ":fire:" in a file is text
    )
    render.show(result, console, console)
    text = drawn.getvalue()
    stop = asyncio.ensure_future(session.client.wait_ended())
    try:
        if await page(text, stop):
            return
    finally:
        stop.cancel()
    sys.stdout.write(text)
    sys.stdout.flush()


async def interactive(session: TechnicianSession) -> tuple[ExitCode, str]:
    """The prompt until ``exit``, Ctrl-D, the customer's end or a lost connection."""
    from toolkit.session.client import ConnectionLost, SessionEnded
    from toolkit.session.commands import parse_checked

    started = time.monotonic()
    prompt: PromptSession[str] = PromptSession(
        history=_history(),
        completer=SessionCompleter(session),
        complete_while_typing=False,
        bottom_toolbar=lambda: status_line(session, started, _columns()),
        refresh_interval=1.0,
        enable_history_search=True,
    )
    err().print(
        "Type help for the commands, Tab to complete, exit or Ctrl-D to end.",
        style="dim",
        highlight=False,
    )
    ended = asyncio.ensure_future(session.client.wait_ended())
    asking: asyncio.Future[str | None] | None = None
    try:
        while True:
            if asking is None:
                asking = asyncio.ensure_future(_ask(prompt))
            waits: set[asyncio.Future[Any]] = {asking, ended}
            shell = detached(session)
            gone = asyncio.ensure_future(shell.wait()) if shell is not None else None
            if gone is not None:
                waits.add(gone)
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if gone is not None and not gone.done():
                    gone.cancel()
            if ended.done():
                if prompt.app.is_running:
                    prompt.app.exit(exception=EOFError())
                with contextlib.suppress(BaseException):
                    await asking
                raise ended.result()
            if not asking.done():  # the detached shell ended: say so above the prompt
                response = await close_detached(session)
                status = printable(response.result.get("exit_status")) if response else "?"
                note = f"[the detached shell ended, exit {status}]"
                await run_in_terminal(
                    functools.partial(err().print, note, style="dim", highlight=False, markup=False)
                )
                continue
            try:
                line = asking.result()
            except EOFError:
                await _hang_up_detached(session)
                return ExitCode.OK, ENDED_BY_TECHNICIAN
            finally:
                asking = None
            if line is None:
                continue  # Ctrl-C at the prompt: a fresh line
            try:
                command = parse_checked(line)
            except UsageError as exc:
                err().print(
                    printable_lines(exc.diagnostics()), markup=False, highlight=False, style="red"
                )
                continue
            if command is None:
                continue
            if command.name == "exit":
                await _hang_up_detached(session)
                return ExitCode.OK, ENDED_BY_TECHNICIAN
            # What a command did was shown to the person (a refusal, a failure): like
            # ssh's, the prompt's exit code is the session's own end, not the worst command.
            await _run(session, command)
    except SessionEnded as exc:
        err().print(printable_lines(exc.message), markup=False, style="bold red")
        return ExitCode.REFUSED, exc.message
    except ConnectionLost as exc:
        err().print(printable_lines(exc.message), markup=False, style="bold red")
        return ExitCode.NETWORK, exc.message
    finally:
        ended.cancel()


async def _hang_up_detached(session: TechnicianSession) -> None:
    """The session ends: a detached shell is hung up first, its end recorded."""
    if detached(session) is not None:
        err().print("[hanging up the detached shell]", style="dim", highlight=False, markup=False)
        await close_detached(session)


def _history() -> FileHistory | None:
    import os

    try:
        path = history_path()
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        return FileHistory(str(path))
    except OSError:
        return None


async def _ask(prompt: PromptSession[str]) -> str | None:
    """One line; None for Ctrl-C; EOFError for Ctrl-D."""
    try:
        line = await prompt.prompt_async(PROMPT)
    except KeyboardInterrupt:
        return None
    return line[:MAX_HISTORY_LINE]


__all__ = ["SessionCompleter", "Waiting", "history_path", "interactive", "status_line"]
