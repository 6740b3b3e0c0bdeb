"""What an agent, a technician and a relay agree on (docs/relay.md, "Protocol").

- An agent registers at ``toolkit relay`` with ``tcpip-forward``: listen host
  ``toolkit-rendezvous;ttl=SECONDS``, port 0 for a new name or the name
  itself to keep one (after a reconnect, or for a new code). The port in the
  reply is the name.
- At a stock OpenSSH server the agent binds ``streamlocal-forward`` on
  ``DIR/NAME`` itself (it picks a free name; see ``transport/relay.py``).
- A service (toolkit serve) registers its stable name instead: listen host
  ``toolkit-agent;name=NAME``, port 0; the relay answers port NAMED_PORT and
  gives NAME only to the key ``toolkit relay --agents`` lists for it.
- A technician opens ``direct-streamlocal@openssh.com`` to ``DIR/NAME`` at
  either; ``toolkit relay`` reads only the last path component.
- ``toolkit relay`` says ``SSH-2.0-toolkit-relay_1`` in its banner; that is
  how an agent tells it from OpenSSH.
"""

from __future__ import annotations

import posixpath
import re

from toolkit.transport.tuning import MAX_PACKET, WINDOW

SERVER_VERSION = "toolkit-relay_1"
REGISTER_HOST = "toolkit-rendezvous"
#: How a service asks for its stable name (toolkit relay --agents).
REGISTER_NAME_HOST = "toolkit-agent"
#: The port a named registration gets: the name travels in the listen host.
NAMED_PORT = 1
#: A stable name: what a grant's host line and an inventory call an agent. One with a
#: letter, '.', '_' or '-' in it, so that it is never taken for a code's rendezvous number.
STABLE_NAME = re.compile(r"(?![0-9]+$)[A-Za-z0-9._-]{1,64}")
#: Where rendezvous sockets live on an OpenSSH relay unless --relay-dir says otherwise.
DEFAULT_SOCKET_DIR = "/run/toolkit-relay"
#: Why ``toolkit relay --technicians`` refuses a channel to a rendezvous: the key the
#: client logged in with is not listed. The technician's side recognises it by this text.
NOT_A_TECHNICIAN = "this relay admits listed technicians only"


def is_toolkit_relay(server_version: str | None) -> bool:
    return bool(server_version) and str(server_version).startswith(f"SSH-2.0-{SERVER_VERSION}")


def register_host(ttl: float) -> str:
    return f"{REGISTER_HOST};ttl={max(1, int(ttl + 0.999))}"


def parse_register_host(host: str) -> float | None:
    """The TTL an agent asked for, or None if ``host`` is not a registration."""
    prefix, sep, rest = host.partition(";ttl=")
    if prefix != REGISTER_HOST or not sep or not rest.isdigit() or len(rest) > 9:
        return None
    return float(rest)


def register_name_host(name: str) -> str:
    return f"{REGISTER_NAME_HOST};name={name}"


def parse_register_name(host: str) -> str | None:
    """The stable name a service asked for, or None if ``host`` is not such a request."""
    prefix, sep, name = host.partition(";name=")
    if prefix != REGISTER_NAME_HOST or not sep or not STABLE_NAME.fullmatch(name):
        return None
    return name


def is_stable_name(name: str) -> bool:
    # fullmatch: with match, a name ending in a newline would pass its $.
    return STABLE_NAME.fullmatch(name) is not None


def socket_path(directory: str, name: str) -> str:
    return posixpath.join(directory, name)


def name_of_path(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


__all__ = [
    "DEFAULT_SOCKET_DIR",
    "MAX_PACKET",
    "NAMED_PORT",
    "NOT_A_TECHNICIAN",
    "REGISTER_HOST",
    "REGISTER_NAME_HOST",
    "SERVER_VERSION",
    "STABLE_NAME",
    "WINDOW",
    "is_stable_name",
    "is_toolkit_relay",
    "name_of_path",
    "parse_register_host",
    "parse_register_name",
    "register_host",
    "register_name_host",
    "socket_path",
]
