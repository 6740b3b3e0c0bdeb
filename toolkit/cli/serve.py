"""``toolkit serve``: the agent as a service, for consent given in advance (docs/serve.md).

Unlike ``toolkit share`` nobody sits at the machine: no code is shown and
nobody is asked. A technician gets in with a grant signed by a key the
``--accept-grants-from`` file trusts, and does only what the grant names.
The service keeps its host key (so that inventories and grants can name
it), serves many sessions one after the other and at once, each with its
own customer's copy of the transcript, and writes one JSON line per event.
SIGTERM or Ctrl-C stops it: no new connections, every running session ended
and sealed, exit 0.
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._complete import complete_scope
from toolkit.cli._console import say
from toolkit.cli._relay import DEFAULT_RELAY_DIR, RelayOption, relay_route
from toolkit.cli.share import parse_address
from toolkit.errors import UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.agent.operations import Question
    from toolkit.agent.server import Agent
    from toolkit.consent import ApprovalRequest, Decision, OneTimeCode, Scope
    from toolkit.transport.relay import RelayRoute

DEFAULT_LISTEN = "127.0.0.1:7022"
#: What a grant's host line and an inventory call an agent (docs/grants.md).
#: Longest text a log line keeps of one field a peer chose (a reason, a ticket, a message).
LOG_TEXT = 500


class ServiceLog:
    """One JSON object a line (``ts``, ``event``, fields), flushed as each is written.

    To a file, through :class:`logging.handlers.WatchedFileHandler`: when
    logrotate moves the file away, the next line goes to a new file of the
    same name (no signal, no copytruncate). Every string is made printable:
    whoever reads a field back (``jq -r``) prints it decoded.
    """

    def __init__(self, path: Path | None) -> None:
        # Loaded here, not at every toolkit command's start.
        import logging
        from logging.handlers import WatchedFileHandler

        self._logger = logging.Logger("toolkit.serve")  # its own: nothing else writes here
        handler: logging.Handler
        if path is None:
            handler = logging.StreamHandler(sys.stdout)
        else:
            _check_log(path)
            try:
                handler = WatchedFileHandler(path, encoding="utf-8")
            except OSError as exc:
                raise UsageError(
                    f"Cannot open the log file {printable(str(path), 200)}: "
                    f"{(exc.strerror or str(exc)).lower()}."
                ) from None
        handler.setFormatter(logging.Formatter("%(message)s"))
        self._handler = handler
        self._logger.addHandler(handler)

    def emit(self, event: str, **fields: Any) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        line = {"ts": now, "event": event, **{k: _safe(v) for k, v in fields.items()}}
        self._logger.info(json.dumps(line, separators=(",", ":"), ensure_ascii=True))

    def __call__(self, event: str, fields: dict[str, Any]) -> None:  # AgentSettings.events
        self.emit(event, **fields)

    def close(self) -> None:
        self._logger.removeHandler(self._handler)
        self._handler.close()


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value, LOG_TEXT)
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _safe(v) for k, v in value.items()}
    return value


def _check_log(path: Path) -> None:
    """--log must be a regular file (or not exist yet) in a directory that does."""
    shown = printable(str(path), 200)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise UsageError(
                f"--log {shown}: the directory {printable(str(path.parent), 200)} does not exist."
            ) from None
        return
    except OSError as exc:
        raise UsageError(f"--log {shown}: {(exc.strerror or str(exc)).lower()}.") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"--log {shown} is not a regular file; name a file to append to.")


class _Screen:
    """What the agent tells its customer, for a service: the log. A code is never shown."""

    def __init__(self, log: ServiceLog) -> None:
        self._log = log

    def new_code(self, code: OneTimeCode) -> None:
        return None  # a service takes grants; a code is neither shown nor written anywhere

    def say(self, message: str) -> None:
        self._log.emit("say", message=message)

    def shell_size(self, width: int, height: int) -> None:
        return None  # nobody watches: there is no mirror (and a grant never gives a shell)

    def shell_output(self, data: bytes) -> None:
        return None

    def shell_ended(self) -> None:
        return None


class _NobodyToAsk:
    """Nobody sits at a service: a question is a no, recorded as nobody to ask.

    With a grant, the grant is the consent and a fix's approval (docs/consent.md),
    so nothing it names comes here.
    """

    def ask(self, request: ApprovalRequest) -> Decision:
        return request.decline("nobody-to-ask")

    async def approve_fix(self, question: Question) -> None:
        return None


def _name(name: str | None) -> str | None:
    # The relay's own rule (it takes the name); loaded here: toolkit.relay is heavy.
    from toolkit.relay._wire import is_stable_name

    if name is not None and not is_stable_name(name):
        raise UsageError(
            f"--name '{printable(name, 80)}' is not a name: 1 to 64 letters, digits, '.', '_' "
            "or '-', not digits alone (what grants, inventories and relays call this agent)."
        )
    return name


def _offered(scope: list[str] | None) -> frozenset[Scope]:
    from toolkit.consent import Scope, scopes

    try:
        offered = scopes(scope or ["diagnostics", "fixes"])
    except ValueError as exc:
        raise UsageError(f"--scope: {exc}") from None
    if Scope.SHELL in offered:
        raise UsageError("--scope shell: a service never offers a shell (no grant can give one).")
    return offered


def serve_command(
    accept_grants_from: Annotated[
        Path | None,
        typer.Option(
            "--accept-grants-from",
            metavar="ALLOWED_SIGNERS",
            help="Accept grants signed by the keys this allowed_signers file lists (required).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            metavar="HOST:PORT",
            help=f"Where to listen [default: {DEFAULT_LISTEN}].",
            show_default=False,
        ),
    ] = None,
    relay: RelayOption = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="This agent's name, as grants and inventories give it (and its name at "
            "the --relay).",
            show_default=False,
        ),
    ] = None,
    max_sessions: Annotated[
        int,
        typer.Option(
            "--max-sessions", metavar="N", min=1, help="Sessions at once; more are turned away."
        ),
    ] = 16,
    log: Annotated[
        Path | None,
        typer.Option(
            "--log",
            metavar="FILE",
            help="Append the JSON-lines log here (reopened after logrotate) [default: stdout].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    host_key: Annotated[
        Path | None,
        typer.Option(
            "--host-key",
            metavar="FILE",
            help="The kept host key [default: <data dir>/agent/host_key, made on first start].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    show_host_key: Annotated[
        bool,
        typer.Option(
            "--show-host-key",
            help="Print the host key's public line and fingerprint (what inventories pin), "
            "and exit.",
        ),
    ] = False,
    policy_path: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            metavar="FILE",
            help="Policy TOML [default: config dir's agent.toml, else built-in].",
            show_default=False,
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="What grants may use at most: diagnostics, fixes (repeatable) [default: both].",
            show_default=False,
            autocompletion=complete_scope,
        ),
    ] = None,
) -> None:
    """Run the agent as a service: grants only, many sessions, a kept host key."""
    from toolkit.agent.host_key import load_or_create

    if show_host_key:
        key = load_or_create(host_key)
        say(f"{key.public_line} {printable(_name(name) or 'toolkit-agent')}", stderr=False)
        say(key.fingerprint, stderr=False)
        return
    if accept_grants_from is None:
        raise UsageError(
            "toolkit serve needs --accept-grants-from ALLOWED_SIGNERS: whose grants it takes.",
            hint="An allowed_signers file with the keys of those who issue grants (docs/serve.md).",
        )
    if listen is not None and relay is not None:
        raise UsageError("Give --listen or --relay, not both: a service is reached one way.")
    host, port = parse_address(listen or DEFAULT_LISTEN)
    route = relay_route(relay, DEFAULT_RELAY_DIR)  # toolkit relay only: no socket dir
    if route is not None and name is None:
        raise UsageError("--relay needs --name: technicians reach a service by its name.")
    _name(name)
    offered = _offered(scope)
    from toolkit.grants.acceptance import GrantAcceptance
    from toolkit.grants.ledger import Ledger
    from toolkit.policy import Policy

    # Grants only: no code is ever shown or taken, and nobody is asked (a fix's approval
    # is its grant).
    grants = GrantAcceptance.from_file(
        accept_grants_from, Ledger.default(), frozenset({name} if name else ())
    )
    rules = Policy.resolve(policy_path)
    key = load_or_create(host_key)
    if route is not None:
        from toolkit.cli._relay import confirm_relay_host

        confirm_relay_host(route)
    from toolkit.agent.server import Agent, AgentSettings
    from toolkit.plugins.catalogue import Catalogue

    service_log = ServiceLog(log)
    nobody = _NobodyToAsk()
    settings = AgentSettings(
        catalogue=Catalogue.installed(),
        policy=rules,
        approver=nobody,
        approve_fix=nobody.approve_fix,
        offered=offered,
        grants=grants,
        codes=False,
        service=True,
        max_sessions=max_sessions,
        events=service_log,
    )
    agent = Agent(settings, _Screen(service_log), host_key=key)
    import asyncio

    try:
        asyncio.run(_serve(agent, service_log, (host, port), route, name, log is not None))
    finally:
        service_log.close()


async def _serve(
    agent: Agent,
    log: ServiceLog,
    address: tuple[str, int],
    route: RelayRoute | None,
    name: str | None,
    to_file: bool,
) -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def stop(why: str) -> None:
        if not stopping:  # once: a second signal while stopping changes nothing
            log.emit("stopping", reason=why, sessions=len(agent.sessions))
            stopping.append(loop.create_task(agent.stop(why)))

    loop.add_signal_handler(signal.SIGINT, stop, "the agent was stopped (Ctrl-C)")
    loop.add_signal_handler(signal.SIGTERM, stop, "the agent was stopped (SIGTERM)")
    if route is None:
        host, port = await agent.start(*address)
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    else:
        assert name is not None
        where = await _start_relayed(agent, route, name)
    key = agent.host_key
    log.emit(
        "listening",
        address=where,
        name=name,
        host_key=key.fingerprint,
        host_key_file=str(key.path),
        max_sessions=agent.settings.max_sessions,
        transcripts=str(agent.transcripts),
        pid=os.getpid(),
    )
    say(
        f"Serving on {where}, host key {key.fingerprint}, at most "
        f"{agent.settings.max_sessions} sessions at once. SIGTERM or Ctrl-C stops it."
        + (" Logging to the --log file." if to_file else "")
    )
    end = await agent.wait()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
    log.emit("stopped", reason=end.reason)


async def _start_relayed(agent: Agent, route: RelayRoute, name: str) -> str:
    """Register at the relay under ``name``, logged in with the host key (docs/relay.md).

    The relay gives the name to the key its --agents file lists for it; the
    service keeps it through drops, reconnecting for as long as it runs.
    """
    from toolkit.transport.relay import AgentRendezvous

    rendezvous = AgentRendezvous(
        route,
        ttl=agent.settings.ttl,
        say=agent.observer.say,
        stable=name,
        login=agent.host_key.signer,
    )
    await rendezvous.open()
    await agent.start(tunnel=rendezvous)
    return f"the relay {route.address} as {name}"


__all__ = ["ServiceLog", "serve_command"]
