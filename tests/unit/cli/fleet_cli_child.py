"""`toolkit run --inventory` in a process of its own, each host's session the test's own.

For what needs a real process: SIGINT, and stderr on a terminal (the live view).
Each host writes "started NAME" on the control descriptor (FLEET_CONTROL_FD),
is at its "check" step until a line comes on stdin, then ends "ok", or
"interrupted" after that step if Ctrl-C was pressed meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import toolkit.cli.fleet
import toolkit.fleet.session
from toolkit.cli import run
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import HostResult, HostStatus


class Grant:
    """Stands in for the grant the CLI would load: it covers every fix."""

    id = "g-bbbbbbbbbbbbbbbbbbbbbbbbbb"
    scopes = frozenset({"fixes"})

    def names(self, kind: str, name: str) -> None:
        return None


_released: list[asyncio.Event] = []
_readers: list[asyncio.Task[None]] = []


async def _release() -> asyncio.Event:
    if not _released:
        event = asyncio.Event()
        _released.append(event)
        loop = asyncio.get_running_loop()

        async def read() -> None:
            await loop.run_in_executor(None, sys.stdin.readline)
            event.set()

        _readers.append(loop.create_task(read()))
    return _released[0]


async def run_host(host: Host, *args: Any, stop: Any, on_step: Any, **kwargs: Any) -> HostResult:
    released = await _release()
    os.write(int(os.environ["FLEET_CONTROL_FD"]), f"started {host.name}\n".encode())
    on_step("check")
    await released.wait()
    steps = ({"purpose": "check", "status": "ok"},)
    if stop.stopping:
        return HostResult(host.name, HostStatus.INTERRUPTED, "stopped after its step", steps)
    return HostResult(host.name, HostStatus.OK, "not needed", steps, ("checked",))


if __name__ == "__main__":
    setattr(toolkit.fleet.session, "run_host", run_host)  # noqa: B010
    grants = lambda hosts, given: {h.name: Grant() for h in hosts}  # noqa: E731
    setattr(toolkit.cli.fleet, "_load_grants", grants)  # noqa: B010
    sys.exit(run(sys.argv[1:]))
