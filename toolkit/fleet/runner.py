"""Many hosts, each in its own session, a bounded number at a time.

:func:`run_fleet` calls ``run_one(host)`` for every host, at most ``forks``
at once, each within ``timeout`` seconds, and returns every host's
:class:`~toolkit.fleet.results.HostResult` in the order given. One host's
failure (an error, a bug, a timeout) is that host's result and never stops
the others.

Ctrl-C (SIGINT, or :meth:`Stop.press`): the first press stops starting new
hosts; a running host sees :attr:`Stop.stopping` and ends after the step it
is in, ending its session so that its transcript is sealed (toolkit.fleet.session
does that). A second press cancels the hosts still running (a cancelled session
still ends and seals in its ``finally``). Hosts never started are
``interrupted``. What happens is told to ``on_event``; nothing here prints.
"""

from __future__ import annotations

import asyncio
import enum
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from toolkit.errors import ToolkitError
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.text import printable

DEFAULT_FORKS = 10
MAX_FORKS = 1000

RunOne = Callable[[Host], Awaitable[HostResult]]

NOT_STARTED = "not started: the run was interrupted (Ctrl-C)"
FORCED = "stopped by a second Ctrl-C"


class EventKind(enum.StrEnum):
    STARTED = "started"  # a host's session is starting
    STEP = "step"  # a host is at a step (detail names it); sent by run_one's side
    ENDED = "ended"  # a host ended (result)
    STOPPING = "stopping"  # the first Ctrl-C: no new hosts, running ones end after their step
    FORCING = "forcing"  # the second Ctrl-C: running hosts are cancelled


@dataclass(frozen=True)
class FleetEvent:
    kind: EventKind
    host: str | None = None
    detail: str = ""
    result: HostResult | None = None


OnEvent = Callable[[FleetEvent], None]


def _ignore(event: FleetEvent) -> None:
    pass


class Stop:
    """The run's Ctrl-C, shared by the runner and each host's session."""

    def __init__(self) -> None:
        self.presses = 0
        self._listeners: list[Callable[[int], None]] = []

    @property
    def stopping(self) -> bool:
        """Ctrl-C was pressed: start nothing new, end after the current step."""
        return self.presses > 0

    def press(self) -> None:
        self.presses += 1
        for listener in list(self._listeners):
            listener(self.presses)

    def listen(self, listener: Callable[[int], None]) -> Callable[[], None]:
        """Call ``listener(presses)`` on each press; returns what stops listening."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)


async def run_fleet(
    hosts: Sequence[Host],
    run_one: RunOne,
    *,
    forks: int = DEFAULT_FORKS,
    timeout: float | None = None,
    on_event: OnEvent = _ignore,
    stop: Stop | None = None,
    check_only: bool = False,
    handle_sigint: bool = True,
) -> FleetResult:
    """Run ``run_one`` on every host; see the module's docstring.

    ``handle_sigint``: SIGINT presses ``stop`` while this runs (only where a
    signal handler can be set: the main thread of a Unix process).
    """
    if not 1 <= forks <= MAX_FORKS:
        raise ValueError(f"forks must be 1..{MAX_FORKS}")
    stop = stop or Stop()
    loop = asyncio.get_running_loop()
    results: dict[int, HostResult] = {}
    running: dict[int, asyncio.Task[HostResult]] = {}
    pending = iter(list(enumerate(hosts)))

    def pressed(presses: int) -> None:
        if presses == 1:
            on_event(FleetEvent(EventKind.STOPPING))
        elif presses == 2:
            on_event(FleetEvent(EventKind.FORCING))
            for task in running.values():
                task.cancel(FORCED)

    unlisten = stop.listen(pressed)
    sigint = handle_sigint and threading.current_thread() is threading.main_thread()
    if sigint:
        loop.add_signal_handler(signal.SIGINT, stop.press)

    async def one(index: int, host: Host) -> None:
        on_event(FleetEvent(EventKind.STARTED, host.name))
        started = loop.time()
        task = asyncio.ensure_future(run_one(host))
        running[index] = task
        try:
            result = await _within(task, timeout, host)
        finally:
            del running[index]
        result = replace(result, host=host.name, seconds=loop.time() - started)
        results[index] = result
        on_event(FleetEvent(EventKind.ENDED, host.name, result=result))

    async def worker() -> None:
        for index, host in pending:
            if stop.stopping:
                return
            await one(index, host)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(forks, len(hosts)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in [*workers, *running.values()]:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if sigint:
            loop.remove_signal_handler(signal.SIGINT)
        unlisten()
    ordered = [
        results.get(i) or HostResult(h.name, HostStatus.INTERRUPTED, NOT_STARTED)
        for i, h in enumerate(hosts)
    ]
    return FleetResult.of(ordered, interrupted=stop.stopping, check_only=check_only)


async def _within(task: asyncio.Task[HostResult], timeout: float | None, host: Host) -> HostResult:
    """The task's result, or the host's result when it timed out, failed or was cancelled."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    timed_out = not done
    if timed_out:
        task.cancel()  # a session ends and seals as it unwinds; wait for that
    try:
        result = await task  # cancelling the runner cancels the host too
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the runner itself is being cancelled
        result = HostResult(host.name, HostStatus.INTERRUPTED, FORCED)
    except ToolkitError as exc:
        result = HostResult(host.name, HostStatus.FAILED, printable(exc.message, 300))
    except Exception as exc:  # a bug in one host's run must not stop the others
        why = printable(f"internal error: {exc!r}", 300)
        result = HostResult(host.name, HostStatus.FAILED, why)
    if timed_out:
        why = f"did not end within {timeout:g} seconds"
        return replace(result, status=HostStatus.TIMED_OUT, message=why, exit_code=None)
    return result


__all__ = [
    "DEFAULT_FORKS",
    "FORCED",
    "MAX_FORKS",
    "NOT_STARTED",
    "EventKind",
    "FleetEvent",
    "OnEvent",
    "RunOne",
    "Stop",
    "run_fleet",
]
