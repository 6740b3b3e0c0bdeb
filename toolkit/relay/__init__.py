"""``toolkit relay``: rendezvous for agents behind NAT, and nothing else (docs/relay.md)."""

from toolkit.relay.server import Relay, RelayOptions, read_technicians

__all__ = ["Relay", "RelayOptions", "read_technicians"]
