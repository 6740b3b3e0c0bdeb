"""A fleet against real agents on loopback: run_host's sessions, end to end, in one process.

Each host is a real agent (toolkit.agent.server.Agent, in this process as
tests/session_support.py makes them) with its own host key, policy, customer
and transcripts. Each session passes consent with its agent's one-time code, put
into the request that run_host builds, so that a customer can say no (declined,
an apply declined), which no grant does; everything else is the fleet's own
path: run_fleet, run_host, run_session, run_fix, the seal and the attachment to
the ticket. Grants through a whole fleet: tests/integration/test_fleet_grants.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Collector, Customer, code_of, identity, make_policy
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import Scope
from toolkit.fleet import session as fleet_session
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.fleet.runner import NOT_STARTED, Stop, run_fleet
from toolkit.plugins import Fix, Parameter
from toolkit.plugins.catalogue import Catalogue
from toolkit.secrets import Secret
from toolkit.session.workflow import INTERRUPTED
from toolkit.tickets.summary import verdict
from toolkit.transcript.models import Header

FIX = Fix(
    "make-dir",
    "Make a directory in the home directory",
    parameters=(Parameter("name", pattern=r"[a-z0-9-]{1,30}", description="its name"),),
    check=[["test", "-d", "{home}/{name}"]],
    apply=[["mkdir", "--", "{home}/{name}"]],
    verify=[["test", "-d", "{home}/{name}"]],
    rollback=[["rm", "-f", "--", "{home}/{name}"]],
)


async def _agent(root: Path, customer: Customer, offered: frozenset[Scope]) -> Agent:
    agent = Agent(
        AgentSettings(
            policy=make_policy(root),
            approver=customer,
            approve_fix=customer.approve_fix,
            offered=offered,
            catalogue=Catalogue([FIX]),
            transcripts=root / "customer-transcripts",
            hostname=root.name,
        ),
        Collector(),
    )
    await agent.start("127.0.0.1", 0)
    return agent


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def _silent() -> AsyncIterator[int]:
    """A port that accepts and then says nothing: a host that never answers."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()


def _run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 120))


async def _fleet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    plans: dict[str, tuple[Customer | None, frozenset[Scope]]],
    *,
    extra: dict[str, int] | None = None,
    stop: Stop | None = None,
    on_step: Callable[[str, str], None] | None = None,
    forks: int = 4,
    timeout: float | None = None,
) -> tuple[FleetResult, dict[str, Agent]]:
    """Agents for ``plans`` (a host name: its customer and offered scopes), plus hosts on
    the ports ``extra`` names, and the fleet run over all of them."""
    agents: dict[str, Agent] = {}
    codes: dict[str, Secret] = {}
    for name, (customer, offered) in plans.items():
        agent = await _agent(tmp_path / name, customer or Customer(), offered)
        agents[name] = agent
        codes[name] = code_of(agent)
    hosts = [
        Host(name, address=("127.0.0.1", agent.address[1]), params={"name": name})
        for name, agent in agents.items()
    ] + [
        Host(name, address=("127.0.0.1", port), params={"name": name})
        for name, port in (extra or {}).items()
    ]
    real = fleet_session.request_for

    def with_code(host: Host, **kwargs: Any) -> Any:
        request = real(host, **kwargs)
        code = codes.get(host.name, Secret("000000000"))  # never sent: nothing answers there
        return dataclasses.replace(request, code=code)

    monkeypatch.setattr(fleet_session, "request_for", with_code)
    who = identity()
    stop = stop or Stop()

    async def run_one(host: Host) -> HostResult:
        def stepped(label: str) -> None:
            if on_step is not None:
                on_step(host.name, label)

        return await fleet_session.run_host(
            host, "make-dir", host.params, False, who, None,
            mine=None, ticket="OPS-17", stop=stop, on_step=stepped,
        )  # fmt: skip

    try:
        fleet = await run_fleet(
            hosts, run_one, forks=forks, timeout=timeout, stop=stop, handle_sigint=False
        )
    finally:
        for agent in agents.values():
            await agent.stop("test over")
    return fleet, agents


def _sealed(result: HostResult) -> Header:
    assert result.transcript is not None, result
    report, line = verdict(result.transcript, None)
    assert report.verdict.value == "SEALED", line
    assert result.transcript_sha256 == hashlib.sha256(result.transcript.read_bytes()).hexdigest()
    with result.transcript.open("rb") as f:
        return Header.from_line(f.readline())


BOTH = frozenset({Scope.DIAGNOSTICS, Scope.FIXES})


def test_mixed_outcomes_through_real_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    home = isolated / "home"
    (home / "ok-01").mkdir()  # already there: the fix is not needed
    (home / "failed-01").write_text("a file where the directory goes: mkdir fails")

    async def go() -> tuple[FleetResult, dict[str, Agent]]:
        return await _fleet(
            tmp_path,
            monkeypatch,
            {
                "changed-01": (None, BOTH),
                "ok-01": (None, BOTH),
                "failed-01": (None, BOTH),
                "declined-01": (Customer(approve=False), BOTH),
                "apply-declined-01": (Customer(approve_fixes=False), BOTH),
                "diagnostics-only-01": (None, frozenset({Scope.DIAGNOSTICS})),
            },
            extra={"unreachable-01": _closed_port()},
        )

    fleet, _ = _run(go())
    by_host = {r.host: r for r in fleet.results}
    assert {h: r.status for h, r in by_host.items()} == {
        "changed-01": HostStatus.CHANGED,
        "ok-01": HostStatus.OK,
        "failed-01": HostStatus.FAILED,
        "declined-01": HostStatus.DECLINED,
        "apply-declined-01": HostStatus.DECLINED,
        "diagnostics-only-01": HostStatus.REFUSED,  # consent passed; the agent refused apply
        "unreachable-01": HostStatus.UNREACHABLE,
    }
    changed = by_host["changed-01"]
    assert [s["purpose"] for s in changed.steps] == ["check", "apply", "verify", "recheck"]
    assert (home / "changed-01").is_dir()
    assert by_host["failed-01"].message.startswith("apply failed (exit 1); ")
    scoped = by_host["diagnostics-only-01"]
    assert [(s["purpose"], s["status"]) for s in scoped.steps] == [
        ("check", "failed"),  # test -d exits 1: needed
        ("apply", "refused"),
    ]
    assert not (home / "diagnostics-only-01").exists()
    assert by_host["unreachable-01"].code == 4
    # Every session that started is sealed, its digest as the result says, on the ticket.
    for name in ("changed-01", "ok-01", "failed-01", "apply-declined-01", "diagnostics-only-01"):
        header = _sealed(by_host[name])
        assert header.ticket == "OPS-17"
        assert any("Transcript sealed and attached to ticket OPS-17" in line
                   for line in by_host[name].output), by_host[name].output  # fmt: skip
    # Each host's output is its own, and says what ran.
    assert any("== check: test -d" in line for line in changed.output)
    assert all("failed-01" not in line for line in changed.output)
    assert fleet.exit_code == 4
    assert fleet.to_retry() == [
        "failed-01",
        "declined-01",
        "apply-declined-01",
        "diagnostics-only-01",
        "unreachable-01",
    ]


def test_a_host_that_never_answers_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def go() -> FleetResult:
        async with _silent() as silent:
            fleet, _ = await _fleet(
                tmp_path, monkeypatch, {}, extra={"silent-01": silent}, timeout=0.5
            )
            return fleet

    (result,) = _run(go()).results
    assert (result.status, result.code, result.transcript) == (HostStatus.TIMED_OUT, 4, None)
    assert result.message == "did not end within 0.5 seconds"


def test_stop_ends_running_sessions_after_their_step_and_seals_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated: Path
) -> None:
    stop = Stop()

    def on_step(host: str, label: str) -> None:
        if (host, label) == ("first", "check"):
            stop.press()  # Ctrl-C while the first host's apply is next

    fleet, _ = _run(
        _fleet(
            tmp_path,
            monkeypatch,
            {"first": (None, BOTH), "second": (None, BOTH)},
            stop=stop,
            on_step=on_step,
            forks=1,
        )
    )
    first, second = fleet.results
    assert first.status is HostStatus.INTERRUPTED
    # The check had ended when Ctrl-C came; the apply was next and ran; then it stopped.
    assert [s["purpose"] for s in first.steps] == ["check", "apply"]
    _sealed(first)
    assert first.transcript is not None
    assert INTERRUPTED.encode() in first.transcript.read_bytes()
    assert (second.status, second.message, second.transcript) == (
        HostStatus.INTERRUPTED,
        NOT_STARTED,
        None,
    )
    assert fleet.exit_code == 130


class _Away(Customer):
    """Approves the session, then never answers about the fix: the host stays in apply."""

    def __init__(self) -> None:
        super().__init__()
        self.fix_asked = asyncio.Event()

    async def approve_fix(self, question: Any) -> bool:
        self.fix_asked.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def test_a_second_ctrl_c_cancels_a_host_mid_step_and_its_session_is_still_sealed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stop = Stop()
    away = _Away()

    async def go() -> FleetResult:
        async def press_twice() -> None:
            await away.fix_asked.wait()  # the host is in apply, waiting for the customer
            stop.press()
            stop.press()

        presser = asyncio.ensure_future(press_twice())
        fleet, _ = await _fleet(tmp_path, monkeypatch, {"away": (away, BOTH)}, stop=stop)
        await presser
        return fleet

    (result,) = _run(go()).results
    assert result.status is HostStatus.INTERRUPTED
    assert result.message == "cancelled; its session was ended and sealed"
    assert [s["purpose"] for s in result.steps] == ["check"]  # apply never came back
    header = _sealed(result)
    assert header.ticket == "OPS-17"
