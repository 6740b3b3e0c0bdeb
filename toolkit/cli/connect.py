"""``toolkit connect``: the technician's audited session on a customer's machine."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._complete import complete_scope
from toolkit.cli._console import say
from toolkit.cli._identity import AgentOption, KeyOption, load_identity
from toolkit.cli._relay import (
    DEFAULT_RELAY_DIR,
    RelayDirOption,
    RelayOption,
    confirm_relay_host,
    connect_relayed,
    relay_route,
    relay_shown,
)
from toolkit.cli._terminal import TerminalLines, write_output
from toolkit.cli.share import parse_address
from toolkit.errors import ExitCode, ToolkitError, UsageError
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    import asyncssh

    from toolkit.consent import Consent, Scope
    from toolkit.identity.store import Identity
    from toolkit.secrets import Secret
    from toolkit.session.commands import Command
    from toolkit.session.technician import Result, TechnicianSession
    from toolkit.transport.relay import RelayRoute

PROMPT = "toolkit> "
#: How often the prompt checks whether the customer ended the session meanwhile.
ENDED_POLL = 0.1


def _parse(line: str) -> Command | None:
    """One command line, checked whole (``help NOSUCH`` too); UsageError if it is wrong."""
    from toolkit.session.commands import help_text, parse

    command = parse(line)
    if command is not None and command.name == "help" and command.words:
        help_text(command.words[0])
    return command


@dataclass(frozen=True)
class Line:
    """One command of a batch (or typed at the plain prompt), with where it came from."""

    source: str  # the batch file's name, "stdin", or "prompt"
    number: int  # 1-based line number in the source
    command: Command

    @property
    def where(self) -> str:
        return f"{printable(self.source)}, line {self.number}"


def _read_batch(batch: str) -> list[Line]:
    """Every command of the batch, checked before anything connects."""
    if batch == "-":
        text = sys.stdin.read()
        source = "stdin"
    else:
        from toolkit.inputs import read_text

        text = read_text(batch, what="the batch file")  # a FIFO or device: refused, not awaited
        source = batch
    lines = []
    for number, text_line in enumerate(text.splitlines(), 1):
        try:
            command = _parse(text_line)
        except UsageError as exc:
            raise UsageError(f"{source}, line {number}: {exc.message}", hint=exc.hint) from None
        if command is None:
            continue
        if command.name == "shell":
            raise UsageError(
                f"{source}, line {number}: `shell` cannot run in a batch: it needs the "
                "interactive prompt (a terminal on stdin and stdout).",
                hint="Remove that line, or run toolkit connect without --batch on a terminal "
                "and type `shell` at the prompt.",
            )
        lines.append(Line(source, number, command))
    return lines


def _warn_fixes(lines: list[Line], asked: frozenset[Scope]) -> None:
    """One line on stderr when the batch has fixes that --scope does not ask for."""
    from toolkit.consent import Scope

    if Scope.FIXES in asked:
        return
    fixes = [line for line in lines if line.command.name == "fix"]
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


def _show(result: Result, as_json: bool, line: Line | None = None) -> None:
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
    if result.status == "refused" or result.error:
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


def _stream(stream: int, data: bytes) -> None:
    from toolkit.protocol import STDERR

    write_output(sys.stderr if stream == STDERR else sys.stdout, data)


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
) -> None:
    """Connect to a customer's toolkit share, with their code and consent."""
    summary = _Summary(ticket=ticket)
    try:
        worst = _connect(
            address, ticket, code, scope, batch, as_json, key, agent, relay, relay_dir, summary
        )
    except ToolkitError as exc:
        if as_json and not summary.printed:  # a script hears why, on stdout too
            print(json.dumps(_error_line(exc)), flush=True)
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
    summary: _Summary,
) -> int:
    import asyncio

    from toolkit.consent import parse_code, scopes
    from toolkit.tickets.base import check_ticket_id

    route = relay_route(relay, relay_dir)
    if route is not None:
        if address is not None:
            raise UsageError("Give HOST:PORT or --relay, not both.")
        host, port = str(route.address), 0
    elif address is None:
        raise UsageError(
            "Where is the customer's toolkit share?",
            hint="Give the HOST:PORT it printed, or --relay [USER@]HOST[:PORT] and its code.",
        )
    else:
        host, port = parse_address(address)
    if port == 0 and route is None:
        raise UsageError(f"{address!r} has no port: use the HOST:PORT that toolkit share printed.")
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
    secret = parse_code(code) if code is not None else None
    if secret is None and not sys.stdin.isatty():
        raise UsageError("No --code given and no terminal to ask for it.", hint="Pass --code CODE.")
    if route is not None:
        confirm_relay_host(route)  # before the passphrase and the code
    identity = load_identity(key, agent)
    from toolkit.cli.tickets import sync_once_quietly

    sync_once_quietly()  # transcripts left in the outbox: one try before this session
    place = _Place(host, port, route)
    return asyncio.run(_session(place, identity, ticket, asked, secret, lines, as_json, summary))


@dataclass(frozen=True)
class _Place:
    """Where the customer's agent is: HOST:PORT, or a rendezvous at a relay."""

    host: str
    port: int
    route: RelayRoute | None = None

    def shown(self, code: Secret) -> str:
        if self.route is not None:
            return relay_shown(self.route, code)
        host, port = self.host, self.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class _Summary:
    """The session's closing line for --json (docs/quickstart.md), counted as it runs."""

    ticket: str
    ok: int = 0
    failed: int = 0
    refused: int = 0
    printed: bool = False

    def count(self, result: Result) -> None:
        if result.status == "ok":
            self.ok += 1
        elif result.status == "refused":
            self.refused += 1
        else:
            self.failed += 1

    def recap(self, exit_code: int, reason: str) -> str:
        """The closing line for people, as Ansible's PLAY RECAP; a non-zero exit says why."""
        counts = f"recap: ok={self.ok} failed={self.failed} refused={self.refused}"
        if exit_code == 0:
            return f"{counts} (exit 0)"
        if reason == "completed" or reason == "the technician ended the session":
            why = {
                int(ExitCode.REFUSED): "a command was refused",
                int(ExitCode.FAILED): "a command failed",
            }.get(exit_code, reason)
        else:
            why = (reason.splitlines() or [reason])[0]
        return printable(f"{counts} (exit {exit_code}: {why.rstrip('.')})")

    def line(
        self, session: TechnicianSession, path: Path, verdict: str | None, reason: str, code: int
    ) -> dict[str, object]:
        return {
            "type": "summary",
            "session": session.recorder.header.session_id,
            "ticket": self.ticket,
            "transcript": str(path),
            "verdict": verdict,
            "ended": reason,
            "ok": self.ok,
            "failed": self.failed,
            "refused": self.refused,
            "exit_code": code,
        }


#: Error codes in JSON error lines, for errors that are not a consent refusal.
_ERROR_CODES = {
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage",
    ExitCode.REFUSED: "refused",
    ExitCode.NETWORK: "network",
    ExitCode.TICKET_BACKEND: "ticket-backend",
}


def _error_line(exc: ToolkitError) -> dict[str, Any]:
    """The one JSON line for an error before the session (docs/quickstart.md)."""
    from toolkit.consent import ConsentError

    code = int(exc.exit_code)
    name = exc.reason if isinstance(exc, ConsentError) else _ERROR_CODES.get(exc.exit_code)
    error: dict[str, Any] = {"code": name or "failed", "message": exc.message, "hint": exc.hint}
    tries = getattr(exc, "tries_left", None)
    error["tries_left"] = tries if isinstance(tries, int) else None
    return {"type": "error", "error": error, "exit_code": code}


async def _consent(
    place: _Place,
    identity: Identity,
    ticket: str,
    asked: frozenset[Scope],
    code: Secret | None,
) -> tuple[asyncssh.SSHClientConnection, Consent, Secret]:
    """Connect and pass consent; the code that passed it, too.

    A code typed here is asked again while it has tries left.
    The identity stays unlocked meanwhile (as ssh asks again for a password). A
    code given with --code is not asked again: a script gets the refusal.
    """
    from toolkit.consent import WrongCode
    from toolkit.consent._code import DEFAULT_TRIES
    from toolkit.transport.ssh import ConsentAsk, connect

    typed = code is None
    if code is None:
        code = await _ask_code()
    # The tries left come from the agent, unauthenticated: a fake agent could claim
    # many and so win a guess at the real code from each retype. One run asks at most
    # as often as a real code can be tried (docs/consent.md).
    retypes = DEFAULT_TRIES - 1
    while True:
        ask = ConsentAsk(identity, ticket, asked, code)
        say(  # stderr's lines for people are the same with --json: stdout is what differs
            f"Connecting to {place.shown(code)}; the customer will be asked to approve...",
            highlight=True,
        )
        try:
            if place.route is not None:
                conn, consent = await connect_relayed(place.route, ask)
            else:
                conn, consent = await connect(place.host, place.port, ask)
        except WrongCode as exc:
            if not typed or exc.tries_left <= 0 or retypes <= 0:
                raise
            retypes -= 1
            say(printable_lines(exc.message), highlight=True)
            say("Check the digits with the customer.")
            code = await _ask_code(again=True)
            continue
        return conn, consent, code


async def _session(
    place: _Place,
    identity: Identity,
    ticket: str,
    asked: frozenset[Scope],
    code: Secret | None,
    lines: list[Line] | None,
    as_json: bool,
    summary: _Summary,
) -> int:
    import asyncio

    from toolkit.transport._asyncssh import load

    load()  # before the modules below import it
    from toolkit.session.technician import TechnicianSession

    conn, consent, code = await _consent(place, identity, ticket, asked, code)
    from toolkit.consent import scope_names

    say(
        f"Consent passed. Agent host key {consent.host_key_fingerprint}; "
        f"granted: {', '.join(scope_names(consent.granted))}.",
    )
    session = await TechnicianSession.start(conn, consent, identity, place.shown(code))
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted: list[bool] = []

    def interrupt() -> None:
        interrupted.append(True)
        if main is not None:
            main.cancel()

    # At the interactive prompt Ctrl-C cancels the running command (toolkit.cli.prompt);
    # in a batch or the plain prompt it ends the session.
    if not _interactive(lines):
        loop.add_signal_handler(signal.SIGINT, interrupt)
    worst = ExitCode.OK
    reason = "the technician's toolkit stopped on an error"  # unless _drive returns
    try:
        worst, reason = await _drive(session, lines, as_json, summary)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        worst, reason = ExitCode.INTERRUPTED, "interrupted by the technician (Ctrl-C)"
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        failure = session.recorder.failure
        if failure is not None:  # whatever else the session ended with
            reason = "the technician's transcript could not be written"
        path = await session.end(reason)
        verdict = _verdict(path) if as_json else None
        if session.recorder.failure is None:  # an unsealed transcript is not attached
            _attach(ticket, path, session, reason)
        exit_code = int(failure.exit_code if failure is not None else worst)
        if as_json and not _interactive(lines):
            print(json.dumps(summary.line(session, path, verdict, reason, exit_code)), flush=True)
            summary.printed = True
        if lines is not None:  # a batch, with --json too (stderr is for people either way)
            say(summary.recap(exit_code, reason))
    if session.recorder.failure is not None:
        raise session.recorder.failure  # whatever the session ended with, this is the cause
    return int(worst)


def _verdict(path: Path) -> str | None:
    """The transcript's verdict before upload, as the ticket's comment states it."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.tickets.summary import verdict

    try:
        report, _ = verdict(path, default_allowed_signers())
    except ToolkitError:
        return None
    return report.verdict.value


async def _drive(
    session: TechnicianSession, lines: list[Line] | None, as_json: bool, summary: _Summary
) -> tuple[ExitCode, str]:
    """Run the batch (or the prompt) to its end; the worst exit code and why it ended."""
    from toolkit.session.client import ConnectionLost, SessionEnded

    if _interactive(lines):
        from toolkit.cli.prompt import interactive

        return await interactive(session)
    worst = ExitCode.OK
    pending = iter(lines) if lines is not None else None
    terminal = TerminalLines(sys.stdin.fileno()) if pending is None else None
    typed = 0
    try:
        while True:
            if pending is not None:
                line = next(pending, None)
                if line is None:
                    return worst, "completed"
                # A header per command on stderr, as diag has per step (with --json too).
                say(f"== {printable(line.command.text)} ({line.where})")
            else:
                assert terminal is not None
                try:
                    text = await _typed(session, terminal)
                except EOFError:
                    return worst, "the technician ended the session"
                typed += 1
                try:
                    command = _parse(text)
                except UsageError as exc:
                    say(printable_lines(exc.diagnostics()))
                    continue
                if command is None:
                    continue
                line = Line(PROMPT_SOURCE, typed, command)
            command = line.command
            if command.name == "exit":
                return worst, "the technician ended the session"
            if command.name == "shell":  # the plain prompt (a batch refuses it up front)
                say(
                    "shell: needs the interactive prompt (a terminal on stdin and stdout).",
                    highlight=True,
                )
                continue
            streaming = not as_json and command.name in ("run", "read")
            session.client.on_notice = _Asking().notice
            try:
                result = await session.execute(command, _stream if streaming else None)
            finally:
                session.client.on_notice = None
            if streaming and result.status == "ok":
                result.stdout = result.content = result.stderr = b""
            _show(result, as_json, line)
            summary.count(result)
            if pending is not None:  # at a prompt the person saw it: the exit is the session's
                worst = max(worst, _STATUS.get(result.status, ExitCode.FAILED), key=_rank)
    except SessionEnded as exc:
        say(printable_lines(exc.message), highlight=True)
        return max(worst, ExitCode.REFUSED, key=_rank), exc.message
    except ConnectionLost as exc:
        say(printable_lines(exc.message), highlight=True)
        return ExitCode.NETWORK, exc.message


class _Asking:
    """Says once on stderr, off the interactive prompt, that the customer is being asked.

    The agent's ``asking`` notice (docs/protocol.md) comes when the customer's
    screen asks about this command; until the answer nothing else is printed,
    so a batch would look stuck for as long as the customer takes.
    """

    def __init__(self) -> None:
        self._said = False

    def notice(self, request_id: int, notice: dict[str, Any]) -> None:
        asking = notice.get("asking")
        if isinstance(asking, str) and not self._said:
            self._said = True
            say(printable(f"waiting for the customer to approve {printable(asking, 120)}..."))


#: The source of lines typed at the plain prompt.
PROMPT_SOURCE = "prompt"


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


_STATUS = {"ok": ExitCode.OK, "refused": ExitCode.REFUSED}


def _rank(code: ExitCode) -> int:
    """Batch exit precedence: refused (3) over failed (1) over ok (0)."""
    return {ExitCode.OK: 0, ExitCode.FAILED: 1, ExitCode.REFUSED: 2}.get(code, 3)


def _attach(ticket: str, path: Path, session: TechnicianSession, reason: str) -> None:
    """Through the outbox onto the ticket (docs/tickets.md); if that fails, it waits there."""
    from toolkit.cli.tickets import attach_transcript
    from toolkit.transcript.models import NAMESPACE_SEAL

    # The key that sealed the transcript also signs a SHA256SUMS manifest when one is needed.
    signer = session.recorder.signer
    try:
        cast, sig = attach_transcript(ticket, path, signer, session.recorder.sha256)
    except ToolkitError as exc:
        say(printable_lines(exc.diagnostics()))
        return
    q = shlex.quote
    say(f"Verify it: toolkit verify {printable(q(str(cast)))}")
    say(
        printable(
            f"  or: ssh-keygen -Y verify -f ALLOWED_SIGNERS -I {q(session.consent.email)} "
            f"-n {NAMESPACE_SEAL} -s {q(str(sig))} < {q(str(cast))}"
        ),
    )


__all__ = ["connect_command"]
