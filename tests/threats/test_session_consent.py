"""Threat: getting past consent over real SSH on loopback.

Wrong codes burn the code after three tries, an expired or used code is
refused and stays so until the customer asks for a new one (an old code typed
after that is told it is old, at no cost to the new one), a declined request
starts nothing, and a man-in-the-middle that terminates SSH with its own host
key fails even though it relays every keyboard-interactive round faithfully;
both people are then told that someone may be in the middle. The code never crosses the wire and is
never written to a transcript or to the customer's screen.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.session_support import (
    Customer,
    code_of,
    connect_to,
    open_session,
    start_agent,
)
from tests.threats.agent_support import assert_never_written, assert_sealed, running_agent
from toolkit.agent.server import Agent, CodeNotice, HostKey
from toolkit.consent import (
    CodeBurned,
    CodeExpired,
    CodeState,
    CodeUsed,
    ConfirmationFailed,
    ConsentError,
    Declined,
    KeyMismatch,
    Scope,
    SessionNotStarted,
    WrongCode,
    parse_code,
)
from toolkit.consent._messages import Confirm
from toolkit.consent._sources import Sources
from toolkit.secrets import Secret
from toolkit.transport import ssh as transport


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def wrong_code(agent: Agent) -> Secret:
    digits = agent.codes.current.display.reveal().replace("-", "")
    return parse_code(f"{(int(digits) + 1) % 10**9:09d}")


async def eventually(condition: Any, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the condition never held")


def assert_no_session(agent: Agent, root: Path) -> None:
    assert agent.session is None
    assert not (root / "customer-transcripts").exists()


class PausedClient(transport._ConsentClient):
    """The real technician client, holding its first answer until released."""

    challenged: asyncio.Event
    release: asyncio.Event

    async def kbdint_challenge_received(  # type: ignore[override]
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        if self._handshake is None:
            self.challenged.set()
            await self.release.wait()
        return super().kbdint_challenge_received(name, instructions, lang, prompts)


async def paused_connect(agent: Agent) -> tuple[asyncio.Task[Any], asyncio.Event]:
    """A technician with the right code whose handshake has begun but not answered."""
    challenged, release = asyncio.Event(), asyncio.Event()

    def factory(ask: transport.ConsentAsk) -> PausedClient:
        client = PausedClient(ask)
        client.challenged, client.release = challenged, release
        return client

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transport, "_ConsentClient", factory)
        task = asyncio.create_task(connect_to(agent))
        await asyncio.wait_for(challenged.wait(), 10)
    return task, release


# -- wrong, burned, expired, used, declined ---------------------------------------------------


def quick(agent: Agent) -> list[CodeNotice]:
    """Short per-source delays (the delays have tests of their own); the notices the
    customer's screen gets when a code cannot be used any more."""
    agent.sources = Sources(first=0.01, cap=0.05)
    notices: list[CodeNotice] = []
    agent.settings.code_unusable = notices.append
    return notices


def test_three_wrong_codes_burn_it_and_no_new_code_comes_until_the_customer_asks(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, customer):
            notices = quick(agent)
            first, right = agent.codes.current, code_of(agent)
            for left in (2, 1, 0):
                with pytest.raises(WrongCode) as caught:
                    await connect_to(agent, code=wrong_code(agent))
                assert caught.value.tries_left == left
            assert first.state is CodeState.BURNED
            # No new code on its own: a guesser cannot make the agent hand out codes.
            assert screen.codes == [first] and agent.codes.current is first
            assert notices == [CodeNotice("burned", {"127.0.0.1": 3})]
            assert "the code is burned after 3 failed tries (3 from 127.0.0.1)" in screen.lines
            # The right code is burned too: the technician hears it, nothing is counted.
            with pytest.raises(CodeBurned):
                await connect_to(agent, code=right)
            assert_no_session(agent, tmp_path)
            assert customer.asked == []
            # The customer asks for a new code. The burned one is now an old code: it is
            # told so, and the new code loses no try.
            agent.fresh_code("you asked for a new code")
            assert screen.codes == [first, agent.codes.current]
            with pytest.raises(CodeExpired):
                await connect_to(agent, code=right)
            assert agent.codes.current.tries_left == 3
            conn, consent = await connect_to(agent)
            conn.close()
            assert consent.granted == {Scope.DIAGNOSTICS}

    run(main())


def test_a_handshake_begun_before_the_burn_gets_code_burned(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, _):
            quick(agent)
            waiting, release = await paused_connect(agent)
            for _ in range(3):
                with pytest.raises(WrongCode):
                    await connect_to(agent, code=wrong_code(agent))
            release.set()
            with pytest.raises(CodeBurned):
                await waiting
            assert_no_session(agent, tmp_path)
            assert len(screen.codes) == 1  # and no new code came of it

    run(main())


def test_a_used_code_is_refused_while_its_session_runs(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, customer):
            code = code_of(agent)
            waiting, release = await paused_connect(agent)
            session = await open_session(agent, tmp_path)
            # Reused from the start...
            with pytest.raises(CodeUsed):
                await connect_to(agent, code=code)
            # ... or by a handshake that had begun before the code was used.
            release.set()
            with pytest.raises(CodeUsed):
                await waiting
            assert len(customer.asked) == 1  # the customer was asked once, for the first
            assert screen.codes == [agent.codes.current]  # no new code while a session runs
            agent.fresh_code("you asked for a new code")  # not even when asked
            assert screen.codes == [agent.codes.current]
            await session.end("test done")
            end = await asyncio.wait_for(agent.wait(), 10)
        events = assert_sealed(end)
        assert [e["type"] for e in events].count("consent") == 1

    run(main())


def test_an_expired_code_stays_expired_until_the_customer_asks(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_agent(tmp_path, ttl=0.001) as (agent, screen, customer):
            notices = quick(agent)
            expired = code_of(agent)
            await asyncio.sleep(0.01)
            with pytest.raises(CodeExpired) as caught:
                await connect_to(agent)
            assert "ask" in caught.value.diagnostics().lower()
            assert customer.asked == [] and agent.codes.current.tries_left == 3
            await eventually(lambda: notices == [CodeNotice("expired", {})])
            assert "the code expired" in screen.lines
            assert len(screen.codes) == 1  # told once, and no new code on its own
            assert_no_session(agent, tmp_path)
            # Asked for, the new code works; the expired one is told it is old.
            agent.codes._ttl = 600.0
            agent.fresh_code("you asked for a new code")
            with pytest.raises(CodeExpired):
                await connect_to(agent, code=expired)
            assert agent.codes.current.tries_left == 3
            conn, _ = await connect_to(agent)
            conn.close()

    run(main())


def test_declined_gives_declined_and_a_new_code_only_when_asked(tmp_path: Path) -> None:
    async def main() -> None:
        customer = Customer(approve=False)
        async with running_agent(tmp_path, customer=customer) as (agent, screen, _):
            notices = quick(agent)
            first = agent.codes.current
            with pytest.raises(Declined):
                await connect_to(agent)
            assert len(customer.asked) == 1
            assert first.state is not CodeState.ACTIVE
            assert screen.codes == [first] and notices == [CodeNotice("declined", {})]
            assert_no_session(agent, tmp_path)
            # The declined code stays dead; a new one, asked for, works once the customer
            # agrees, and the old one typed again costs it nothing.
            agent.fresh_code("you asked for a new code")
            customer.approve = True
            with pytest.raises(CodeExpired):
                await connect_to(agent, code=parse_code(first.display.reveal()))
            assert agent.codes.current.tries_left == 3
            conn, _ = await connect_to(agent)
            conn.close()

    run(main())


def test_concurrent_wrong_guesses_each_cost_a_try(tmp_path: Path) -> None:
    # No lock on the code (docs/consent.md): parallel guesses are each checked and counted.
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, _):
            quick(agent)
            first = agent.codes.current
            guesses = [connect_to(agent, code=wrong_code(agent)) for _ in range(3)]
            results = await asyncio.gather(*guesses, return_exceptions=True)
            assert all(isinstance(r, WrongCode) for r in results), results
            assert first.state is CodeState.BURNED and len(screen.codes) == 1

    run(main())


def test_a_customer_side_that_cannot_start_the_session_says_so_to_the_technician(
    tmp_path: Path,
) -> None:
    """The customer's copy cannot be created (a full disk, a file in the way): the
    technician hears that the agent could not start the session, not a network error."""

    async def main() -> None:
        (tmp_path / "customer-transcripts").write_text("in the way\n")
        agent, _, customer = await start_agent(tmp_path)
        try:
            with pytest.raises(SessionNotStarted) as caught:
                await connect_to(agent)
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        told = caught.value.diagnostics()
        assert "could not start the session" in told and "transcript" in told
        assert caught.value.exit_code == 1
        assert len(customer.asked) == 1 and agent.session is None
        assert end.failure is not None and "Cannot create the transcript" in end.failure.message

    run(main())


# -- a man in the middle ----------------------------------------------------------------------


class _Upstream(asyncssh.SSHClient):
    """The MITM's client leg to the real agent: hands each challenge down, waits for answers."""

    def __init__(self, mitm: _MitmConnection) -> None:
        self._mitm = mitm

    def kbdint_auth_requested(self) -> str:
        return ""

    async def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Sequence[tuple[str, bool]]
    ) -> list[str] | None:
        self._mitm.seen.append(instructions)
        self._mitm.challenges.put_nowait((name, instructions, lang, prompts))
        answer: list[str] | None = await self._mitm.answers.get()
        return answer


class _MitmConnection(asyncssh.SSHServer):
    """Terminates the technician's SSH with its own host key; relays consent to the agent."""

    def __init__(self, agent_port: int, seen: list[str], forge: bool) -> None:
        self._agent_port = agent_port
        self._forge = forge
        self.seen = seen
        self.challenges: asyncio.Queue[Any] = asyncio.Queue()
        self.answers: asyncio.Queue[list[str] | None] = asyncio.Queue()
        self._upstream: asyncio.Task[asyncssh.SSHClientConnection] | None = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._upstream is not None:
            self._upstream.cancel()
        self.answers.put_nowait(None)

    def begin_auth(self, username: str) -> bool:
        return True

    def kbdint_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return False

    async def _next(self) -> Any:
        """The agent's next challenge, relayed (or forged) for the technician."""
        assert self._upstream is not None
        get = asyncio.ensure_future(self.challenges.get())
        await asyncio.wait({get, self._upstream}, return_when=asyncio.FIRST_COMPLETED)
        if not get.done():
            get.cancel()
            return False  # the agent ended authentication (it never lets a MITM in)
        name, instructions, lang, prompts = get.result()
        if self._forge and json.loads(instructions).get("type") == "refused":
            # Hide the refusal; hand the technician a confirmation made up on the spot.
            instructions = Confirm(frozenset({Scope.DIAGNOSTICS}), bytes(32)).encode()
        return name, instructions, lang, prompts

    async def get_kbdint_challenge(self, username: str, lang: str, submethods: str) -> Any:
        if self._upstream is not None:
            return False
        self._upstream = asyncio.ensure_future(
            asyncssh.connect(
                "127.0.0.1",
                self._agent_port,
                client_factory=lambda: _Upstream(self),
                config=[],
                known_hosts=None,
                client_keys=None,
                agent_path=None,
                password_auth=False,
                username=username,
            )
        )
        return await self._next()

    async def validate_kbdint_response(self, username: str, responses: Sequence[str]) -> Any:
        self.seen += responses
        self.answers.put_nowait(list(responses))
        return await self._next()


@pytest.mark.parametrize("forge", [False, True], ids=["relays-everything", "forges-confirm"])
def test_mitm_with_its_own_host_key_fails_and_costs_a_try(tmp_path: Path, forge: bool) -> None:
    seen: list[str] = []  # every consent message that passed through the MITM

    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, customer):
            mitm = await asyncssh.create_server(
                lambda: _MitmConnection(agent.address[1], seen, forge),
                "127.0.0.1",
                0,
                server_host_keys=[HostKey().ssh_key],
                kbdint_auth=True,
                password_auth=False,
                public_key_auth=False,
            )
            try:
                with pytest.raises(ConsentError) as caught:  # the right code, through the MITM
                    await connect_to(agent, port=mitm.sockets[0].getsockname()[1])
            finally:
                mitm.close()
            # Relayed faithfully, the agent finds the right code with the wrong host key:
            # both people hear that someone may be in the middle, each with a key to compare.
            assert type(caught.value) is (ConfirmationFailed if forge else KeyMismatch)
            assert "middle" in caught.value.diagnostics()
            await eventually(lambda: any("refused" in line for line in screen.lines))
            refused = next(line for line in screen.lines if "refused" in line)
            assert "right code" in refused and "middle" in refused
            assert agent.host_key.fingerprint in refused
            assert agent.codes.current.tries_left == 2
            assert customer.asked == []
            assert_no_session(agent, tmp_path)
            types = [json.loads(s)["type"] for s in seen if s.startswith("{")]
            assert types[:3] == ["pake", "response", "refused"]  # it relayed both ways
            assert_never_written(screen.codes, seen)  # and nothing it saw holds the code

    run(main())


@pytest.mark.parametrize("ticket", ["../../etc/T-1", "T/1", "..", "tick et"])
def test_a_ticket_never_becomes_a_path_on_the_customers_machine(
    tmp_path: Path, ticket: str
) -> None:
    # The agent names the customer's copy after the ticket the technician gave.
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, _):
            conn, consent = await connect_to(agent, ticket=ticket)
            assert consent.ticket == ticket
            session = agent.session
            assert session is not None
            assert session.path.parent == agent.transcripts  # the session started, in there
            conn.close()
            end = await asyncio.wait_for(agent.wait(), 10)
        assert_sealed(end)

    run(main())
