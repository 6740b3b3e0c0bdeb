"""What the customer approved, in both transcripts and on the ticket.

Each fix's approval (the answer, who gave it, when, the procedure, its summary
and its exact commands) is an `approval` event of its own in the customer's
copy, when the answer comes, and in the technician's copy, as the agent
reported it with the fix's response. Declined, unanswered and unaskable fixes
are recorded too. The ticket's comment shows each approval in one line.

Through a real agent on loopback (tests/session_support.py) for the customer's
answers, and through real `toolkit share --yes` and `toolkit connect`
processes for --yes and the comment on the local ticket.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.integration.share_process import Person, sharing
from tests.integration.test_share_connect import (  # the fixtures too: one identity
    customer_copy,
    events,
    make_customer,
    technician,  # noqa: F401
    technician_transcript,
)
from tests.session_support import Customer, open_session, start_agent
from toolkit.agent.operations import Answer, Question
from toolkit.cli.share import _Approver
from toolkit.consent import Scope
from toolkit.protocol import commands_sha256
from toolkit.session.commands import parse
from toolkit.session.results import OperationResult
from toolkit.session.technician import TechnicianSession, checked_approval
from toolkit.tickets.package import PLAIN, Package
from toolkit.tickets.summary import comment

FIXES = (Scope.DIAGNOSTICS, Scope.FIXES)
WHEN = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


class Answering(Customer):
    """A customer who gives these answers to the fixes asked, in turn."""

    def __init__(self, answers: Sequence[bool | Answer | None]) -> None:
        super().__init__()
        self.answers = list(answers)

    async def approve_fix(self, question: Question) -> Any:
        self.fixes.append((question.name, [list(c) for c in question.commands]))
        return self.answers.pop(0)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


async def execute(session: TechnicianSession, line: str) -> OperationResult:
    command = parse(line)
    assert command is not None
    return await session.execute(command)


def approvals(path: Path) -> list[dict[str, Any]]:
    return [e for e in events(path) if e["type"] == "approval"]


def comment_of(cast: Path) -> str:
    text, _ = comment(Package(PLAIN, (cast, Path(f"{cast}.sig")), cast, Path(f"{cast}.sig")), None)
    return text


def test_each_answer_is_an_approval_event_in_both_copies_and_a_line_in_the_comment(
    tmp_path: Path,
) -> None:
    home = os.path.normpath(os.environ["HOME"])  # the agent's home: each test has its own
    mark = [["touch", f"{home}/fixed"], ["echo", "done"]]
    customer = Answering([True, False, True, Answer.NO_ANSWER])
    lines = ["fix mark", "fix mark", "run touch x", "fix mark"]

    async def go() -> None:
        agent, _, _ = await start_agent(tmp_path, customer=customer, offered=FIXES)
        try:
            session = await open_session(agent, tmp_path, scopes=FIXES)
            results = [await execute(session, line) for line in lines]
            path = await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert [r.status for r in results] == ["ok", "refused", "ok", "refused"]
        assert "the customer declined the fix mark" in (results[1].message or "")
        assert end.transcript is not None
        check_copies(path, end.transcript, mark)
        check_comment(path, mark)

    run(go())


def check_copies(ours_path: Path, customer: Path, mark: list[list[str]]) -> None:
    theirs, ours = approvals(customer), approvals(ours_path)
    assert [(a["answer"], a["by"]) for a in theirs] == [
        ("approved", "customer"),
        ("declined", "customer"),
        ("approved", "customer"),
        ("no answer", None),
    ]
    assert [a["asked_for"] for a in theirs] == ["fix", "fix", "run", "fix"]
    assert [a["procedure"] for a in theirs] == ["mark", "mark", None, "mark"]
    assert [a["summary"] for a in theirs] == ["Leave a mark", "Leave a mark", None, "Leave a mark"]
    assert [a["commands"] for a in theirs] == [mark, mark, [["touch", "x"]], mark]
    for a in theirs:
        assert a["commands_sha256"] == commands_sha256(a["commands"])
        assert a["out_of_scope"] is False
        assert re.fullmatch(WHEN, a["at"])
    # The technician's copy: the agent's report, marked as such, beside the line typed.
    assert [a["reported_by"] for a in ours] == ["agent"] * 4
    assert [a["command"] for a in ours] == ["fix mark", "fix mark", "run touch x", "fix mark"]
    strip = {"reported_by", "command"}
    assert [{k: v for k, v in a.items() if k not in strip} for a in ours] == theirs
    # Each approval comes before the operation or refusal it decided, in both copies.
    for path in (customer, ours_path):
        kinds = [
            (e["type"], e.get("op") or e.get("asked_for"))
            for e in events(path)
            if e["type"] in ("approval", "operation", "refusal")
            and e.get("op") not in ("hello", "end")
        ]
        assert kinds == [
            ("approval", "fix"),
            ("operation", "fix"),
            ("approval", "fix"),
            ("refusal", "fix"),
            ("approval", "run"),
            ("operation", "run"),
            ("approval", "fix"),
            ("refusal", "fix"),
        ]
    requests = [e["id"] for e in events(customer) if e.get("op") in ("fix", "run")]
    assert [a["request"] for a in theirs] == requests


def check_comment(cast: Path, mark: list[list[str]]) -> None:
    text = comment_of(cast)
    lines = [line for line in text.splitlines() if line.startswith("  approval ")]
    at = [a["at"] for a in approvals(cast)]
    shown = f"touch {mark[0][1]}; echo done"
    assert lines == [
        f"  approval   fix mark (Leave a mark): approved by the customer at the prompt "
        f"at {at[0]}; commands: {shown}",
        f"  approval   fix mark (Leave a mark): declined by the customer at {at[1]}; "
        f"commands: {shown}",
        f"  approval   run: approved by the customer at the prompt at {at[2]}; commands: touch x",
        f"  approval   fix mark (Leave a mark): no answer from the customer in time: refused "
        f"at {at[3]}; commands: {shown}",
    ]
    # Approvals are listed, not counted as operations.
    assert "Operations: 2, refusals: 2" in text


def test_a_fix_nobody_could_be_asked_about_is_recorded_as_nobody_to_ask(tmp_path: Path) -> None:
    async def go() -> None:
        agent, _, _ = await start_agent(tmp_path)
        agent.settings.ask_out_of_scope = _Approver(yes=True).ask_out_of_scope
        try:
            session = await open_session(agent, tmp_path)
            refused = await execute(session, "fix mark")
            path = await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert refused.status == "refused"
        assert end.transcript is not None
        for copy in (approvals(end.transcript), approvals(path)):
            assert [(a["answer"], a["by"], a["out_of_scope"]) for a in copy] == [
                ("nobody to ask", None, True)
            ]
        line = next(x for x in comment_of(path).splitlines() if x.startswith("  approval"))
        assert "fix mark (Leave a mark), outside the approved scope: nobody at the" in line

    run(go())


# -- share --yes and connect, real processes ---------------------------------------------


def test_share_yes_is_recorded_as_approved_by_yes_in_both_copies_and_the_comment(
    tmp_path: Path,
    technician: Person,  # noqa: F811
) -> None:
    customer = make_customer(tmp_path / "customer")
    thumbnails = customer.home / ".cache" / "thumbnails"
    thumbnails.mkdir(parents=True)
    args = ("--policy", customer.root / "policy.toml", "--scope", "diagnostics", "--scope", "fixes")
    with sharing(customer, *args, logs=tmp_path / "logs") as share:
        done = technician.toolkit(
            "connect",
            share.address,
            "--code",
            share.code,
            "--ticket",
            "T-1",
            "--scope",
            "fixes",
            "--batch",
            "-",
            stdin="fix clear-thumbnails\n",
        )
        share.wait(10)
    assert done.returncode == 0, done.stderr
    assert not thumbnails.exists()
    rm = [["rm", "-rf", "--", str(thumbnails)]]
    ours = approvals(technician_transcript(technician))
    theirs = approvals(customer_copy(share.stderr()))
    for copy in (ours, theirs):
        assert [(a["answer"], a["by"], a["procedure"], a["commands"]) for a in copy] == [
            ("approved", "--yes", "clear-thumbnails", rm)
        ]
        assert copy[0]["summary"].startswith("Delete the desktop's thumbnail cache")
    assert ours[0]["reported_by"] == "agent" and ours[0]["at"] == theirs[0]["at"]
    shown = technician.toolkit("tickets", "show", "T-1", "--json")
    notes = {a["comment"] for a in json.loads(shown.stdout)["attachments"]}
    assert len(notes) == 1
    line = next(x for x in notes.pop().splitlines() if x.startswith("  approval"))
    assert line == (
        "  approval   fix clear-thumbnails (Delete the desktop's thumbnail cache (it is rebuilt "
        "on demand)): approved in advance by share --yes (nobody was asked) at "
        f"{theirs[0]['at']}; commands: rm -rf -- {thumbnails}"
    )


# -- the technician checks what the agent reports ------------------------------------------


def good() -> dict[str, Any]:
    commands = [["touch", "/home/c/fixed"]]
    return {
        "answer": "approved",
        "by": "customer",
        "at": "2026-12-03T13:40:12Z",
        "request": 7,
        "asked_for": "fix",
        "procedure": "mark",
        "summary": "Leave a mark",
        "commands": commands,
        "commands_sha256": commands_sha256(commands),
        "out_of_scope": False,
    }


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"answer": "yes"}, "answer"),
        ({"by": "--yes", "answer": "declined"}, "cannot come from"),
        ({"by": None}, "cannot come from"),
        ({"by": ["customer"]}, "cannot come from"),
        ({"at": "yesterday"}, "UTC time"),
        ({"request": 8}, "another request"),
        ({"request": True}, "another request"),
        ({"asked_for": "read"}, "another operation"),
        ({"procedure": "x" * 65}, "short string"),
        ({"procedure": None}, "names its procedure"),
        ({"commands": [["touch", "/etc/passwd"]]}, "do not match"),
        ({"commands": [[]]}, "lists of strings"),
        ({"commands": [["touch", 1]]}, "lists of strings"),
        ({"commands_sha256": "0" * 63}, "SHA-256"),
        ({"out_of_scope": "no"}, "true or false"),
        ({"extra": 1}, "fields"),
    ],
)
def test_a_malformed_approval_report_is_refused(change: dict[str, Any], why: str) -> None:
    raw = {**good(), **change}
    with pytest.raises(ValueError, match=why):
        checked_approval(raw, 7, "fix")


def test_a_well_formed_report_is_kept_and_long_commands_may_travel_as_their_digest() -> None:
    assert checked_approval(good(), 7, "fix") == good()
    assert checked_approval({**good(), "commands": None}, 7, "fix")["commands"] is None
    with pytest.raises(ValueError, match="fields"):
        checked_approval("approved", 7, "fix")


def test_a_fix_the_customer_declines_at_the_terminal_is_recorded_and_on_the_ticket(
    tmp_path: Path,
    technician: Person,  # noqa: F811
) -> None:
    customer = make_customer(tmp_path / "customer")
    args = ("--policy", customer.root / "policy.toml", "--scope", "diagnostics", "--scope", "fixes")
    batch = technician.root / "batch"
    batch.write_text("fix clear-thumbnails\nrun true\n")
    with sharing(customer, *args, logs=tmp_path / "logs", terminal=True) as share:
        connect = technician.popen(
            "connect", share.address, "--code", share.code, "--ticket", "T-1",
            "--scope", "diagnostics", "--scope", "fixes", "--batch", batch,
        )  # fmt: skip
        try:
            share.wait_for_stderr("Allow this technician in? [y/n] (n): ")
            share.type("y\n")
            share.wait_for_stderr("Allow? [y/N]")  # in the live view: one key
            share.type("n")
            _, stderr = connect.communicate(timeout=30)
        finally:
            if connect.poll() is None:
                connect.kill()
        share.wait(10)
    assert connect.returncode == 3, stderr  # something was refused
    assert "the customer declined the fix clear-thumbnails" in stderr
    ours = approvals(technician_transcript(technician))
    theirs = approvals(customer_copy(share.stderr()))
    for copy in (ours, theirs):
        assert [(a["answer"], a["by"], a["procedure"]) for a in copy] == [
            ("declined", "customer", "clear-thumbnails")
        ]
    assert ours[0]["commands_sha256"] == theirs[0]["commands_sha256"]
    shown = technician.toolkit("tickets", "show", "T-1", "--json")
    note = json.loads(shown.stdout)["attachments"][0]["comment"]
    line = next(x for x in note.splitlines() if x.startswith("  approval"))
    assert line.startswith("  approval   fix clear-thumbnails (Delete the desktop's thumbnail")
    assert f": declined by the customer at {theirs[0]['at']}; commands: rm -rf -- " in line
    assert "  refused    fix clear-thumbnails" in note and "  ok         run true" in note
