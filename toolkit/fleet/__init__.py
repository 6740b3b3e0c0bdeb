"""Fleets: one fix on many hosts, each in its own consented, recorded session (docs/fleet.md).

- :mod:`toolkit.fleet.inventory`: the TOML inventory and ``--limit`` patterns;
- :mod:`toolkit.fleet.runner`: :func:`run_fleet`, bounded concurrency, timeouts, Ctrl-C;
- :mod:`toolkit.fleet.results`: each host's :class:`HostResult`, the run's :class:`FleetResult`;
- :mod:`toolkit.fleet.retry`: the retry file, read back by ``--limit @FILE``;
- :mod:`toolkit.fleet.summary`: the signed run summary;
- :mod:`toolkit.fleet.session`: one host's session (grant, pinned host key, the fix).
"""

from __future__ import annotations

from toolkit.fleet.inventory import Host, Inventory, load, select
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.fleet.runner import EventKind, FleetEvent, Stop, run_fleet

__all__ = [
    "EventKind",
    "FleetEvent",
    "FleetResult",
    "Host",
    "HostResult",
    "HostStatus",
    "Inventory",
    "Stop",
    "load",
    "run_fleet",
    "select",
]
