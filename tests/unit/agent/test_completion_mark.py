"""Tab completion's look-ups are marked as such: a display mark, never a change of policy.

The technician's prompt lists directories to complete a path. Each look-up is
a ``list`` request with ``purpose: "completion"``: the agent decides it as any
``list``, both transcripts record it (with the purpose), and the customer's
screen marks it as completion. Only ``list`` may carry the mark, and only that
one value: anything else is a malformed request, as for any other field.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import open_session, start_agent
from tests.threats.agent_support import assert_sealed, hostile_session, request
from toolkit.agent.operations import COMPLETION
from toolkit.transcript.verify import read_events


def test_completion_look_ups_are_marked_and_recorded_and_refused_as_any_list(
    tmp_path: Path,
) -> None:
    allowed = (tmp_path / "allowed").resolve()

    async def main() -> None:
        agent, screen, _ = await start_agent(tmp_path)
        (allowed / "sub").mkdir()
        (allowed / "secret-dir").mkdir()  # denied by the test policy
        try:
            session = await open_session(agent, tmp_path)
            names = await session.list_names(str(allowed))
            denied = await session.list_names(str(allowed / "secret-dir"))
            path = await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert [n["name"] for n in names] == ["sub"] and denied == []
        marked = [line for line in screen.lines if line.startswith(COMPLETION)]
        assert marked[0] == f"{COMPLETION}list {allowed} (1)", screen.lines
        assert marked[1].startswith(f"{COMPLETION}refused: "), screen.lines
        assert not any(line.startswith("list ") for line in screen.lines), screen.lines
        customer = [f for f in assert_sealed(end) if f.get("op") == "list"]
        technician = [
            e.fields() for e in read_events(path) if e.code == "e" and e.fields().get("op")
        ]
        technician = [f for f in technician if f["op"] == "list"]
        for found in (customer, technician):
            assert [f["purpose"] for f in found] == ["completion", "completion"], found
            assert [f["ok"] for f in found] == [True, False], found

    asyncio.run(asyncio.wait_for(main(), 60))


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        ("list", {"purpose": "display"}),  # an unknown value
        ("list", {"purpose": "Completion"}),
        ("list", {"purpose": 1}),  # wrong types
        ("list", {"purpose": None}),
        ("list", {"purpose": ["completion"]}),
        ("read", {"purpose": "completion"}),  # only list takes it
        ("stat", {"purpose": "completion"}),
    ],
)
def test_a_bad_or_misplaced_purpose_is_a_malformed_request(
    tmp_path: Path, op: str, fields: dict[str, Any]
) -> None:
    allowed = str((tmp_path / "allowed").resolve())

    async def main() -> None:
        async with hostile_session(tmp_path) as hostile:
            hostile.channel.send(request(7, op, path=allowed, **fields))
            answer = await hostile.channel.answer()
            assert answer.id == 7 and answer.error == "malformed", answer.message
            await hostile.channel.still_serves()
            events = assert_sealed(await hostile.end())
        errors = [e for e in events if e["type"] == "protocol_error"]
        assert [e["id"] for e in errors] == [7], events
        assert not any(e.get("op") in ("list", "read", "stat") for e in events), events

    asyncio.run(asyncio.wait_for(main(), 60))
