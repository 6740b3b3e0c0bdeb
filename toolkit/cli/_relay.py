"""The ``--relay`` options that toolkit share and toolkit connect share (docs/relay.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import asyncssh

    from toolkit.agent.server import Agent
    from toolkit.secrets import Secret
    from toolkit.transport.relay import RelayRoute

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
RelayDirOption = Annotated[
    str,
    typer.Option(
        "--relay-dir",
        metavar="PATH",
        help="Where rendezvous sockets live on an OpenSSH relay (toolkit relay ignores it).",
    ),
]


def relay_route(relay: str | None, relay_dir: str) -> RelayRoute | None:
    """The relay to meet at, checked (UsageError), or None without --relay."""
    if relay is None:
        return None
    from toolkit.transport.relay import RelayAddress, RelayRoute

    return RelayRoute(RelayAddress.parse(relay), socket_dir=relay_dir)


def relay_shown(route: RelayRoute, code: Secret) -> str:
    from toolkit.consent import nameplate_of

    return f"rendezvous {nameplate_of(code)} at the relay {route.address}"


async def start_relayed(agent: Agent, route: RelayRoute, say: Callable[[str], None]) -> str:
    """Start ``agent`` behind a rendezvous at the relay; what to tell the customer."""
    from toolkit.transport.relay import AgentRendezvous

    rendezvous = AgentRendezvous(
        route,
        ttl=agent.settings.ttl,
        say=say,
        in_session=lambda: agent.session is not None,
        renamed=lambda: agent.fresh_code("the relay gave this share a new rendezvous"),
    )
    await rendezvous.open()
    await agent.start(tunnel=rendezvous)
    return f"the relay {route.address} as rendezvous {rendezvous.name}"


async def connect_relayed(route: RelayRoute, ask: Any) -> tuple[asyncssh.SSHClientConnection, Any]:
    from toolkit.transport.relay import connect_through

    return await connect_through(route, ask)


__all__ = [
    "DEFAULT_RELAY_DIR",
    "RelayDirOption",
    "RelayOption",
    "connect_relayed",
    "relay_route",
    "relay_shown",
    "start_relayed",
]
