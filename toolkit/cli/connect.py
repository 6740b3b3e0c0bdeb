"""``toolkit connect``: the technician's audited session on a customer's machine."""

from __future__ import annotations

import json
import shlex
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.cli._console import err, say
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
    from toolkit.consent import Scope
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


def _read_batch(batch: str) -> list[Command]:
    """Every command of the batch, checked before anything connects."""
    if batch == "-":
        text = sys.stdin.read()
        source = "stdin"
    else:
        from toolkit.inputs import read_text

        text = read_text(batch, what="the batch file")  # a FIFO or device: refused, not awaited
        source = batch
    commands = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            command = _parse(line)
        except UsageError as exc:
            raise UsageError(f"{source}, line {number}: {exc.message}", hint=exc.hint) from None
        if command is not None:
            commands.append(command)
    return commands


def _ask_code() -> str:
    if not sys.stdin.isatty():
        raise UsageError("No --code given and no terminal to ask for it.", hint="Pass --code CODE.")
    from rich.prompt import Prompt

    return Prompt.ask("One-time code from the customer", password=True, console=err())


def _show(result: Result, as_json: bool) -> None:
    """A result for people (plain text) or scripts (one JSON line)."""
    if as_json:
        # ASCII: a C1 control or a bidi override from the agent stays a \u escape.
        print(json.dumps(result.to_json()), flush=True)
        return
    if result.status == "refused" or result.error:
        message = printable(result.message or "")
        if not message.startswith(f"{result.status}:"):
            message = f"{result.status}: {message}"
        say(message)
        return
    if result.name == "ls":
        for entry in result.result.get("entries", []):
            # str() first: a format spec on a peer's value of another type would raise.
            kind, length = str(entry.get("kind", "?")), str(entry.get("size", 0))
            line = f"{kind:<8} {length:>12} {entry.get('name')}"
            say(printable(line), stderr=False)
    elif result.name == "stat":
        for key in ("path", "kind", "size", "mode", "mtime"):
            value = result.result.get(key)
            if key == "mode" and isinstance(value, int):
                value = oct(value)
            say(f"{key:<6} {printable(str(value))}", stderr=False)
    elif result.name in ("diag", "fix"):
        from toolkit.cli.render import steps

        for step in steps(result):
            say(f"== {printable(step.argv)} (exit {printable(step.exit_status)})", stderr=False)
            write_output(sys.stdout, step.stdout)
            write_output(sys.stderr, step.stderr)
    else:
        write_output(sys.stdout, result.stdout or result.content)
        write_output(sys.stderr, result.stderr)
    if result.exit_status not in (None, 0):
        say(f"exit status {result.exit_status}", highlight=True)


def _stream(stream: int, data: bytes) -> None:
    from toolkit.session.protocol import STDERR

    write_output(sys.stderr if stream == STDERR else sys.stdout, data)


def connect_command(
    address: Annotated[
        str | None,
        typer.Argument(metavar="HOST:PORT", help="What toolkit share printed (not with --relay)."),
    ] = None,
    *,
    ticket: Annotated[
        str, typer.Option("--ticket", help="The support ticket this session is for.")
    ],
    code: Annotated[
        str | None,
        typer.Option("--code", help="The customer's one-time code [default: ask, hidden]."),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="What to ask for: diagnostics, fixes, shell (repeatable) [default: diagnostics].",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", metavar="FILE", help="Run the commands in FILE (- for stdin), no prompt."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Each result as one JSON line.")] = False,
    key: KeyOption = None,
    agent: AgentOption = None,
    relay: RelayOption = None,
    relay_dir: RelayDirOption = DEFAULT_RELAY_DIR,
) -> None:
    """Connect to a customer's toolkit share, with their code and consent."""
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
        commands: list[Command] | None = _read_batch(batch)
    elif sys.stdin.isatty():
        commands = None  # the prompt
    else:
        raise UsageError(
            "No terminal for the prompt.", hint="Use --batch FILE, or --batch - to read stdin."
        )
    if route is not None:
        confirm_relay_host(route)  # before the passphrase and the code
    identity = load_identity(key, agent)
    from toolkit.cli.tickets import sync_once_quietly

    sync_once_quietly()  # transcripts left in the outbox: one try before this session
    secret = parse_code(code if code is not None else _ask_code())
    worst = asyncio.run(
        _session(host, port, identity, ticket, asked, secret, commands, as_json, route=route)
    )
    if worst:
        raise typer.Exit(worst)


async def _session(
    host: str,
    port: int,
    identity: Identity,
    ticket: str,
    asked: frozenset[Scope],
    code: Secret,
    commands: list[Command] | None,
    as_json: bool,
    *,
    route: RelayRoute | None = None,
) -> int:
    import asyncio

    from toolkit.transport._asyncssh import load

    load()  # before the modules below import it
    from toolkit.session.technician import TechnicianSession
    from toolkit.transport.ssh import ConsentAsk, connect

    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if route is not None:
        shown = relay_shown(route, code)
    ask = ConsentAsk(identity, ticket, asked, code)
    if not as_json:
        say(f"Connecting to {shown}; the customer will be asked to approve...", highlight=True)
    if route is not None:
        conn, consent = await connect_relayed(route, ask)
    else:
        conn, consent = await connect(host, port, ask)
    from toolkit.consent import scope_names

    say(
        f"Consent passed. Agent host key {consent.host_key_fingerprint}; "
        f"granted: {', '.join(scope_names(consent.granted))}.",
    )
    session = await TechnicianSession.start(conn, consent, identity, shown)
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    interrupted: list[bool] = []

    def interrupt() -> None:
        interrupted.append(True)
        if main is not None:
            main.cancel()

    # At the interactive prompt Ctrl-C cancels the running command (toolkit.cli.prompt);
    # in a batch or the plain prompt it ends the session.
    if not _interactive(commands):
        loop.add_signal_handler(signal.SIGINT, interrupt)
    worst = ExitCode.OK
    reason = "the technician's toolkit stopped on an error"  # unless _drive returns
    try:
        worst, reason = await _drive(session, commands, as_json)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        worst, reason = ExitCode.INTERRUPTED, "interrupted by the technician (Ctrl-C)"
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if session.recorder.failure is not None:  # whatever else the session ended with
            reason = "the technician's transcript could not be written"
        path = await session.end(reason)
        if session.recorder.failure is None:  # an unsealed transcript is not attached
            _attach(ticket, path, session, reason)
    if session.recorder.failure is not None:
        raise session.recorder.failure  # whatever the session ended with, this is the cause
    return int(worst)


async def _drive(
    session: TechnicianSession, commands: list[Command] | None, as_json: bool
) -> tuple[ExitCode, str]:
    """Run the batch (or the prompt) to its end; the worst exit code and why it ended."""
    from toolkit.session.client import ConnectionLost, SessionEnded

    if _interactive(commands):
        from toolkit.cli.prompt import interactive

        return await interactive(session)
    worst = ExitCode.OK
    pending = iter(commands) if commands is not None else None
    lines = TerminalLines(sys.stdin.fileno()) if pending is None else None
    try:
        while True:
            if pending is not None:
                command = next(pending, None)
                if command is None:
                    return worst, "completed"
            else:
                assert lines is not None
                try:
                    line = await _typed(session, lines)
                except EOFError:
                    return worst, "the technician ended the session"
                try:
                    command = _parse(line)
                except UsageError as exc:
                    say(printable_lines(exc.diagnostics()))
                    continue
                if command is None:
                    continue
            if command.name == "exit":
                return worst, "the technician ended the session"
            if command.name == "shell":
                say(
                    "shell: needs the interactive prompt (a terminal on stdin and stdout).",
                    highlight=True,
                )
                worst = max(worst, ExitCode.FAILED, key=_rank)
                continue
            streaming = not as_json and command.name in ("run", "read")
            result = await session.execute(command, _stream if streaming else None)
            if streaming and result.status == "ok":
                result.stdout = result.content = result.stderr = b""
            _show(result, as_json)
            worst = max(worst, _STATUS.get(result.status, ExitCode.FAILED), key=_rank)
    except SessionEnded as exc:
        say(printable_lines(exc.message), highlight=True)
        return max(worst, ExitCode.REFUSED, key=_rank), exc.message
    except ConnectionLost as exc:
        say(printable_lines(exc.message), highlight=True)
        return ExitCode.NETWORK, exc.message


def _interactive(commands: list[Command] | None) -> bool:
    """The full prompt: no batch, and a terminal to draw on (else the plain prompt)."""
    return commands is None and sys.stdin.isatty() and sys.stdout.isatty()


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
