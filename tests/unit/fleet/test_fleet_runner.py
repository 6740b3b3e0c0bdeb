"""The runner: bounded concurrency, isolation, timeouts, Ctrl-C (real asyncio, real signals)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest

from toolkit.errors import ExitCode, TransportError
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.fleet.runner import FORCED, NOT_STARTED, EventKind, Stop, run_fleet

ROOT = Path(__file__).parents[3]


def hosts(count: int) -> list[Host]:
    return [Host(f"h{i:02d}", address=("127.0.0.1", 1)) for i in range(count)]


def test_never_more_than_forks_at_once_and_every_host_runs() -> None:
    async def go() -> tuple[FleetResult, int]:
        in_flight = 0
        peak = 0
        full = asyncio.Event()
        release = asyncio.Event()

        async def run_one(host: Host) -> HostResult:
            nonlocal in_flight, peak
            in_flight += 1
            peak = max(peak, in_flight)
            if in_flight == 3:
                full.set()
            await release.wait()
            in_flight -= 1
            return HostResult(host.name, HostStatus.OK)

        async def controller() -> None:
            await full.wait()
            await asyncio.sleep(0)  # let any extra worker start, were there one
            release.set()

        fleet, _ = await asyncio.gather(
            run_fleet(hosts(10), run_one, forks=3, handle_sigint=False), controller()
        )
        return fleet, peak

    fleet, peak = asyncio.run(go())
    assert peak == 3
    assert [r.host for r in fleet.results] == [h.name for h in hosts(10)]
    assert fleet.exit_code == ExitCode.OK and fleet.counts == {"ok": 10}
    assert fleet.to_retry() == []


def test_one_host_failing_never_stops_the_others() -> None:
    events: list[tuple[str, str | None]] = []

    async def run_one(host: Host) -> HostResult:
        if host.name == "h01":
            raise TransportError("The agent at 127.0.0.1:1 refused the connection.")
        if host.name == "h02":
            raise RuntimeError("a bug \x1b[2J")
        if host.name == "h03":
            return HostResult(host.name, HostStatus.FAILED, "apply failed (exit 1); rolled back")
        return HostResult(host.name, HostStatus.CHANGED)

    fleet = asyncio.run(
        run_fleet(
            hosts(5),
            run_one,
            forks=2,
            on_event=lambda e: events.append((e.kind, e.host)),
            handle_sigint=False,
        )
    )
    statuses = [(r.host, r.status, r.message) for r in fleet.results]
    assert statuses[0] == ("h00", HostStatus.CHANGED, "")
    assert (
        statuses[1][:2] == ("h01", HostStatus.FAILED) and "refused the connection" in statuses[1][2]
    )
    assert statuses[2][1] is HostStatus.FAILED and "internal error" in statuses[2][2]
    assert "\x1b" not in statuses[2][2]
    assert statuses[4][1] is HostStatus.CHANGED
    assert fleet.exit_code == ExitCode.FAILED
    assert fleet.to_retry() == ["h01", "h02", "h03"]
    assert sorted(events) == sorted(
        [(EventKind.STARTED, h.name) for h in hosts(5)]
        + [(EventKind.ENDED, h.name) for h in hosts(5)]
    )


def test_a_host_past_its_timeout_is_cancelled_and_unwinds() -> None:
    unwound: list[str] = []

    async def run_one(host: Host) -> HostResult:
        if host.name != "h01":
            return HostResult(host.name, HostStatus.OK)
        try:
            await asyncio.Event().wait()  # never answers
        finally:
            await asyncio.sleep(0)  # an unwinding session still awaits (it seals)
            unwound.append(host.name)
        raise AssertionError("unreachable")

    fleet = asyncio.run(run_fleet(hosts(3), run_one, timeout=0.2, handle_sigint=False))
    assert unwound == ["h01"]
    timed_out = fleet.results[1]
    assert timed_out.status is HostStatus.TIMED_OUT
    assert timed_out.message == "did not end within 0.2 seconds"
    assert timed_out.seconds >= 0.2
    assert [r.status for r in fleet.results[::2]] == [HostStatus.OK, HostStatus.OK]
    assert fleet.exit_code == ExitCode.NETWORK


def test_a_timed_out_host_keeps_what_its_session_returned() -> None:
    async def run_one(host: Host) -> HostResult:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # the session ends and seals, and says so
            return HostResult(host.name, HostStatus.INTERRUPTED, transcript=Path("/t.cast"))
        raise AssertionError("unreachable")

    fleet = asyncio.run(run_fleet(hosts(1), run_one, timeout=0.05, handle_sigint=False))
    result = fleet.results[0]
    assert (result.status, result.transcript) == (HostStatus.TIMED_OUT, Path("/t.cast"))


def test_stop_starts_nothing_new_and_running_hosts_end_their_step() -> None:
    async def go() -> tuple[FleetResult, list[str]]:
        stop = Stop()
        started: list[str] = []
        step = asyncio.Event()
        two = asyncio.Event()

        async def run_one(host: Host) -> HostResult:
            started.append(host.name)
            if len(started) == 2:
                two.set()
            await step.wait()
            if stop.stopping:
                return HostResult(host.name, HostStatus.INTERRUPTED, "stopped after check")
            return HostResult(host.name, HostStatus.OK)

        async def press() -> None:
            await two.wait()
            stop.press()
            step.set()

        fleet, _ = await asyncio.gather(
            run_fleet(hosts(6), run_one, forks=2, stop=stop, handle_sigint=False), press()
        )
        return fleet, started

    fleet, started = asyncio.run(go())
    assert started == ["h00", "h01"]
    assert [r.message for r in fleet.results] == ["stopped after check"] * 2 + [NOT_STARTED] * 4
    assert fleet.interrupted and fleet.exit_code == ExitCode.INTERRUPTED
    assert fleet.to_retry() == [h.name for h in hosts(6)]


def test_forks_out_of_range_is_a_programming_error() -> None:
    async def run_one(host: Host) -> HostResult:
        raise AssertionError

    with pytest.raises(ValueError):
        asyncio.run(run_fleet(hosts(1), run_one, forks=0, handle_sigint=False))


# -- Ctrl-C in a real process ------------------------------------------------------------


def _child(count: int, forks: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.unit.fleet.fleet_child", str(count), str(forks)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _until(stream: IO[str], wanted: set[str]) -> list[str]:
    seen: list[str] = []
    while not wanted <= set(seen):
        line = stream.readline()
        assert line, f"the child ended before {wanted - set(seen)}; it said {seen}"
        seen.append(line.rstrip("\n"))
    return seen


def test_ctrl_c_stops_new_hosts_and_lets_running_ones_end_their_step() -> None:
    child = _child(5, 2)
    assert child.stdin is not None and child.stdout is not None
    try:
        seen = _until(child.stdout, {"started h1", "started h2"})
        child.send_signal(signal.SIGINT)
        seen += _until(child.stdout, {"event stopping"})
        child.stdin.write("go\n")
        child.stdin.close()
        rest = child.stdout.read().splitlines()
        code = child.wait(timeout=30)
    finally:
        child.kill()
    assert code == ExitCode.INTERRUPTED
    assert not any(line.startswith(("started h3", "sealed")) for line in seen + rest)
    assert rest == [
        "result h1 interrupted: stopped after check",
        "result h2 interrupted: stopped after check",
        f"result h3 interrupted: {NOT_STARTED}",
        f"result h4 interrupted: {NOT_STARTED}",
        f"result h5 interrupted: {NOT_STARTED}",
    ]


def test_a_second_ctrl_c_cancels_running_hosts_which_still_unwind() -> None:
    child = _child(3, 2)
    assert child.stdin is not None and child.stdout is not None
    try:
        _until(child.stdout, {"started h1", "started h2"})
        child.send_signal(signal.SIGINT)
        _until(child.stdout, {"event stopping"})
        child.send_signal(signal.SIGINT)
        seen = _until(child.stdout, {"event forcing", "sealed h1", "sealed h2"})
        child.stdin.close()
        rest = child.stdout.read().splitlines()
        code = child.wait(timeout=30)
    finally:
        child.kill()
    assert code == ExitCode.INTERRUPTED
    assert "started h3" not in seen + rest
    assert rest == [
        f"result h1 interrupted: {FORCED}",
        f"result h2 interrupted: {FORCED}",
        f"result h3 interrupted: {NOT_STARTED}",
    ]
