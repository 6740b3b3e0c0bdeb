"""The ``--relay`` options that toolkit share and toolkit connect share (docs/relay.md)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import say
from toolkit.errors import UsageError

if TYPE_CHECKING:
    import asyncssh

    from toolkit.agent.server import Agent, Observer
    from toolkit.consent import OneTimeCode
    from toolkit.secrets import Secret
    from toolkit.transport.relay import AgentRendezvous, RelayRoute

#: Kept in step with toolkit.relay._wire.DEFAULT_SOCKET_DIR (a test checks), without
#: importing it: --help stays fast.
DEFAULT_RELAY_DIR = "/run/toolkit-relay"

RelayOption = Annotated[
    str | None,
    typer.Option(
        "--relay",
        metavar="[USER@]HOST[:PORT]",
        help="Meet through this relay (toolkit relay, or an OpenSSH server set up as in "
        "docs/relay.md); ~/.ssh/config and known_hosts apply.",
        show_default=False,
    ),
]
RelayNameOption = Annotated[
    str | None,
    typer.Option(
        "--name",
        metavar="NAME",
        help="Reach the service (toolkit serve) registered under NAME at the --relay.",
        show_default=False,
    ),
]
RelayDirOption = Annotated[
    str,
    typer.Option(
        "--relay-dir",
        metavar="PATH",
        help="Where rendezvous sockets live on an OpenSSH relay (toolkit relay ignores it).",
    ),
]


def relay_route(relay: str | None, relay_dir: str, name: str | None = None) -> RelayRoute | None:
    """The relay to meet at, checked (UsageError), or None without --relay.

    ``name``: a service's stable name there (the technician's --name).
    """
    if relay is None:
        if name is not None:
            raise UsageError("--name needs --relay: a name is what a relay calls a service.")
        return None
    from toolkit.transport.relay import RelayAddress, RelayRoute

    return RelayRoute(RelayAddress.parse(relay), socket_dir=relay_dir, name=name)


def confirm_relay_host(route: RelayRoute) -> None:
    """Check the relay's host key first, before a passphrase, a code or a rendezvous.

    A known key goes on. An unknown one is shown and asked about on a
    terminal, as ssh does: ``yes`` (or the fingerprint) adds it to known_hosts
    (making ~/.ssh 0700 and the file 0600 if missing), ``no`` stops with exit
    code 4. Without a terminal, exit code 4 and the command that adds it. A
    changed or revoked key is always refused.
    """
    import asyncio

    from toolkit.transport._asyncssh import load

    load()
    from toolkit.transport.known_hosts import HostKeyStatus, add_known_host
    from toolkit.transport.relay import check_host_key, host_key_refused

    check = asyncio.run(check_host_key(route))
    if check.status is HostKeyStatus.KNOWN:
        return
    if check.status is not HostKeyStatus.UNKNOWN or not _terminal():
        raise host_key_refused(check, route.address)
    # The name known_hosts keeps it under, where ~/.ssh/config makes it another one.
    named = "" if route.address.host in check.pattern else f" ({check.pattern})"
    say(
        f"The authenticity of the relay {route.address}{named} can't be "
        f"established.\n{check.kind} key fingerprint is {check.fingerprint}.\n"
        "Compare it with the fingerprint the relay's operator publishes."
    )
    if not _yes(check.fingerprint):
        raise host_key_refused(check, route.address, declined=True)
    try:
        add_known_host(check)
    except OSError as exc:
        from toolkit.errors import TransportError

        raise TransportError(
            f"Cannot add the relay's host key to {check.file}: {exc.strerror or exc}.",
            hint=f"Add it yourself: {check.add_command()}",
        ) from None
    say(f"Permanently added '{check.pattern}' ({check.kind}) to {check.file}.")


def _terminal() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _yes(fingerprint: str) -> bool:
    """ssh's question: yes, no, or the fingerprint itself; end of input is no."""
    question = "Are you sure you want to continue connecting (yes/no/[fingerprint])? "
    while True:
        sys.stderr.write(question)
        sys.stderr.flush()
        answer = sys.stdin.readline()
        if not answer:
            sys.stderr.write("\n")
            return False
        answer = answer.strip()
        if answer.lower() == "yes" or answer == fingerprint:
            return True
        if answer.lower() == "no":
            return False
        question = "Please type 'yes', 'no' or the fingerprint: "


def relay_shown(route: RelayRoute, code: Secret) -> str:
    from toolkit.consent import nameplate_of

    return f"rendezvous {nameplate_of(code)} at the relay {route.address}"


class _RelayScreen:
    """The customer's screen behind a relay: a code appears once the relay holds its name.

    It also makes the code a new rendezvous name calls for (the code shown
    cannot reach the agent any more), but not at anyone's bidding: at most
    once per code the customer asked for, the first included. A relay that
    keeps losing the name (a hostile one, or one restarted while others take
    names) gets the code shown withdrawn instead, and the customer asks for
    the next; nothing a technician or a stranger does loses the name, since
    the relay keeps it for the agent's key (docs/relay.md).
    """

    def __init__(self, agent: Agent, screen: Observer, rendezvous: AgentRendezvous) -> None:
        self._agent = agent
        self._screen = screen
        self._rendezvous = rendezvous
        self._unasked = 0  # codes made for a new name since the customer last asked
        self._renaming = False

    def new_code(self, code: OneTimeCode) -> None:
        if not self._renaming:
            self._unasked = 0  # the first code, or one the customer asked for
        self._rendezvous.show_when_held(code.display, lambda: self._show(code))

    def _show(self, code: OneTimeCode) -> None:
        from toolkit.consent import CodeState

        # One that waited for the relay longer than it lives is not shown: the agent
        # says it expired, and how to ask for another.
        if code.state is CodeState.ACTIVE:
            self._screen.new_code(code)

    def renamed(self) -> None:
        from toolkit.consent import CodeState

        agent = self._agent
        current = agent.codes.current
        if agent.session is not None or current.state is not CodeState.ACTIVE:
            return  # the customer asks for the next code anyway; it gets the new name
        if self._unasked:
            current.retire()
            self._screen.say(
                "the relay gave this share yet another rendezvous, "
                "so the code shown no longer reaches it"
            )
            return
        self._unasked += 1
        self._renaming = True
        try:
            agent.fresh_code("the relay gave this share a new rendezvous")
        finally:
            self._renaming = False

    def say(self, message: str) -> None:
        self._screen.say(message)

    def shell_size(self, width: int, height: int) -> None:
        self._screen.shell_size(width, height)

    def shell_output(self, data: bytes) -> None:
        self._screen.shell_output(data)

    def shell_ended(self) -> None:
        self._screen.shell_ended()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._screen, name)  # whatever else the agent tells its screen


def rendezvous_for(
    agent: Agent,
    route: RelayRoute,
    say: Callable[[str], None] | None = None,
    *,
    backoff: tuple[float, float] | None = None,
) -> AgentRendezvous:
    """The rendezvous ``agent`` serves through; its screen then shows codes the relay holds."""
    from toolkit.transport.relay import BACKOFF, AgentRendezvous

    rendezvous = AgentRendezvous(
        route,
        ttl=agent.settings.ttl,
        say=say or agent.observer.say,
        in_session=lambda: agent.session is not None,
        backoff=backoff or BACKOFF,
    )
    screen = _RelayScreen(agent, agent.observer, rendezvous)
    rendezvous.renamed = screen.renamed
    agent.observer = screen
    return rendezvous


async def start_relayed(agent: Agent, route: RelayRoute, say: Callable[[str], None]) -> str:
    """Start ``agent`` behind a rendezvous at the relay; what to tell the customer."""
    rendezvous = rendezvous_for(agent, route, say)
    await rendezvous.open()
    await agent.start(tunnel=rendezvous)
    return f"the relay {route.address} as rendezvous {rendezvous.name}"


async def connect_relayed(route: RelayRoute, ask: Any) -> tuple[asyncssh.SSHClientConnection, Any]:
    from toolkit.transport.relay import connect_through

    return await connect_through(route, ask)


__all__ = [
    "DEFAULT_RELAY_DIR",
    "RelayDirOption",
    "RelayNameOption",
    "RelayOption",
    "confirm_relay_host",
    "connect_relayed",
    "relay_route",
    "relay_shown",
    "rendezvous_for",
    "start_relayed",
]
