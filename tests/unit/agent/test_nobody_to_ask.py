"""A fix nobody could be asked about is refused as such, never as "the customer declined".

``toolkit share --yes`` with no one at the screen approves what the consent
asked for and nothing more: a fix outside the approved scope is refused. The
technician and both transcripts must say what happened (outside the scope, no
one to ask), not that the customer said no: nobody did.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import open_session, start_agent
from tests.threats.agent_support import assert_sealed
from toolkit.agent.operations import Answer
from toolkit.cli.share import _Approver
from toolkit.consent import Scope
from toolkit.session.commands import parse
from toolkit.transcript.verify import read_events

NOBODY = "no one was at the customer's screen to ask"


def _command(line: str) -> Any:
    command = parse(line)
    assert command is not None
    return command


def test_yes_with_no_one_at_the_screen_records_no_one_to_ask_not_declined(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        agent, screen, _ = await start_agent(tmp_path)
        approver = _Approver(yes=True)  # share --yes, with no live view: nobody is there
        agent.settings.ask_out_of_scope = approver.ask_out_of_scope
        try:
            session = await open_session(agent, tmp_path)
            fix = await session.execute(_command("fix mark"))
            run = await session.execute(_command("run touch x"))
            path = await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        for result in (fix, run):
            assert result.status == "refused", result
            assert "outside the approved scope" in (result.message or "")
            assert NOBODY in (result.message or "") and "declined" not in (result.message or "")
        customer = [f for f in assert_sealed(end) if f.get("op") in ("fix", "run")]
        technician = [
            e.fields() for e in read_events(path) if e.code == "e" and e.fields().get("op")
        ]
        for found in (customer, [f for f in technician if f.get("op") in ("fix", "run")]):
            assert [f["error"] for f in found] == ["refused", "refused"], found
            assert all(NOBODY in f["message"] for f in found), found
            assert not any("declined" in f["message"] for f in found), found
        assert not any("approved" in f for f in customer)
        assert any(NOBODY in line for line in screen.lines)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_customer_who_answers_no_is_still_recorded_as_declining(tmp_path: Path) -> None:
    async def answer_no(question: Any) -> bool:
        return False

    async def main() -> None:
        agent, _, _ = await start_agent(tmp_path)
        agent.settings.ask_out_of_scope = answer_no
        try:
            session = await open_session(agent, tmp_path)
            fix = await session.execute(_command("fix mark"))
            await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert fix.status == "refused" and "declined" in (fix.message or "")
        records = [f for f in assert_sealed(end) if f.get("op") == "fix"]
        assert "declined" in records[0]["message"] and NOBODY not in records[0]["message"]

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (None, NOBODY),  # share without --yes and without a terminal
        (Answer.NOBODY, NOBODY),
        (Answer.NO_ANSWER, "the customer did not answer in time"),  # asked, said nothing
    ],
)
def test_a_fix_in_scope_nobody_answered_is_refused_as_such_not_as_declined(
    tmp_path: Path, answer: Answer | None, said: str
) -> None:
    async def approve(question: Any) -> Answer | None:
        return answer

    async def main() -> None:
        agent, _, _ = await start_agent(tmp_path, offered=(Scope.DIAGNOSTICS, Scope.FIXES))
        agent.settings.approve_fix = approve
        try:
            session = await open_session(agent, tmp_path, scopes=(Scope.DIAGNOSTICS, Scope.FIXES))
            fix = await session.execute(_command("fix mark"))
            await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert fix.status == "refused", fix
        assert "needs the customer's approval" in (fix.message or "")
        assert said in (fix.message or "") and "declined" not in (fix.message or "")
        records = [f for f in assert_sealed(end) if f.get("op") == "fix"]
        assert said in records[0]["message"]

    asyncio.run(asyncio.wait_for(main(), 60))
