"""The technician's workflow as a library call: records, ranking, and run_session on loopback.

The UI is a recording fake (as magic-wormhole's machines are tested): each
call the workflow makes lands in ``events``, so a test asserts what a person
would have been asked and told, in order, without a terminal.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.session_support import code_of, identity, start_agent
from toolkit.consent import Scope
from toolkit.consent.errors import WrongCode
from toolkit.errors import ExitCode, PolicyRefused, ToolkitError, UsageError
from toolkit.protocol import STDOUT
from toolkit.secrets import Secret
from toolkit.session.results import (
    COMPLETED,
    ENDED_BY_TECHNICIAN,
    OperationResult,
    SessionResult,
    Status,
    Tally,
    exit_code_of,
    worse,
)
from toolkit.session.technician import TechnicianSession
from toolkit.session.workflow import (
    Line,
    Place,
    SessionRequest,
    consent,
    parse_batch,
    run_batch,
    run_session,
)
from toolkit.tickets.attach import Attached, Synced
from toolkit.transcript.verify import read_events

T = TypeVar("T")


def run(coro: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coro, 60)

    return asyncio.run(bounded())


class Recorder:
    """A SessionUI and CommandsUI that records every call."""

    def __init__(self, codes: Sequence[Secret] = ()) -> None:
        self.events: list[tuple[str, Any]] = []
        self.codes = list(codes)
        self.results: list[OperationResult] = []
        self.output_seen = bytearray()
        self.outcome: SessionResult | None = None

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def ask_code(self, *, again: bool = False) -> Secret:
        self.events.append(("ask_code", again))
        return self.codes.pop(0)

    def ticket_passphrase(self, *, confirm: bool = False) -> str:
        raise AssertionError("the local ticket store needs no passphrase")

    def ticket_note(self, text: str) -> None:
        self.events.append(("ticket_note", text))

    def outbox_tried(self, synced: Sequence[Synced]) -> None:
        self.events.append(("outbox_tried", len(synced)))

    def connecting(self, place: str) -> None:
        self.events.append(("connecting", place))

    def wrong_code(self, message: str) -> None:
        self.events.append(("wrong_code", message))

    def consent_passed(self, host_key: str, granted: Sequence[str]) -> None:
        self.events.append(("consent_passed", tuple(granted)))

    def attached(self, attached: Attached, principal: str) -> None:
        self.events.append(("attached", attached))

    def attach_failed(self, error: ToolkitError) -> None:
        self.events.append(("attach_failed", error))

    def finished(self, result: SessionResult) -> None:
        self.events.append(("finished", result.exit_code))
        self.outcome = result

    def starting(self, line: Line) -> None:
        self.events.append(("starting", line.command.text))

    def asking_customer(self, asking: str) -> None:
        self.events.append(("asking_customer", asking))

    def output(self, stream: int, data: bytes) -> None:
        if stream == STDOUT:
            self.output_seen += data

    def result(self, result: OperationResult, line: Line | None) -> None:
        self.events.append(("result", (result.command, result.status)))
        self.results.append(result)

    def session_lost(self, message: str) -> None:
        self.events.append(("session_lost", message))


# -- records and ranking -------------------------------------------------------------------


def test_a_batch_ranks_refused_over_failed_over_ok_and_the_sessions_end_over_all() -> None:
    ok, failed, refused = ExitCode.OK, ExitCode.FAILED, ExitCode.REFUSED
    assert [exit_code_of(s) for s in Status] == [ok, failed, refused]
    assert worse(ok, failed) is failed and worse(failed, ok) is failed
    assert worse(failed, refused) is refused and worse(refused, failed) is refused
    assert worse(refused, ExitCode.NETWORK) is ExitCode.NETWORK
    assert worse(ExitCode.INTERRUPTED, refused) is ExitCode.INTERRUPTED


def test_a_tally_counts_each_status() -> None:
    tally = Tally()
    for status in ("ok", "ok", "failed", "refused", "refused", "refused"):
        tally.count(OperationResult("x", "run", Status(status)))
    assert (tally.ok, tally.failed, tally.refused) == (2, 1, 3)


def test_an_operation_result_is_frozen_and_its_status_is_a_status() -> None:
    result = OperationResult("run x", "run", "ok")  # type: ignore[arg-type]
    assert result.status is Status.OK
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.stdout = b"changed"  # type: ignore[misc]
    blanked = dataclasses.replace(result, stdout=b"")
    assert blanked.status is Status.OK
    with pytest.raises(ValueError, match="maybe"):
        OperationResult("run x", "run", "maybe")  # type: ignore[arg-type]


def _session_result(exit_code: int, ended: str) -> SessionResult:
    return SessionResult(
        session="s-1",
        ticket="T-1",
        transcript=Path("/tmp/t.cast"),
        verdict=None,
        ended=ended,
        ok=2,
        failed=1,
        refused=0,
        exit_code=exit_code,
    )


def test_the_summary_line_has_exactly_its_documented_keys() -> None:
    assert _session_result(1, COMPLETED).to_json() == {
        "type": "summary",
        "session": "s-1",
        "ticket": "T-1",
        "transcript": "/tmp/t.cast",
        "verdict": None,
        "ended": "completed",
        "ok": 2,
        "failed": 1,
        "refused": 0,
        "exit_code": 1,
    }


@pytest.mark.parametrize(
    ("exit_code", "ended", "recap"),
    [
        (0, COMPLETED, "recap: ok=2 failed=1 refused=0 (exit 0)"),
        (1, COMPLETED, "recap: ok=2 failed=1 refused=0 (exit 1: a command failed)"),
        (3, "the technician ended the session", "(exit 3: a command was refused)"),
        (4, "The connection was lost.\nmore", "(exit 4: The connection was lost)"),
        (3, "ended \x1b[31m", "(exit 3: ended \\x1b[31m)"),
    ],
)
def test_the_recap_says_why_a_batch_did_not_exit_0(exit_code: int, ended: str, recap: str) -> None:
    assert _session_result(exit_code, ended).recap().endswith(recap)


def test_a_batch_is_checked_whole_and_refuses_a_shell() -> None:
    lines = parse_batch("# a comment\n\nrun echo hi\nhelp read\n", "fix.txt")
    assert [(line.number, line.command.text) for line in lines] == [
        (3, "run echo hi"),
        (4, "help read"),
    ]
    with pytest.raises(UsageError, match=r"fix.txt, line 2: `shell` cannot run in a batch"):
        parse_batch("run echo hi\nshell\n", "fix.txt")
    with pytest.raises(UsageError, match=r"stdin, line 1: No help for 'nosuch'"):
        parse_batch("help nosuch\n", "stdin")


# -- consent --------------------------------------------------------------------------------


def _fake_agent(tried: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from toolkit.transport import ssh

    async def fake_agent(host: str, port: int, ask: Any) -> Any:
        tried.append(ask.code.reveal())
        assert len(tried) <= 3, "asked again past the tries a real code has"
        raise WrongCode("The customer's agent did not accept the code.", tries_left=1000)

    monkeypatch.setattr(ssh, "connect", fake_agent)


def test_a_code_is_asked_again_at_most_twice_whatever_the_agent_claims(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The tries left come from the agent, unauthenticated: a fake agent that always says
    # "1000 left" must not win one more guess at the real code from each retype.
    tried: list[str] = []
    _fake_agent(tried, monkeypatch)
    ui = Recorder([Secret(f"41709355{n}") for n in range(5)])
    request = SessionRequest(Place("127.0.0.1", 1), Any, "T-1", frozenset())  # type: ignore[arg-type]
    with pytest.raises(WrongCode):
        run(consent(request, ui))
    assert len(tried) == 3  # the first code and two retypes: as many as a real code allows
    assert [e for e in ui.events if e[0] == "ask_code"] == [
        ("ask_code", False),
        ("ask_code", True),
        ("ask_code", True),
    ]
    assert ui.names().count("wrong_code") == 2
    assert ui.events[1] == ("connecting", "127.0.0.1:1")


def test_a_code_given_up_front_is_never_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []
    _fake_agent(tried, monkeypatch)
    ui = Recorder()
    code = Secret("417093552")
    request = SessionRequest(Place("::1", 7), Any, "T-1", frozenset(), code)  # type: ignore[arg-type]
    with pytest.raises(WrongCode):
        run(consent(request, ui))
    assert tried == ["417093552"]
    assert ui.events == [("connecting", "[::1]:7")]  # no question, no retype


# -- run_session over a real agent on loopback -----------------------------------------------


def _batch(text: str) -> list[Line]:
    return parse_batch(text, "batch")


def test_run_session_from_consent_to_the_attached_transcript(tmp_path: Path) -> None:
    lines = _batch(f"run echo hi\nrun false\nread {tmp_path}/elsewhere\nexit\nrun echo never\n")
    ui = Recorder()

    async def go() -> SessionResult:
        agent, _, _ = await start_agent(tmp_path)
        try:
            request = SessionRequest(
                Place("127.0.0.1", agent.address[1]),
                identity(),
                "T-9",
                frozenset({Scope.DIAGNOSTICS}),
                code_of(agent),
                verdict=True,
            )

            async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
                return await run_batch(session, lines, ui, tally, stream=True)

            return await run_session(request, ui, work, ctrl_c_ends=False)
        finally:
            await agent.stop("test over")

    result = run(go())
    assert (result.ok, result.failed, result.refused) == (1, 1, 1)
    assert result.exit_code == ExitCode.REFUSED and result.ended == ENDED_BY_TECHNICIAN
    assert result.ticket == "T-9" and result.transcript.exists()
    assert result.verdict is not None and result.attach_error is None
    assert result.attached is not None and result.attached.in_local_store
    assert ui.outcome == result
    assert ui.names() == [
        "connecting",
        "consent_passed",
        "starting",
        "result",
        "starting",
        "result",
        "starting",
        "result",
        "starting",  # exit: nothing after it runs
        "attached",
        "finished",
    ]
    assert [r.status for r in ui.results] == [Status.OK, Status.FAILED, Status.REFUSED]
    assert ui.output_seen == b"hi\n" and ui.results[0].stdout == b""  # streamed, then blanked
    operations = [e.fields() for e in read_events(result.transcript) if e.code == "e"]
    assert [f.get("command") for f in operations if f.get("type") == "operation"][:2] == [
        "run echo hi",
        "run false",
    ]


def test_an_error_in_the_work_still_seals_attaches_and_finishes_before_it_is_raised(
    tmp_path: Path,
) -> None:
    ui = Recorder()

    async def go() -> None:
        agent, _, _ = await start_agent(tmp_path)
        try:
            request = SessionRequest(
                Place("127.0.0.1", agent.address[1]),
                identity(),
                "T-3",
                frozenset({Scope.DIAGNOSTICS}),
                code_of(agent),
            )

            async def work(session: TechnicianSession, tally: Tally) -> tuple[ExitCode, str]:
                raise PolicyRefused("the work refused itself")

            await run_session(request, ui, work, ctrl_c_ends=False)
        finally:
            await agent.stop("test over")

    with pytest.raises(PolicyRefused):
        run(go())
    assert ui.names() == ["connecting", "consent_passed", "attached", "finished"]
    assert ui.outcome is not None and ui.outcome.verdict is None  # not asked for
    assert ui.outcome.ended == "the technician's toolkit stopped on an error"
    assert ui.outcome.exit_code == 0 and ui.outcome.attached is not None
    events = [e.fields() for e in read_events(ui.outcome.transcript) if e.code == "e"]
    ends = [f for f in events if f.get("type") == "session_end"]
    assert [f.get("reason") for f in ends] == ["the technician's toolkit stopped on an error"]
