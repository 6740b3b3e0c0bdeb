"""A fleet run in a process of its own, for Ctrl-C tests: SIGINT goes to a real process.

Each host says "started NAME", then waits for a line on stdin (its one step),
then, if Ctrl-C was pressed, ends "interrupted" after that step (its session
ended), else goes on to "changed". A cancelled host says "sealed NAME" as it
unwinds. At the end: one "result NAME STATUS: MESSAGE" line per host; the exit
code is the fleet's.
"""

from __future__ import annotations

import asyncio
import sys

from toolkit.fleet.inventory import Host
from toolkit.fleet.results import HostResult, HostStatus
from toolkit.fleet.runner import FleetEvent, Stop, run_fleet


def say(line: str) -> None:
    print(line, flush=True)


async def main(count: int, forks: int) -> int:
    loop = asyncio.get_running_loop()
    released = asyncio.Event()
    stop = Stop()

    async def read() -> None:
        await loop.run_in_executor(None, sys.stdin.readline)
        released.set()

    reader = asyncio.ensure_future(read())

    async def run_one(host: Host) -> HostResult:
        say(f"started {host.name}")
        try:
            await released.wait()  # the host's one step
        finally:
            if not released.is_set():
                say(f"sealed {host.name}")
        if stop.stopping:
            return HostResult(host.name, HostStatus.INTERRUPTED, "stopped after check")
        return HostResult(host.name, HostStatus.CHANGED, "applied")

    def on_event(event: FleetEvent) -> None:
        if event.host is None:
            say(f"event {event.kind}")

    hosts = [Host(f"h{i}", address=("127.0.0.1", 1)) for i in range(1, count + 1)]
    fleet = await run_fleet(hosts, run_one, forks=forks, on_event=on_event, stop=stop)
    for result in fleet.results:
        say(f"result {result.host} {result.status}: {result.message}")
    reader.cancel()
    return int(fleet.exit_code)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]), int(sys.argv[2]))))
