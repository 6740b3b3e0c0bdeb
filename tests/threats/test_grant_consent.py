"""Threat: getting past consent, or past what a grant allows, with a grant, over real SSH.

An in-process agent on loopback that takes grants (AgentSettings.grants): a
grant answer replayed onto another connection fails its proof (the nonce); a
refused grant costs the code nothing; an agent with codes off takes no code;
once in, the session may do only what the grant names, and nobody is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import EMAIL, new_signer
from tests.session_support import (
    Collector,
    Customer,
    code_of,
    identity,
    make_catalogue,
    make_policy,
)
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import CodeState, Scope
from toolkit.consent._grant import (
    Admission,
    AgentGrantHandshake,
    GrantClaim,
    TechnicianGrantHandshake,
)
from toolkit.consent.errors import ConsentError, GrantsOnly, IdentityProofFailed
from toolkit.grants import Grant, GrantedProcedure, issue
from toolkit.grants.acceptance import GrantAcceptance
from toolkit.grants.check import GrantRefused
from toolkit.grants.ledger import Ledger
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import public_line
from toolkit.identity.store import Identity
from toolkit.plugins import Kind
from toolkit.session.commands import parse_checked
from toolkit.session.results import Status
from toolkit.session.technician import TechnicianSession
from toolkit.transport.ssh import ConsentAsk, connect, pinned

OWNER = "owner@example.com"
NOW = datetime.now(UTC).replace(microsecond=0)
BOTH = (Scope.DIAGNOSTICS, Scope.FIXES)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.owner = new_signer()
        self.technician = identity()
        self.customer = Customer()
        self.screen = Collector()
        self.ledger = Ledger(root / "grants")
        trust = AllowedSigners.from_text(
            f'{OWNER} namespaces="toolkit-grant" {public_line(self.owner.public_blob)}\n'
        )
        self.acceptance = GrantAcceptance(trust, self.ledger)

    async def agent(self, *, codes: bool = True) -> Agent:
        agent = Agent(
            AgentSettings(
                policy=make_policy(self.root),
                approver=self.customer,
                approve_fix=self.customer.approve_fix,
                offered=frozenset(BOTH),
                catalogue=make_catalogue(),
                transcripts=self.root / "customer-transcripts",
                hostname="customer-pc",
                grants=self.acceptance,
                codes=codes,
            ),
            self.screen,
        )
        await agent.start("127.0.0.1", 0)
        return agent

    def grant(self, agent: Agent, **changes: Any) -> Grant:
        values: dict[str, Any] = {
            "issuer": OWNER,
            "technician": public_line(self.technician.signer.public_blob),
            "procedures": [],
            "scopes": ["diagnostics"],
            "hosts": [agent.host_key.fingerprint],
            "ticket": "T-1",
            "not_before": NOW - timedelta(minutes=5),
            "not_after": NOW + timedelta(hours=1),
            "uses": 5,
        }
        values.update(changes)
        return issue(self.owner, **values)

    async def session(
        self,
        agent: Agent,
        grant: Grant,
        scopes: Sequence[Scope] = BOTH,
        *,
        copy: str = "technician",
    ) -> TechnicianSession:
        who: Identity = self.technician
        ask = ConsentAsk(
            who, "T-1", frozenset(scopes), None, grant=grant,
            host_key_check=pinned(agent.host_key.fingerprint),
        )  # fmt: skip
        conn, consent = await connect("127.0.0.1", agent.address[1], ask)
        return await TechnicianSession.start(
            conn, consent, who, "agent", path=self.root / f"{copy}.cast"
        )


async def _do(session: TechnicianSession, line: str) -> Any:
    command = parse_checked(line)
    assert command is not None
    return await session.execute(command)


def test_a_grant_answer_replayed_on_another_connection_fails_its_proof(tmp_path: Path) -> None:
    # The agent's nonce is fresh per connection: an answer overheard (or logged) once
    # cannot be answered again, even with the grant and every field unchanged.
    world = World(tmp_path)
    host = new_signer().public_blob
    grant = issue(
        world.owner, issuer=OWNER, technician=public_line(world.technician.signer.public_blob),
        procedures=[], scopes=["diagnostics"], hosts=["web-01"], ticket="T-1",
        not_before=NOW - timedelta(minutes=1), not_after=NOW + timedelta(hours=1), uses=1,
    )  # fmt: skip
    admitted: list[GrantClaim] = []

    def admit(claim: GrantClaim) -> Admission:
        admitted.append(claim)
        raise AssertionError("a replayed answer must not reach the grant's checks")

    first = AgentGrantHandshake(host, admit)
    tech = TechnicianGrantHandshake(
        world.technician.signer, host, grant, name="Alice Tech", email=EMAIL, ticket="T-1",
        scopes=["diagnostics"],
    )  # fmt: skip
    answer = tech.respond(first.challenge())
    second = AgentGrantHandshake(host, admit)
    second.challenge()
    with pytest.raises(IdentityProofFailed):
        second.receive_grant(answer)
    assert admitted == []


def test_a_refused_grant_costs_the_code_no_try_and_does_not_use_it(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        agent = await world.agent()
        try:
            for _ in range(4):  # more than the code's tries
                with pytest.raises(GrantRefused) as refused:
                    await world.session(agent, world.grant(agent, ticket="T-9"))
                assert refused.value.reason == "other-ticket"
            code = agent.codes.current
            assert code.state is CodeState.ACTIVE
            assert code.tries_left == 3
            assert world.customer.asked == []
            assert any("refused 127.0.0.1:" in line for line in world.screen.lines)
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())


def test_an_agent_with_codes_off_takes_no_code(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        agent = await world.agent(codes=False)
        try:
            ask = ConsentAsk(world.technician, "T-1", frozenset(BOTH), code_of(agent))
            with pytest.raises(GrantsOnly):
                await connect("127.0.0.1", agent.address[1], ask)
            assert agent.codes.current.state is CodeState.ACTIVE  # never offered, never tried
            session = await world.session(agent, world.grant(agent))
            assert session.consent.method == "grant"
            await session.end("done")
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())


def test_a_session_does_only_what_the_grant_names_and_nobody_is_asked(tmp_path: Path) -> None:
    async def main() -> None:
        world = World(tmp_path)
        (tmp_path / "allowed").mkdir(exist_ok=True)
        (tmp_path / "allowed" / "notes.txt").write_text("notes\n")
        agent = await world.agent()
        try:
            fix = make_catalogue().find(Kind.FIX, "mark")
            assert fix is not None
            grant = world.grant(
                agent, scopes=[], procedures=[GrantedProcedure("fix", "mark", fix.sha256)]
            )
            session = await world.session(agent, grant)
            refused = [
                await _do(session, "run echo hi"),
                await _do(session, f"read {tmp_path / 'allowed' / 'notes.txt'}"),
                await _do(session, "diag hello"),
                await _do(session, "run touch x"),
            ]
            assert [r.status for r in refused] == [Status.REFUSED] * 4, refused
            assert f"which the grant {grant.id} does not give" in (refused[0].message or "")
            assert f"the grant {grant.id} does not name the diagnostic hello" in (
                refused[2].message or ""
            )
            done = await _do(session, "fix mark")
            assert done.status is Status.OK, done
            assert done.approval is not None and done.approval["by"] == "grant"
            await session.end("done")
            assert world.customer.questions == [] and world.customer.asked == []
            assert f"fix mark -> exit 0 (grant {grant.id})" in world.screen.lines
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())


def test_a_second_grant_while_a_session_runs_is_refused_and_spends_nothing(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = World(tmp_path)
        agent = await world.agent()
        try:
            grant = world.grant(agent)
            session = await world.session(agent, grant)
            with pytest.raises(ConsentError):  # share serves one session at a time
                await world.session(agent, grant)
            assert world.ledger.used(grant.id) == 1
            await session.end("done")
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())


def test_a_grants_scope_covers_no_procedure_the_technician_brings(tmp_path: Path) -> None:
    """A scope grant with a brought fix or diagnostic would be a shell: refused, nothing runs."""
    from toolkit.plugins import Diagnostic, Fix

    async def main() -> None:
        world = World(tmp_path)
        agent = await world.agent()
        planted = tmp_path / "planted"
        try:
            grant = world.grant(agent, scopes=["diagnostics", "fixes"])
            session = await world.session(agent, grant)
            evil_fix = Fix("evil", "Not installed here", apply=[["touch", str(planted)]])
            evil_diag = Diagnostic("evil-look", "Not installed here", run=[["touch", str(planted)]])
            cases: list[tuple[str, Fix | Diagnostic, dict[str, Any]]] = [
                ("fix", evil_fix, {"step": "apply"}),
                ("diag", evil_diag, {}),
            ]
            for op, procedure, more in cases:
                reply = await session.client.request(
                    op, name=procedure.name, declaration=procedure.to_dict(), params={}, **more
                )
                assert not reply.response.ok and reply.response.error == "refused", reply.response
                assert "is brought, and the grant" in (reply.response.message or "")
            assert not planted.exists()  # nothing ran
            # An installed fix the scope covers still runs, approved by the grant.
            done = await _do(session, "fix mark")
            assert done.status is Status.OK, done
            await session.end("done")
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())


def test_a_session_held_past_its_grants_window_or_revocation_may_do_nothing_more(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        world = World(tmp_path)
        agent = await world.agent()
        try:
            # Revoked while the session runs: the next operation is refused.
            grant = world.grant(agent)
            session = await world.session(agent, grant)
            assert (await _do(session, "run echo hi")).status is Status.OK
            assert world.ledger.revoke(grant.id, reason="lost laptop", now=datetime.now(UTC))
            refused = await _do(session, "run echo hi")
            assert refused.status is Status.REFUSED
            assert f"the grant {grant.id} was revoked on this host" in (refused.message or "")
            await session.end("done")
        finally:
            await agent.stop("test over")
            await agent.wait()
        agent = await world.agent()  # share serves one session: another for the next
        try:
            # Past its window: a grant that ends in a moment, held open past its end.
            short = world.grant(agent, not_after=datetime.now(UTC) + timedelta(seconds=2))
            session = await world.session(agent, short, copy="second")
            assert (await _do(session, "run echo hi")).status is Status.OK
            # Wait out the window on the agent's own clock (the check's), not a fixed sleep.
            while datetime.now(UTC) <= short.not_after:
                await asyncio.sleep(0.1)
            late = await _do(session, "run echo hi")
            assert late.status is Status.REFUSED
            assert f"the grant {short.id} expired at" in (late.message or "")
            await session.end("done")
        finally:
            await agent.stop("test over")
            await agent.wait()

    run(main())
