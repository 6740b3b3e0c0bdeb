"""A service agent (settings.service) on loopback: many sessions, after and beside each other.

Consent here is the code (the service's grants come from toolkit.grants): the
test knows each code, and asks the agent for the next one, as a customer would.
Each session must get its own customer's copy, sealed and verifiable; the end
of one session never ends the agent, and --max-sessions turns the one too many
away with a sentence that says why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.relay_support import eventually
from tests.session_support import (
    Collector,
    Customer,
    code_of,
    identity,
    make_catalogue,
    make_policy,
)
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import Scope
from toolkit.errors import TransportError, UsageError
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.session.commands import parse
from toolkit.session.technician import TechnicianSession
from toolkit.transcript.verify import Verdict, examine, read_events
from toolkit.transport.ssh import ConsentAsk, connect

TIMEOUT = 30.0


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@dataclass
class Log:
    """The service's events, as its log gets them; ``ended`` fills as sessions end."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    ended: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    def __call__(self, what: str, fields: dict[str, Any]) -> None:
        self.events.append((what, fields))
        if what == "session-end":
            self.ended.put_nowait(fields)

    async def next_end(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.ended.get(), TIMEOUT)

    def of(self, what: str) -> list[dict[str, Any]]:
        return [f for w, f in self.events if w == what]


@asynccontextmanager
async def service(root: Path, max_sessions: int = 16) -> AsyncIterator[tuple[Agent, Log]]:
    log = Log()
    customer = Customer()
    agent = Agent(
        AgentSettings(
            policy=make_policy(root),
            approver=customer,
            approve_fix=customer.approve_fix,
            catalogue=make_catalogue(),
            transcripts=root / "service-transcripts",
            hostname="server-7",
            service=True,
            max_sessions=max_sessions,
            events=log,
        ),
        Collector(),
    )
    await agent.start("127.0.0.1", 0)
    try:
        yield agent, log
    finally:
        await agent.stop("test over")


async def session(agent: Agent, root: Path, ticket: str) -> TechnicianSession:
    """A technician in, with the code shown now; the agent then shows the next one."""
    who = identity()
    ask = ConsentAsk(who, ticket, frozenset({Scope.DIAGNOSTICS}), code_of(agent))
    conn, consent = await connect("127.0.0.1", agent.address[1], ask)
    agent.fresh_code("the next technician")  # a service's code consent: one code each
    return await TechnicianSession.start(
        conn, consent, who, f"127.0.0.1:{agent.address[1]}", path=root / f"tech-{ticket}.cast"
    )


async def echo(tech: TechnicianSession, word: str) -> bytes:
    command = parse(f"run echo {word}")
    assert command is not None
    result = await tech.execute(command)
    assert result.error is None and result.exit_status == 0, result
    return bytes(result.stdout)


def sealed_ops(path: Path) -> list[str]:
    """The customer's copy verifies (with the trust file next to it); its echoed words."""
    trust = AllowedSigners.from_file(path.with_name(path.name + ".allowed_signers"))
    report = examine(path, trust)
    assert report.verdict is Verdict.SEALED, report.failure
    events = [e.fields() for e in read_events(path) if e.code == "e"]
    return [e["argv"][1] for e in events if e.get("op") == "run"]


def test_sessions_one_after_the_other_each_get_their_own_sealed_copy_and_the_agent_stays(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with service(tmp_path) as (agent, log):
            ended = asyncio.ensure_future(agent.wait())
            paths = []
            for ticket, word in (("T-1", "first"), ("T-2", "second"), ("T-3", "third")):
                tech = await session(agent, tmp_path, ticket)
                assert await echo(tech, word) == f"{word}\n".encode()
                await tech.end("done")
                end = await log.next_end()
                assert end["sealed"] is True and end["transcript"]
                paths.append(Path(end["transcript"]))
                assert not ended.done(), "the end of a session stopped the service"
                assert agent.sessions == {}
            assert len(set(paths)) == 3
            assert [sealed_ops(p) for p in paths] == [["first"], ["second"], ["third"]]
            tickets = [f["ticket"] for f in log.of("session-start")]
            assert tickets == ["T-1", "T-2", "T-3"]
            ended.cancel()

    run(main())


def test_sessions_at_once_are_served_side_by_side_and_one_ending_leaves_the_others(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with service(tmp_path) as (agent, log):
            techs = [await session(agent, tmp_path, f"T-{i}") for i in range(3)]
            assert len(agent.sessions) == 3
            # All three at once, interleaved on the one agent.
            words = await asyncio.gather(*(echo(t, f"w{i}") for i, t in enumerate(techs)))
            assert words == [b"w0\n", b"w1\n", b"w2\n"]
            await techs[1].end("the middle one is done")
            middle = await log.next_end()
            assert len(agent.sessions) == 2
            assert await echo(techs[0], "again0") == b"again0\n"
            assert await echo(techs[2], "again2") == b"again2\n"
            for tech in (techs[0], techs[2]):
                await tech.end("done")
            ends = [middle, await log.next_end(), await log.next_end()]
            by_ticket = {}
            for start in log.of("session-start"):
                by_ticket[start["ticket"]] = Path(start["transcript"])
            assert {Path(e["transcript"]) for e in ends} == set(by_ticket.values())
            # Each copy holds its own session's operations and no other's.
            assert sealed_ops(by_ticket["T-0"]) == ["w0", "again0"]
            assert sealed_ops(by_ticket["T-1"]) == ["w1"]
            assert sealed_ops(by_ticket["T-2"]) == ["w2", "again2"]

    run(main())


def test_one_session_too_many_is_turned_away_with_why_and_let_in_once_one_ended(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with service(tmp_path, max_sessions=2) as (agent, log):
            first = await session(agent, tmp_path, "T-1")
            second = await session(agent, tmp_path, "T-2")
            code = agent.codes.current.display.reveal()
            with pytest.raises(TransportError) as refused:
                await session(agent, tmp_path, "T-3")
            assert "serves 2 sessions at once, its most; try again later" in refused.value.message
            assert log.of("busy") and log.of("busy")[0]["max_sessions"] == 2
            # Turned away before consent: the code shown was not even tried.
            assert agent.codes.current.display.reveal() == code
            assert agent.codes.current.tries_left == 3
            await first.end("done")
            await log.next_end()
            third = await session(agent, tmp_path, "T-3")
            assert await echo(third, "in") == b"in\n"
            for tech in (second, third):
                await tech.end("done")
                await log.next_end()

    run(main())


def test_stop_ends_every_running_session_sealing_each_copy_and_takes_no_more(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with service(tmp_path) as (agent, log):
            techs = [await session(agent, tmp_path, f"T-{i}") for i in range(2)]
            for i, tech in enumerate(techs):
                await echo(tech, f"before{i}")
            port = agent.address[1]
            await agent.stop("the agent was stopped (SIGTERM)")
            end = await asyncio.wait_for(agent.wait(), TIMEOUT)
            assert end.reason == "the agent was stopped (SIGTERM)"
            ends = log.of("session-end")
            assert len(ends) == 2 and all(e["sealed"] for e in ends)
            assert {e["reason"] for e in ends} == {"the agent was stopped (SIGTERM)"}
            for e in ends:
                assert len(sealed_ops(Path(e["transcript"]))) == 1
            for tech in techs:  # each technician heard the end, and can seal theirs
                await asyncio.wait_for(tech.client.wait_ended(), TIMEOUT)
                assert "stopped" in str(tech.ended)
                await tech.end("the agent went away")
            with pytest.raises(TransportError):
                await connect(
                    "127.0.0.1",
                    port,
                    ConsentAsk(identity(), "T-9", frozenset({Scope.DIAGNOSTICS}), code_of(agent)),
                )

    run(main())


def test_a_session_that_cannot_start_its_copy_leaves_the_service_serving(tmp_path: Path) -> None:
    from toolkit.consent.errors import SessionNotStarted

    async def main() -> None:
        async with service(tmp_path) as (agent, log):
            folder = tmp_path / "service-transcripts"
            folder.write_text("a file where the folder should be")  # no copy can be made
            with pytest.raises(SessionNotStarted):
                await session(agent, tmp_path, "T-1")
            # Said once the technician hung up (or after a grace period), not before.
            await eventually(lambda: bool(log.of("session-not-started")))
            agent.fresh_code("the next technician")  # that code was used by the consent
            folder.unlink()  # the administrator made room: the next session runs
            tech = await session(agent, tmp_path, "T-2")
            assert await echo(tech, "back") == b"back\n"
            await tech.end("done")
            assert (await log.next_end())["sealed"] is True
            assert agent._ended is not None and not agent._ended.done()

    run(main())


def test_a_share_still_ends_with_its_one_session(tmp_path: Path) -> None:
    """Without settings.service nothing changed: the session's end is the agent's."""
    from tests.session_support import open_session, start_agent

    async def main() -> None:
        agent, _, _ = await start_agent(tmp_path)
        try:
            tech = await open_session(agent, tmp_path)
            await tech.end("done")
            end = await asyncio.wait_for(agent.wait(), TIMEOUT)
            assert end.transcript is not None and agent.sessions == {}
        finally:
            await agent.stop("test over")

    run(main())


def test_max_sessions_below_one_is_a_usage_error(tmp_path: Path) -> None:
    customer = Customer()
    with pytest.raises(UsageError, match="at least 1"):
        AgentSettings(
            policy=make_policy(tmp_path),
            approver=customer,
            approve_fix=customer.approve_fix,
            service=True,
            max_sessions=0,
        )


async def eventually_in(agent: Agent, root: Path) -> TechnicianSession:
    """A session, once the agent has seen the stalled connections close (each close is an
    event it handles in turn; until then it may still count them)."""
    for _ in range(50):
        try:
            return await session(agent, root, "T-1")
        except TransportError as exc:
            if "under way" not in exc.message:
                raise
            await asyncio.sleep(0.1)
    raise AssertionError("the stalled consents still hold their places")


class _Stall(asyncssh.SSHClient):
    """A client that starts consent and never answers: it holds a place, proving nothing."""

    def __init__(self, holding: asyncio.Queue[None]) -> None:
        self._holding = holding

    def kbdint_auth_requested(self) -> str:
        return ""

    async def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Any
    ) -> list[str] | None:
        self._holding.put_nowait(None)
        await asyncio.Event().wait()  # never answers
        return None


def test_one_address_cannot_hold_every_place_with_consents_it_never_finishes(
    tmp_path: Path,
) -> None:
    from toolkit.agent.server import CONSENTS_PER_SOURCE

    async def main() -> None:
        async with service(tmp_path, max_sessions=CONSENTS_PER_SOURCE + 2) as (agent, log):
            holding: asyncio.Queue[None] = asyncio.Queue()

            async def stall(source: str) -> Any:
                return await asyncssh.connect(
                    "127.0.0.1", agent.address[1], local_addr=(source, 0), known_hosts=None,
                    username="x", client_factory=lambda: _Stall(holding), client_keys=None,
                    agent_path=None, preferred_auth="keyboard-interactive", config=[],
                    password_auth=False, public_key_auth=False,
                )  # fmt: skip

            stalls = [asyncio.create_task(stall("127.0.0.1")) for _ in range(CONSENTS_PER_SOURCE)]
            for _ in stalls:
                await asyncio.wait_for(holding.get(), TIMEOUT)
            # One more from that address is turned away before any consent...
            with pytest.raises(asyncssh.DisconnectError, match="from your address are under way"):
                await stall("127.0.0.1")
            assert log.of("busy")[0]["consents_per_source"] == CONSENTS_PER_SOURCE
            # ...while another address still gets a place: the bound is per address.
            other = asyncio.create_task(stall("127.0.0.2"))
            await asyncio.wait_for(holding.get(), TIMEOUT)
            # Once the stalled consents are gone, their address gets in again.
            for task in (*stalls, other):
                task.cancel()
            await asyncio.gather(*stalls, other, return_exceptions=True)
            tech = await eventually_in(agent, tmp_path)
            assert await echo(tech, "in") == b"in\n"
            await tech.end("done")

    run(main())
