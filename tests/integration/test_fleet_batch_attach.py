"""A fleet's transcripts: each host's into the outbox, then all of them onto the ticket at once.

Real agents on loopback (tests/integration/test_fleet_sessions.py's), run_host with
``attach=False`` as ``toolkit run --inventory`` runs it, then deliver_entries as the
CLI calls it after the hosts.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.integration.test_fleet_sessions import _agent, _run
from tests.session_support import Customer, code_of, identity
from toolkit.consent import Scope
from toolkit.errors import TicketBackendError
from toolkit.fleet import session as fleet_session
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.fleet.runner import run_fleet
from toolkit.tickets import attach as attach_module
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox

HOSTS = ("web-01", "web-02", "web-03")


def _fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FleetResult:
    async def go() -> FleetResult:
        agents = {
            name: await _agent(tmp_path / name, Customer(), frozenset(Scope)) for name in HOSTS
        }
        codes = {name: code_of(agent) for name, agent in agents.items()}
        real = fleet_session.request_for

        def with_code(host: Host, **kwargs: object) -> object:
            import dataclasses

            return dataclasses.replace(real(host, **kwargs), code=codes[host.name])  # type: ignore[arg-type]

        monkeypatch.setattr(fleet_session, "request_for", with_code)
        hosts = [
            Host(n, address=("127.0.0.1", a.address[1]), params={"name": n})
            for n, a in agents.items()
        ]
        who = identity()

        async def run_one(host: Host) -> HostResult:
            return await fleet_session.run_host(
                host, "make-dir", host.params, True, who, None,
                mine=None, ticket="OPS-17", attach=False,
            )  # fmt: skip

        try:
            return await run_fleet(hosts, run_one, forks=3)
        finally:
            for agent in agents.values():
                await agent.stop("test over")

    fleet: FleetResult = _run(go())
    return fleet


def test_the_hosts_transcripts_wait_in_the_outbox_then_go_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = _fleet(tmp_path, monkeypatch)
    assert {r.status for r in fleet.results} == {HostStatus.WOULD_CHANGE}  # --check: needed
    for result in fleet.results:
        assert any("waits in the outbox until then" in line for line in result.output)
    ids = sorted(str(r.session) for r in fleet.results)
    assert sorted(e.id for e in Outbox().entries()) == ids  # safe before anything is attached
    with pytest.raises(TicketBackendError):
        LocalTickets().ticket("OPS-17")

    tried = attach_module.deliver_entries(ids)
    assert all(d is not None and err is None for _, d, err in tried)
    assert Outbox().entries() == []
    held = {a.name: a for a in LocalTickets().ticket("OPS-17").attachments}
    for result in fleet.results:
        assert result.transcript is not None
        on_ticket = held[result.transcript.name]
        assert on_ticket.sha256 == result.transcript_sha256
        assert hashlib.sha256(Path(on_ticket.location).read_bytes()).hexdigest() == (
            result.transcript_sha256
        )
    assert len(held) == 4 * len(HOSTS)  # .cast, .sig, SHA256SUMS and its .sig: once each
    assert attach_module.deliver_entries(ids) == []  # nothing left: nothing attached twice
    assert len(LocalTickets().ticket("OPS-17").attachments) == 4 * len(HOSTS)


def test_when_the_ticket_system_cannot_be_used_every_transcript_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = _fleet(tmp_path, monkeypatch)
    ids = [str(r.session) for r in fleet.results]
    import toolkit.tickets.plugins as plugins

    def broken(name: str, passphrase: object = None) -> object:
        raise TicketBackendError("The ticket system is down.")

    with monkeypatch.context() as patched:
        patched.setattr(plugins, "open_backend", broken)
        tried = attach_module.deliver_entries(ids)
    assert all(d is None and err is not None for _, d, err in tried)
    waiting = Outbox().entries()
    assert sorted(e.id for e in waiting) == sorted(ids)
    assert all(e.last_error == "The ticket system is down." for e in waiting)
    assert all(d is not None for _, d, _ in attach_module.deliver_entries(ids))
    assert len(LocalTickets().ticket("OPS-17").attachments) == 4 * len(HOSTS)
