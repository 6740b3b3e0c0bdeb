"""``toolkit connect``: the technician's audited session on a customer's machine.

A renderer over :func:`toolkit.session.workflow.run_session`: it parses the
flags, builds the request, and says what the workflow reports (stderr for
people, one JSON line per result and a summary on stdout with --json).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli._complete import complete_scope
from toolkit.cli._console import say
from toolkit.cli._identity import AgentOption, KeyOption
from toolkit.cli._relay import DEFAULT_RELAY_DIR, RelayDirOption, RelayNameOption, RelayOption
from toolkit.cli._session import (
    GrantOption,
    HostKeyOption,
    error_line,
    place_of,
    session_request,
)
from toolkit.cli._terminal import TerminalLines, stream_output, write_output
from toolkit.errors import ExitCode, ToolkitError, UsageError
from toolkit.protocol import Op
from toolkit.session.results import ENDED_BY_TECHNICIAN, OperationResult, SessionResult, Status
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.consent import Scope
    from toolkit.secrets import Secret
    from toolkit.session.results import Tally
    from toolkit.session.technician import TechnicianSession
    from toolkit.session.workflow import Line
    from toolkit.tickets.attach import Attached, Synced

PROMPT = "toolkit> "
#: How often the prompt checks whether the customer ended the session meanwhile.
ENDED_POLL = 0.1


def _read_batch(batch: str) -> list[Line]:
    """Every command of the batch, checked before anything connects."""
    from toolkit.session.workflow import parse_batch

    if batch == "-":
        text = sys.stdin.read()
        source = "stdin"
    else:
        from toolkit.inputs import read_text

        text = read_text(batch, what="the batch file")  # a FIFO or device: refused, not awaited
        source = batch
    return parse_batch(text, source)


def _warn_fixes(lines: list[Line], asked: frozenset[Scope]) -> None:
    """One line on stderr when the batch has fixes that --scope does not ask for."""
    from toolkit.consent import Scope

    if Scope.FIXES in asked:
        return
    # A fix's check and verify only look: the diagnostics scope covers them.
    looks = ("check", "verify")
    fixes = [
        line
        for line in lines
        if line.command.op is Op.FIX and line.command.args.get("step") not in looks
    ]
    if not fixes:
        return
    numbers = ", ".join(str(line.number) for line in fixes)
    where = f"{fixes[0].source}, line{'s' if len(fixes) > 1 else ''} {numbers}"
    say(
        printable(
            f"warning: {where}: fix needs --scope fixes, which this session does not ask "
            "for; the customer's agent will refuse it unless the customer allows it on their "
            "screen. Add --scope fixes to ask for it."
        )
    )


#: Under the code prompt when what was typed is not a code: one line within 80 columns.
CODE_HINT = "Not a code: 9 digits, like 417-093-552 (10 or 11 through a relay)"


async def _ask_code(again: bool = False) -> Secret:
    """The code, typed at the terminal and shown as typed, grouped; asked until it is one.

    A code is not a password: the customer read it out, and seeing the digits is
    how the technician checks them with the customer.
    """
    from toolkit.consent import parse_code
    from toolkit.consent._code import grouped_digits
    from toolkit.consent.errors import CodeFormatError

    question = "Type the code again: " if again else "One-time code from the customer: "
    if not sys.stderr.isatty():  # the prompt on stderr, the digits echoed by the terminal
        lines = TerminalLines(sys.stdin.fileno())
        while True:
            sys.stderr.write(question)
            sys.stderr.flush()
            try:
                return parse_code(await lines.line())
            except CodeFormatError as exc:
                say(printable(exc.message))  # it may quote what was typed
    from prompt_toolkit import PromptSession
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.output import create_output
    from prompt_toolkit.validation import Validator

    def well_formed(text: str) -> bool:
        try:
            parse_code(text)
        except CodeFormatError:
            return False
        return True

    prompt: PromptSession[str] = PromptSession(
        output=create_output(stdout=sys.stderr),
        validator=Validator.from_callable(
            well_formed,
            error_message=CODE_HINT,
            move_cursor_to_end=True,
        ),
        validate_while_typing=False,
    )

    def regroup(buffer: Buffer) -> None:
        shown = grouped_digits(buffer.text)
        if shown != buffer.text:  # setting it calls this again, which then does nothing
            buffer.text = shown
            buffer.cursor_position = len(shown)

    prompt.default_buffer.on_text_changed += regroup
    return parse_code(await prompt.prompt_async(question))


def _show(result: OperationResult, as_json: bool, line: Line | None = None) -> None:
    """A result for people (plain text) or scripts (one JSON line).

    stdout is what differs: with ``as_json`` one JSON line, else only what
    the commands printed and the files read. toolkit's lines for people on
    stderr (a refusal, a step's header, an exit status) are the same either
    way; the commands' own stderr is in the JSON line instead.
    """
    if as_json:
        body = {"type": "result", "line": line.number if line is not None else None}
        # ASCII: a C1 control or a bidi override from the agent stays a \u escape.
        print(json.dumps({**body, **result.to_json()}), flush=True)
    if result.status is Status.REFUSED or result.error:
        from toolkit.session.workflow import PROMPT_SOURCE

        message = printable(result.message or "")
        if not message.startswith(f"{result.status}:"):
            message = f"{result.status}: {message}"
        if line is not None and line.source != PROMPT_SOURCE:
            message = f"{line.where}: {message}"
        say(message)
        return
    if result.name in ("diag", "fix"):
        from toolkit.cli.render import steps

        for step in steps(result):
            # A header for people, on stderr: stdout holds only what the commands printed.
            say(f"== {printable(step.argv)} (exit {printable(step.exit_status)})")
            if not as_json:
                write_output(sys.stdout, step.stdout)
                write_output(sys.stderr, step.stderr)
        from toolkit.cli.render import findings_lines

        for finding in findings_lines(result):
            say(finding)
    elif as_json:
        pass
    elif result.name == "ls":
        for entry in result.result.get("entries", []):
            # str() first: a format spec on a peer's value of another type would raise.
            kind, length = str(entry.get("kind", "?")), str(entry.get("size", 0))
            text = f"{kind:<8} {length:>12} {entry.get('name')}"
            say(printable(text), stderr=False)
    elif result.name == "stat":
        for key in ("path", "kind", "size", "mode", "mtime"):
            value = result.result.get(key)
            if key == "mode" and isinstance(value, int):
                value = oct(value)
            say(f"{key:<6} {printable(str(value))}", stderr=False)
    else:
        write_output(sys.stdout, result.stdout or result.content)
        write_output(sys.stderr, result.stderr)
    if result.exit_status not in (None, 0):
        say(f"exit status {result.exit_status}", highlight=True)


def connect_command(
    address: Annotated[
        str | None,
        typer.Argument(metavar="HOST:PORT", help="What toolkit share printed (not with --relay)."),
    ] = None,
    *,
    ticket: Annotated[
        str,
        typer.Option("--ticket", metavar="TICKET", help="The support ticket this session is for."),
    ],
    code: Annotated[
        str | None,
        typer.Option(
            "--code",
            metavar="CODE",
            help="The customer's one-time code; a wrong one ends connect "
            "[default: ask, shown as typed, again after a wrong code].",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="What to ask for: diagnostics, fixes, shell (repeatable) [default: diagnostics].",
            show_default=False,
            autocompletion=complete_scope,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", metavar="FILE", help="Run the commands in FILE (- for stdin), no prompt."
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Each result as one JSON line, then a summary line."),
    ] = False,
    key: KeyOption = None,
    agent: AgentOption = None,
    relay: RelayOption = None,
    relay_dir: RelayDirOption = DEFAULT_RELAY_DIR,
    grant: GrantOption = None,
    host_key: HostKeyOption = None,
    name: RelayNameOption = None,
) -> None:
    """Connect to a customer's toolkit share, with their code and consent (or a grant)."""
    screen = _Screen(as_json)
    try:
        worst = _connect(
            address, ticket, code, scope, batch, as_json, key, agent, relay, relay_dir, screen,
            grant=grant, host_key=host_key, name=name,
        )  # fmt: skip
    except ToolkitError as exc:
        if as_json and not screen.printed:  # a script hears why, on stdout too
            print(json.dumps(error_line(exc)), flush=True)
        raise
    if worst:
        raise typer.Exit(worst)


def _connect(
    address: str | None,
    ticket: str,
    code: str | None,
    scope: list[str] | None,
    batch: str | None,
    as_json: bool,
    key: Path | None,
    agent: str | None,
    relay: str | None,
    relay_dir: str,
    screen: _Screen,
    *,
    grant: Path | None = None,
    host_key: str | None = None,
    name: str | None = None,
) -> int:
    import asyncio

    from toolkit.consent import scopes
    from toolkit.session.workflow import Work, run_batch, run_session
    from toolkit.tickets.base import check_ticket_id

    place = place_of(address, relay, relay_dir, name)
    check_ticket_id(ticket)
    try:
        asked = scopes(scope or ["diagnostics"])
    except ValueError as exc:
        raise UsageError(f"--scope: {exc}") from None
    if batch is not None:
        lines: list[Line] | None = _read_batch(batch)
        assert lines is not None
        _warn_fixes(lines, asked)
    elif sys.stdin.isatty():
        lines = None  # the prompt
    else:
        raise UsageError(
            "No terminal for the prompt.", hint="Use --batch FILE, or --batch - to read stdin."
        )
    request = session_request(
        place, ticket, code, asked, key, agent, verdict=as_json, grant=grant, host_key=host_key
    )
    screen.grant = request.grant.id if request.grant is not None else None
    screen.batch = lines is not None
    screen.interactive = _interactive(lines)
    work: Work
    if lines is not None:
        batch_lines = lines

        async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
            return await run_batch(session, batch_lines, screen, tally, stream=not as_json)

    elif screen.interactive:

        async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
            from toolkit.cli.prompt import interactive

            return await interactive(session)  # what it did was shown; nothing is counted

    else:

        async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
            return await _plain_prompt(session, tally, screen)

    # At the interactive prompt Ctrl-C cancels the running command (toolkit.cli.prompt);
    # in a batch or the plain prompt it ends the session.
    result = asyncio.run(run_session(request, screen, work, ctrl_c_ends=not screen.interactive))
    return result.exit_code


class _Screen:
    """connect's side of the workflow (SessionUI, CommandsUI): lines on stderr for people,
    with --json one line per result and the summary on stdout."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.batch = False  # --batch: a recap closes it
        self.interactive = False  # the full prompt: no summary line, it counts nothing
        self.printed = False  # the summary line is out: an error after it is not a line
        self.grant: str | None = None  # the grant's id, with --grant: nobody is asked

    # SessionUI

    async def ask_code(self, *, again: bool = False) -> Secret:
        return await _ask_code(again)

    def ticket_passphrase(self, *, confirm: bool = False) -> str:
        from toolkit.cli.tickets import ask_passphrase

        return ask_passphrase(confirm=confirm)

    def ticket_note(self, text: str) -> None:
        say(text)

    def outbox_tried(self, synced: Sequence[Synced]) -> None:
        from toolkit.cli.tickets import report_sync

        for entry in synced:
            report_sync(*entry)

    def connecting(self, place: str) -> None:
        if self.grant is not None:
            say(f"Connecting to {place} with the grant {self.grant}...", highlight=True)
            return
        say(  # stderr's lines for people are the same with --json: stdout is what differs
            f"Connecting to {place}; the customer will be asked to approve...",
            highlight=True,
        )

    def wrong_code(self, message: str) -> None:
        say(printable_lines(message), highlight=True)
        say("Check the digits with the customer.")

    def consent_passed(self, host_key: str, granted: Sequence[str]) -> None:
        say(f"Consent passed. Agent host key {host_key}; granted: {', '.join(granted)}.")

    def attached(self, attached: Attached, principal: str) -> None:
        from toolkit.transcript.models import NAMESPACE_SEAL

        ticket, where = printable(attached.ticket), printable(attached.transcript)
        if attached.in_local_store:
            say(f"Transcript sealed and attached to ticket {ticket}: {where}")
        else:
            say(
                f"Transcript sealed and attached to {printable(attached.backend)} ticket {ticket} "
                f"(read back, SHA-256 matches); the sealed copy stays at "
                f"{printable(attached.sealed)}"
            )
        q, cast, sig = shlex.quote, attached.transcript, attached.signature
        say(f"Verify it: toolkit verify {printable(q(cast))}")
        say(
            printable(
                f"  or: ssh-keygen -Y verify -f ALLOWED_SIGNERS -I {q(principal)} "
                f"-n {NAMESPACE_SEAL} -s {q(sig)} < {q(cast)}"
            ),
        )

    def attach_failed(self, error: ToolkitError) -> None:
        say(printable_lines(error.diagnostics()))

    def finished(self, result: SessionResult) -> None:
        if self.as_json and not self.interactive:
            print(json.dumps(result.to_json()), flush=True)
            self.printed = True
        if self.batch:  # with --json too (stderr is for people either way)
            say(result.recap())

    # CommandsUI

    def starting(self, line: Line) -> None:
        # A header per command on stderr, as diag has per step (with --json too).
        say(f"== {printable(line.command.text)} ({line.where})")

    def asking_customer(self, asking: str) -> None:
        say(printable(f"waiting for the customer to approve {printable(asking, 120)}..."))

    def output(self, stream: int, data: bytes) -> None:
        stream_output(stream, data)

    def result(self, result: OperationResult, line: Line | None) -> None:
        _show(result, self.as_json, line)

    def session_lost(self, message: str) -> None:
        say(printable_lines(message), highlight=True)


async def _plain_prompt(
    session: TechnicianSession, tally: Tally, screen: _Screen
) -> tuple[ExitCode, str]:
    """Lines typed without a terminal to draw on: each run as typed, counted, never ranked
    (the person saw what each did: the exit code is the session's own end)."""
    from toolkit.session.client import ConnectionLost, SessionEnded
    from toolkit.session.commands import parse_checked
    from toolkit.session.workflow import PROMPT_SOURCE, Line, run_line, session_lost

    terminal = TerminalLines(sys.stdin.fileno())
    typed = 0
    try:
        while True:
            try:
                text = await _typed(session, terminal)
            except EOFError:
                return ExitCode.OK, ENDED_BY_TECHNICIAN
            typed += 1
            try:
                command = parse_checked(text)
            except UsageError as exc:
                say(printable_lines(exc.diagnostics()))
                continue
            if command is None:
                continue
            if command.name == "exit":
                return ExitCode.OK, ENDED_BY_TECHNICIAN
            if command.op is Op.SHELL:
                say(
                    "shell: needs the interactive prompt (a terminal on stdin and stdout).",
                    highlight=True,
                )
                continue
            line = Line(PROMPT_SOURCE, typed, command)
            tally.count(await run_line(session, line, screen, stream=not screen.as_json))
    except (SessionEnded, ConnectionLost) as exc:
        return session_lost(exc, ExitCode.OK, screen)


def _interactive(lines: list[Line] | None) -> bool:
    """The full prompt: no batch, and a terminal to draw on (else the plain prompt)."""
    return lines is None and sys.stdin.isatty() and sys.stdout.isatty()


async def _typed(session: TechnicianSession, lines: TerminalLines) -> str:
    """The next line typed at the prompt, unless the session ends first (the customer's Ctrl-C)."""
    import asyncio

    sys.stdout.write(PROMPT)
    sys.stdout.flush()
    typed = asyncio.ensure_future(lines.line())
    try:
        while not typed.done():
            if session.ended is not None:
                raise session.ended
            await asyncio.wait({typed}, timeout=ENDED_POLL)
    finally:
        typed.cancel()
    return typed.result()


__all__ = ["connect_command"]
