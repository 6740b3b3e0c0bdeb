"""The agent's operations without SSH: scopes, approvals, processes, files, refusals."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Customer, connect_to, make_catalogue, make_policy, start_agent
from toolkit.agent.operations import PIPE_CHUNK, Operations, Outcome
from toolkit.plugins import Diagnostic, Fix
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import UNAVAILABLE, Policy
from toolkit.protocol import (
    CONTENT,
    STDERR,
    STDOUT,
    FrameDecoder,
    Request,
    parse_data,
)
from toolkit.session.client import SessionClient, SessionEnded

# Prints its own pid and its background child's, then waits for the child.
TREE = ["sh", "-c", "sleep 30 & echo $$ $!; wait"]


@dataclass
class Wire:
    """Collects the data frames an operation sends; can hold them back."""

    frames: list[bytes] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, frame: bytes) -> None:
        self.frames.append(frame)
        self.arrived.set()

    def data(self) -> dict[int, bytes]:
        out: dict[int, bytearray] = {}
        for kind, body in FrameDecoder().feed(b"".join(self.frames)):
            assert kind == 2, "operations send data frames only"
            data = parse_data(body)
            out.setdefault(data.stream, bytearray()).extend(data.data)
        return {stream: bytes(data) for stream, data in out.items()}

    def chunks(self) -> list[bytes]:
        return [parse_data(body).data for _, body in FrameDecoder().feed(b"".join(self.frames))]


@dataclass
class Setup:
    ops: Operations
    wire: Wire
    customer: Customer
    allowed: Path
    home: Path


def setup(
    tmp_path: Path,
    scopes: Sequence[str] = ("diagnostics",),
    *,
    approve: bool = True,
    catalogue: Catalogue | None = None,
    policy: Policy | None = None,
) -> Setup:
    wire = Wire()
    customer = Customer(approve_fixes=approve)
    ops = Operations(
        policy=policy or make_policy(tmp_path),
        scopes=frozenset(scopes),
        catalogue=catalogue or make_catalogue(),
        approve_fix=customer.approve_fix,
        send=wire.send,
        info={"agent": "test"},
    )
    return Setup(ops, wire, customer, tmp_path.resolve() / "allowed", Path.home())


def perform(s: Setup, op: str, **args: Any) -> Outcome:
    return asyncio.run(s.ops.perform(Request(7, op, args)))


def policy_with(tmp_path: Path, *templates: list[str]) -> Policy:
    allowed = tmp_path.resolve() / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    return Policy.from_toml(
        f"[files]\nallow = [{json.dumps(str(allowed) + '/**')}]\n"
        f"[commands]\ndiagnostics = {json.dumps([list(t) for t in templates])}\n",
        source="test policy",
    )


def alive(pid: int) -> bool:
    """Running, not just a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def assert_gone(*pids: int) -> None:
    deadline = time.monotonic() + 5
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        time.sleep(0.02)


def refused(outcome: Outcome) -> str:
    response = outcome.response
    assert not response.ok and response.error == "refused", response
    assert response.result == {}
    assert outcome.record["ok"] is False and outcome.record["error"] == "refused"
    assert response.message is not None and response.message.startswith("refused:")
    return response.message


# -- scopes ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("read", {"path": "/etc/os-release"}),
        ("list", {"path": "/etc"}),
        ("stat", {"path": "/etc/os-release"}),
        ("run", {"argv": ["uptime"]}),
        ("diag", {"name": "hello"}),
    ],
)
def test_everything_but_fixes_needs_the_diagnostics_scope(
    tmp_path: Path, op: str, args: dict[str, Any]
) -> None:
    s = setup(tmp_path, scopes=("fixes",))
    message = refused(perform(s, op, **args))
    assert "diagnostics scope" in message
    assert s.wire.frames == []


def test_fix_needs_the_fixes_scope_and_the_customer_is_not_even_asked(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("diagnostics",))
    assert "fixes scope" in refused(perform(s, "fix", name="mark"))
    assert s.customer.fixes == [] and not (s.home / "fixed").exists()


def test_hello_and_end_need_no_scope(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=())
    assert perform(s, "hello", session="x").response.result == {"agent": "test"}
    assert perform(s, "end", reason="done").response.ok


def test_run_of_a_fixes_template_asks_the_customer_and_a_no_refuses(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("diagnostics", "fixes"), approve=False)
    message = refused(perform(s, "run", argv=["touch", "made"]))
    assert "declined" in message
    assert s.customer.fixes == [("touch made", [["touch", "made"]])]
    assert not (s.home / "made").exists()


def test_run_of_a_fixes_template_runs_after_a_yes(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("diagnostics", "fixes"))
    outcome = perform(s, "run", argv=["touch", "made"])
    assert outcome.response.ok and outcome.response.result["exit_status"] == 0
    assert outcome.record["approved"] is True
    assert (s.home / "made").exists()  # the working directory is the agent user's home


def test_run_of_a_fixes_template_without_the_fixes_scope_is_refused_unasked(
    tmp_path: Path,
) -> None:
    s = setup(tmp_path, scopes=("diagnostics",))
    refused(perform(s, "run", argv=["touch", "made"]))
    assert s.customer.fixes == [] and not (s.home / "made").exists()


def test_run_outside_every_template_is_refused_unasked(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("diagnostics", "fixes"))
    for argv in (["rm", "-rf", "/"], ["echo", "a;b"], ["echo", "x", "y"], ["sh", "-c", "id"]):
        refused(perform(s, "run", argv=argv))
    assert s.customer.fixes == [] and s.wire.frames == []


# -- processes ------------------------------------------------------------------------------


def test_run_streams_stdout_and_stderr_with_sizes_and_hashes(tmp_path: Path) -> None:
    s = setup(tmp_path, policy=policy_with(tmp_path, ["sh", "-c", "echo out; echo err >&2"]))
    outcome = perform(s, "run", argv=["sh", "-c", "echo out; echo err >&2"])
    result = outcome.response.result
    assert s.wire.data() == {STDOUT: b"out\n", STDERR: b"err\n"}
    assert (result["stdout_bytes"], result["stderr_bytes"]) == (4, 4)
    assert result["stdout_sha256"] == hashlib.sha256(b"out\n").hexdigest()
    assert result["stderr_sha256"] == hashlib.sha256(b"err\n").hexdigest()
    assert outcome.record["stdout_sha256"] == result["stdout_sha256"]


def test_run_passes_no_environment_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLKIT_SECRET_VAR", "leaked")
    s = setup(tmp_path, policy=policy_with(tmp_path, ["env"]))
    assert perform(s, "run", argv=["env"]).response.ok
    names = {line.split(b"=")[0] for line in s.wire.data()[STDOUT].splitlines()}
    assert b"TOOLKIT_SECRET_VAR" not in names and names <= {b"PATH", b"LANG", b"PWD"}


def test_diag_gathers_every_step_and_stdout_splits_by_stdout_bytes(tmp_path: Path) -> None:
    steps = (("echo", "one"), ("false",), ("echo", "three"))
    catalogue = Catalogue([Diagnostic("multi", "Three steps", run=steps)])
    s = setup(tmp_path, catalogue=catalogue)
    result = perform(s, "diag", name="multi").response.result
    assert [step["argv"] for step in result["steps"]] == [list(a) for a in steps]
    assert [step["exit_status"] for step in result["steps"]] == [0, 1, 0]
    assert result["exit_status"] == 1  # the first that failed
    stdout, pieces = s.wire.data()[STDOUT], []
    for step in result["steps"]:
        pieces.append(stdout[: step["stdout_bytes"]])
        stdout = stdout[step["stdout_bytes"] :]
    assert pieces == [b"one\n", b"", b"three\n"] and stdout == b""


def test_fix_shows_its_resolved_commands_and_stops_at_the_first_failing_step(
    tmp_path: Path,
) -> None:
    steps = (("touch", "{home}/before"), ("false",), ("touch", "{home}/after"))
    catalogue = Catalogue([Fix("stops", "Stops halfway", apply=steps)])
    s = setup(tmp_path, scopes=("fixes",), catalogue=catalogue)
    result = perform(s, "fix", name="stops").response.result
    home = str(s.home)
    assert s.customer.fixes == [
        ("stops", [["touch", f"{home}/before"], ["false"], ["touch", f"{home}/after"]])
    ]
    assert [step["exit_status"] for step in result["steps"]] == [0, 1]
    assert result["exit_status"] == 1
    assert (s.home / "before").exists() and not (s.home / "after").exists()


def test_a_declined_fix_runs_nothing(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("fixes",), approve=False)
    assert "declined" in refused(perform(s, "fix", name="mark"))
    assert len(s.customer.fixes) == 1 and not (s.home / "fixed").exists()


def test_a_missing_command_exits_127_with_a_message_on_stderr(tmp_path: Path) -> None:
    s = setup(tmp_path)
    outcome = perform(s, "diag", name="broken")
    [step] = outcome.response.result["steps"]
    assert step["exit_status"] == outcome.response.result["exit_status"] == 127
    assert "no-such-command-xyz" in step["error"]
    assert b"no-such-command-xyz" in s.wire.data()[STDERR]


def test_a_killed_process_reports_its_signal(tmp_path: Path) -> None:
    s = setup(tmp_path, policy=policy_with(tmp_path, ["sh", "-c", "kill -9 $$"]))
    result = perform(s, "run", argv=["sh", "-c", "kill -9 $$"]).response.result
    assert result["exit_status"] == 128 + 9 and result["signal"] == "SIGKILL"


def test_cancelling_the_task_kills_the_whole_process_group(tmp_path: Path) -> None:
    s = setup(tmp_path, policy=policy_with(tmp_path, TREE))

    async def main() -> list[int]:
        task = asyncio.create_task(s.ops.perform(Request(7, "run", {"argv": TREE})))
        await asyncio.wait_for(s.wire.arrived.wait(), 10)
        pids = [int(p) for p in s.wire.data()[STDOUT].split()]
        assert all(alive(p) for p in pids)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return pids

    pids = asyncio.run(main())
    assert len(pids) == 2
    assert_gone(*pids)  # the shell and the child it left in the background


def test_nothing_is_left_running_in_the_group_when_the_command_exits(tmp_path: Path) -> None:
    # The child has its output elsewhere, so the command's pipes close while it runs on.
    stray = ["sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!"]
    s = setup(tmp_path, policy=policy_with(tmp_path, stray))
    assert perform(s, "run", argv=stray).response.result["exit_status"] == 0
    assert_gone(int(s.wire.data()[STDOUT]))


def test_ending_the_session_kills_running_processes(tmp_path: Path) -> None:
    async def main() -> tuple[list[int], object]:
        agent, _, _ = await start_agent(tmp_path, policy=policy_with(tmp_path, TREE))
        conn, _ = await connect_to(agent)
        try:
            client = await SessionClient.open(conn)
            printed = asyncio.Event()
            out = bytearray()

            def on_data(stream: int, data: bytes) -> None:
                out.extend(data)
                printed.set()

            task = asyncio.create_task(client.request("run", argv=TREE, on_data=on_data))
            await asyncio.wait_for(printed.wait(), 10)
            await agent.stop("the customer pressed Ctrl-C")  # ends it for both sides
            done = await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 10)
            await client.close()
        finally:
            conn.close()
        return [int(p) for p in out.split()], done[0]

    pids, outcome = asyncio.run(main())
    assert isinstance(outcome, SessionEnded)
    assert_gone(*pids)


# -- files ----------------------------------------------------------------------------------


def test_read_streams_the_content_with_its_size_and_sha256(tmp_path: Path) -> None:
    s = setup(tmp_path)
    content = os.urandom(2 * PIPE_CHUNK + 12345)
    (s.allowed / "log.bin").write_bytes(content)
    outcome = perform(s, "read", path=str(s.allowed / "log.bin"))
    assert outcome.response.result == {
        "path": str(s.allowed / "log.bin"),
        "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    assert s.wire.data() == {CONTENT: content}
    assert all(len(c) <= PIPE_CHUNK for c in s.wire.chunks())  # streamed, not buffered
    assert outcome.record["sha256"] == outcome.response.result["sha256"]


def test_read_of_an_empty_file_sends_no_data(tmp_path: Path) -> None:
    s = setup(tmp_path)
    (s.allowed / "empty").write_bytes(b"")
    result = perform(s, "read", path=str(s.allowed / "empty")).response.result
    assert result["size"] == 0 and result["sha256"] == hashlib.sha256(b"").hexdigest()
    assert s.wire.frames == []


def test_list_returns_json_lines_of_what_may_be_seen(tmp_path: Path) -> None:
    s = setup(tmp_path)
    (s.allowed / "a.log").write_text("hello")
    (s.allowed / "sub").mkdir()
    (s.allowed / "secret.txt").write_text("no")
    outcome = perform(s, "list", path=str(s.allowed))
    lines = [json.loads(line) for line in s.wire.data()[CONTENT].splitlines()]
    assert [entry["name"] for entry in lines] == ["a.log", "sub"]
    assert outcome.response.result == {"path": str(s.allowed), "entries": 2}
    a_log = lines[0]
    assert set(a_log) == {"name", "kind", "size", "mtime", "mode"}
    assert (a_log["kind"], a_log["size"]) == ("file", 5)
    assert lines[1]["kind"] == "directory"


def test_stat_reports_the_real_path(tmp_path: Path) -> None:
    s = setup(tmp_path)
    (s.allowed / "a.log").write_text("hello")
    (s.allowed / "link").symlink_to("a.log")
    result = perform(s, "stat", path=str(s.allowed / "link")).response.result
    assert (result["name"], result["path"], result["size"]) == (
        "link",
        str(s.allowed / "a.log"),
        5,
    )


def test_a_refusal_says_refused_and_nothing_about_the_denied_path(tmp_path: Path) -> None:
    s = setup(tmp_path)
    secret = s.allowed / "secret.txt"
    secret.write_text("the secret, 27 bytes long\n")
    (s.allowed / "secret-dir").mkdir()
    (s.allowed / "innocent").symlink_to(secret)
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    asked = {
        "denied file": str(secret),
        "denied directory": str(s.allowed / "secret-dir"),
        "missing": str(s.allowed / "secret-missing"),
        "symlink to a denied file": str(s.allowed / "innocent"),
        "outside the allowlist": str(outside),
        "traversal": f"{s.allowed}/../outside.txt",
    }
    for op in ("read", "stat", "list"):
        said = set()
        for path in asked.values():
            outcome = perform(s, op, path=path)
            message = refused(outcome)
            assert message == f"refused: {path!r}: {UNAVAILABLE}"
            said.add(message.replace(repr(path), "PATH"))
            assert set(outcome.record) == {"id", "op", "path", "ok", "error", "message"}
            assert str(secret) not in outcome.summary or path == str(secret)
        assert len(said) == 1, said  # the same words whatever is behind the path
    assert s.wire.frames == []


def test_an_unknown_procedure_is_refused(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("diagnostics", "fixes"))
    assert "no diagnostic named mark" in refused(perform(s, "diag", name="mark"))
    assert "no fix named hello" in refused(perform(s, "fix", name="hello"))
    assert s.customer.fixes == []


def test_the_customer_sees_one_line_per_outcome(tmp_path: Path) -> None:
    s = setup(tmp_path)
    ok = perform(s, "run", argv=["echo", "hi"])
    no = perform(s, "read", path="/etc/shadow")
    assert ok.summary == "run echo hi -> exit 0"
    assert no.summary.startswith("refused: ") and not no.summary.startswith("refused: refused")
