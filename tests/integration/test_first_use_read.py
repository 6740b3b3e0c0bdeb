"""`read PATH --head N / --tail N` through a real session: a live agent on loopback.

The technician asks for the first or last lines of a 7,566-line log; only those
lines come back, and both transcripts record the range asked with the size and
SHA-256 of what was sent. What a whole `read` refuses (a FIFO, a device, a
directory, a file over the cap, a denied file), a ranged read refuses too;
a bad range is refused by the technician's command line, and by the agent when
a client sends one anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import open_session, start_agent
from toolkit.agent.session import SessionEnd
from toolkit.errors import UsageError
from toolkit.policy import Policy
from toolkit.protocol import MAX_LINES
from toolkit.session.commands import parse
from toolkit.session.results import OperationResult
from toolkit.session.technician import TechnicianSession
from toolkit.transcript.verify import read_events

LINES = 7566


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def fields(path: Path) -> list[dict[str, Any]]:
    return [e.fields() for e in read_events(path) if e.code == "e"]


def reads(path: Path) -> list[dict[str, Any]]:
    return [f for f in fields(path) if f.get("op") == "read"]


def log_lines() -> list[bytes]:
    return [
        f"{i:05d} kernel: eth0 link state changed, seq {i * 7919 % 10007}\n".encode()
        for i in range(1, LINES + 1)
    ]


def write_log(root: Path) -> tuple[Path, bytes]:
    path = root / "allowed" / "app.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    content = b"".join(log_lines())
    path.write_bytes(content)
    return path, content


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def execute(session: TechnicianSession, line: str) -> OperationResult:
    command = parse(line)
    assert command is not None
    return await session.execute(command)


async def in_session(
    root: Path, lines: list[str], policy: Policy | None = None
) -> tuple[list[OperationResult], list[str], SessionEnd]:
    """Run ``lines`` in one session; the results, the customer's screen, the agent's end."""
    agent, screen, _ = await start_agent(root, policy=policy)
    try:
        session = await open_session(agent, root)
        results = [await execute(session, line) for line in lines]
        await session.end("test over")
        end = await agent.wait()
    finally:
        await agent.stop("test over")
    return results, screen.lines, end


def test_tail_and_head_send_only_the_lines_asked_and_both_copies_record_range_and_digest(
    tmp_path: Path,
) -> None:
    log, content = write_log(tmp_path)
    lines = log_lines()
    tail, head = b"".join(lines[-20:]), b"".join(lines[:15])

    async def go() -> None:
        results, screen, end = await in_session(
            tmp_path, [f"read {log} --tail 20", f"read --head=15 {log}", f"read {log}"]
        )
        by_tail, by_head, whole = results
        assert (by_tail.status, by_tail.content) == ("ok", tail)
        assert (by_head.status, by_head.content) == ("ok", head)
        assert whole.content == content  # without a range, all of it, as before
        assert by_tail.result["size"] == len(tail) and by_tail.result["sha256"] == sha(tail)
        assert by_tail.result["file_size"] == len(content)

        technician = reads(tmp_path / "technician.cast")
        assert end.transcript is not None
        customer = reads(end.transcript)
        for copy in (technician, customer):
            assert [(r.get("tail"), r.get("head")) for r in copy] == [
                (20, None),
                (None, 15),
                (None, None),
            ]
            assert [(r["size"], r["sha256"]) for r in copy] == [
                (len(tail), sha(tail)),
                (len(head), sha(head)),
                (len(content), sha(content)),
            ]
            assert all(r["ok"] is True for r in copy)
        assert technician[0]["command"] == f"read {log} --tail 20"
        # The content of a read is identified, never copied, in either transcript.
        assert lines[-1].decode() not in (tmp_path / "technician.cast").read_text()
        assert lines[-1].decode() not in end.transcript.read_text()
        real = str(log.resolve())
        assert f"read {real} (last 20 lines, {len(tail)} bytes)" in screen
        assert f"read {real} (first 15 lines, {len(head)} bytes)" in screen

    run(go())


def test_a_range_larger_than_the_file_sends_the_whole_file(tmp_path: Path) -> None:
    log, content = write_log(tmp_path)

    async def go() -> None:
        results, _, _ = await in_session(
            tmp_path, [f"read {log} --tail {MAX_LINES}", f"read {log} --head {LINES}"]
        )
        assert [r.content for r in results] == [content, content]

    run(go())


def test_what_a_whole_read_refuses_a_ranged_read_refuses_too(tmp_path: Path) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    os.mkfifo(allowed / "pipe")  # nobody writes it: a read that opened it would hang
    (allowed / "dir").mkdir()
    (allowed / "secret.txt").write_text("do-not-leak\n")
    (allowed / "big.log").write_bytes(b"x" * 80 + b"\n" + b"y" * 2000)
    policy = Policy.from_toml(_small_cap_policy(tmp_path), source="test policy, 1 KiB cap")
    asked = [
        f"read {allowed / 'pipe'} --tail 5",
        f"read {allowed / 'dir'} --head 1",
        "read /dev/zero --head 1",
        f"read {allowed / 'secret.txt'} --tail 1",
        f"read {allowed / 'big.log'} --head 1",  # the first line fits, the file does not
    ]

    async def go() -> None:
        results, _, end = await in_session(tmp_path, asked, policy)
        assert [r.status for r in results] == ["refused"] * len(asked)
        assert all(r.content == b"" for r in results)
        assert "1024 bytes" in (results[-1].message or "")
        technician = [f for f in fields(tmp_path / "technician.cast") if f.get("type") == "refusal"]
        assert end.transcript is not None
        customer = [f for f in fields(end.transcript) if f.get("type") == "refusal"]
        for copy in (technician, customer):
            assert [(f.get("head"), f.get("tail")) for f in copy] == [
                (None, 5),
                (1, None),
                (1, None),
                (None, 1),
                (1, None),
            ]
        assert "do-not-leak" not in (tmp_path / "technician.cast").read_text()

    run(go())


def _small_cap_policy(root: Path) -> str:
    allowed = (root / "allowed").resolve()
    return "\n".join(
        [
            "[files]",
            f'allow = ["{allowed}", "{allowed}/**", "/dev/zero"]',
            f'deny = ["{allowed}/secret*"]',
            "max_bytes = 1024",
        ]
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("read /a --tail 5 --head 5", "read takes --head or --tail, not both."),
        ("read /a --tail 2 --tail 3", "--tail is given twice; give it once."),
        ("read /a --tail 0", f"--tail takes a number of lines from 1 to {MAX_LINES}, not '0'."),
        ("read /a --head -3", f"--head takes a number of lines from 1 to {MAX_LINES}, not '-3'."),
        ("read /a --head ten", f"--head takes a number of lines from 1 to {MAX_LINES}, not 'ten'."),
        ("read /a --tail", f"--tail takes a number of lines from 1 to {MAX_LINES}."),
        (f"read /a --tail {MAX_LINES + 1}", "--tail takes a number of lines from 1 to"),
        ("read /a --lines 3", "read has no option --lines."),
        ("read /a /b", "Usage: read PATH [--head N | --tail N]"),
    ],
)
def test_a_bad_range_is_refused_with_one_sentence(line: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(line)
    assert caught.value.message.startswith(message)
    assert caught.value.message.count(". ") == 0  # one sentence


def test_the_agent_refuses_a_bad_range_as_a_protocol_error_and_goes_on(tmp_path: Path) -> None:
    log, _ = write_log(tmp_path)
    bad: list[dict[str, Any]] = [
        {"tail": 0},
        {"head": -1},
        {"tail": MAX_LINES + 1},
        {"tail": "5"},
        {"head": True},
        {"tail": 5.0},
        {"head": 1, "tail": 1},
        {"lines": 3},
    ]

    async def go() -> None:
        agent, _, _ = await start_agent(tmp_path)
        try:
            session = await open_session(agent, tmp_path)
            for args in bad:
                reply = await session.client.request("read", path=str(log), **args)
                assert reply.response.error == "malformed", args
                assert reply.content == b""
            good = await execute(session, f"read {log} --tail 1")
            assert good.content == log_lines()[-1]
            await session.end("test over")
            end = await agent.wait()
        finally:
            await agent.stop("test over")
        assert end.transcript is not None
        errors = [f for f in fields(end.transcript) if f.get("type") == "protocol_error"]
        assert len(errors) == len(bad)
        assert all(e["error"] == "malformed" for e in errors)

    run(go())
