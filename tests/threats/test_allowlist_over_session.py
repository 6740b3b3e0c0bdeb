"""The file allowlist's path tricks, sent by a technician through a real session.

tests/threats/test_file_allowlist.py attacks the policy functions directly;
this file sends the same tricks over SSH as `read`, `ls` and `stat` requests,
through the agent, and checks what the technician gets back and what both
transcripts say: refused, no secret byte, the session still serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.session_support import Collector, Customer, code_of, identity
from tests.threats.namespace_support import namespaces_unavailable, other_namespace
from tests.unit.policy.support import ALLOWED_CONTENT, SECRET_CONTENT, World, build_world
from toolkit.agent.server import Agent, AgentSettings
from toolkit.consent import Scope
from toolkit.session.commands import Command
from toolkit.session.results import OperationResult
from toolkit.session.technician import TechnicianSession
from toolkit.transport.ssh import ConsentAsk, connect

Setup = Callable[[World], str]


def _symlink(world: World, name: str, target: str | Path) -> str:
    (world.allowed / name).symlink_to(target)
    return str(world.allowed / name)


def _parent_link(world: World) -> str:
    (world.allowed / "up").symlink_to(world.secret)
    return f"{world.allowed}/up/key.txt"


def _hard_link(world: World) -> str:
    os.link(world.key, world.allowed / "hard.txt")
    return str(world.allowed / "hard.txt")


def _fifo(world: World) -> str:
    os.mkfifo(world.allowed / "fifo")
    return str(world.allowed / "fifo")


def _socket(world: World) -> str:
    path = world.allowed / "sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    world.__dict__.setdefault("_keep", []).append(sock)
    return str(path)


def _sparse(world: World) -> str:
    path = world.allowed / "sparse"
    with open(path, "wb") as f:
        f.truncate(1 << 40)
    return str(path)


def _chain(world: World) -> str:
    (world.allowed / "c1").symlink_to("c2")
    (world.allowed / "c2").symlink_to(world.root / "c3")
    (world.root / "c3").symlink_to(world.key)
    return str(world.allowed / "c1")


TRICKS: dict[str, Setup] = {
    "dotdot": lambda w: f"{w.allowed}/../secret/key.txt",
    "absolute symlink out": lambda w: _symlink(w, "abs", w.key),
    "relative symlink out": lambda w: _symlink(w, "rel", "../secret/key.txt"),
    "chain of symlinks": _chain,
    "symlinked parent": _parent_link,
    "proc self root": lambda w: f"/proc/self/root{w.key}",
    "proc pid cwd": lambda w: f"/proc/{os.getpid()}/root{w.key}",
    "hard link to a denied file": _hard_link,
    "nul byte": lambda w: f"{w.ok}\0/../../secret/key.txt",
    "overlong": lambda w: f"{w.allowed}/" + "a/" * 3000 + "x",
    "lone surrogate": lambda w: f"{w.allowed}/\udcff",
    "dev zero": lambda w: "/dev/zero",
    "fifo": _fifo,
    "unix socket": _socket,
    "huge sparse file": _sparse,
    "denied file itself": lambda w: str(w.key),
    "directory": lambda w: str(w.allowed),
}
#: Allowlisted places that are not readable files: `read` refuses them, but
#: `stat` (and `ls` of a directory) may show them, since neither reads content.
INSIDE = {"fifo", "unix socket", "huge sparse file", "directory"}


async def _session(world: World, tmp_path: Path) -> tuple[Agent, TechnicianSession]:
    customer = Customer()
    agent = Agent(
        AgentSettings(
            policy=world.policy,
            approver=customer,
            approve_fix=customer.approve_fix,
            transcripts=tmp_path / "customer",
            hostname="customer-pc",
        ),
        Collector(),
    )
    await agent.start("127.0.0.1", 0)
    who = identity()
    ask = ConsentAsk(who, "T-1", frozenset({Scope.DIAGNOSTICS}), code_of(agent))
    conn, consent = await connect("127.0.0.1", agent.address[1], ask)
    session = await TechnicianSession.start(
        conn, consent, who, "loopback", path=tmp_path / "technician.cast"
    )
    return agent, session


def _command(op: str, path: str) -> Command:
    # Built directly: shlex would choke on a NUL byte, and the attack is the wire request.
    name = {"list": "ls"}.get(op, op)
    return Command(f"{name} <trick>", name, (path,), {"path": path})


def test_every_trick_is_refused_over_the_wire(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    paths = {name: setup(world) for name, setup in TRICKS.items()}

    async def attack() -> tuple[dict[str, dict[str, OperationResult]], Path, Path]:
        agent, session = await _session(world, tmp_path)
        results: dict[str, dict[str, OperationResult]] = {}
        for name, path in paths.items():
            results[name] = {}
            for op in ("read", "stat", "list"):
                results[name][op] = await asyncio.wait_for(session.execute(_command(op, path)), 10)
        # Still serving after every refusal: the allowed file reads.
        ok = await session.execute(_command("read", str(world.ok)))
        assert ok.status == "ok" and ok.content == ALLOWED_CONTENT
        cast = await session.end("done")
        end = await agent.wait()
        assert end.transcript is not None
        return results, cast, end.transcript

    results, technician_cast, customer_cast = asyncio.run(attack())
    for name, by_op in results.items():
        read = by_op["read"]
        assert read.status == "refused", (name, read)
        assert SECRET_CONTENT not in read.content
        assert read.message is not None and read.message.startswith("refused:")
        if name not in INSIDE:
            for op in ("stat", "list"):
                assert by_op[op].status == "refused", (name, op, by_op[op])
    # The technician's copy shows each refusal where the command was typed, for playback.
    shown = [
        json.loads(line)[2]
        for line in technician_cast.read_bytes().splitlines()[1:]
        if json.loads(line)[1] == "o"
    ]
    assert sum(text.startswith("refused:") for text in shown) >= len(TRICKS)
    secret = SECRET_CONTENT.strip()
    for cast in (technician_cast, customer_cast):
        text = cast.read_bytes()
        assert secret not in text
        refusals = [
            json.loads(json.loads(line)[2])
            for line in text.splitlines()[1:]
            if b'"e"' in line and b"refusal" in line
        ]
        assert len([r for r in refusals if r.get("op") == "read"]) == len(TRICKS)


@pytest.mark.parametrize("op", ["read", "stat"])
def test_refusal_of_a_missing_and_a_denied_file_look_the_same(op: str, tmp_path: Path) -> None:
    world = build_world(tmp_path)

    async def ask() -> tuple[str, str]:
        agent, session = await _session(world, tmp_path)
        denied = await session.execute(_command(op, str(world.key)))
        missing = await session.execute(_command(op, str(world.secret / "nope.txt")))
        await session.end("done")
        await agent.wait()
        return denied.message or "", missing.message or ""

    denied, missing = asyncio.run(ask())
    assert denied.replace(str(world.key), "X") == missing.replace(
        str(world.secret / "nope.txt"), "X"
    )


def test_key_names_in_upper_case_are_refused_over_the_wire(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    world.policy = world.with_policy(deny=None)  # None: the built-in deny list
    for name in ["ID_RSA", "backup.PEM"]:
        (world.allowed / name).write_bytes(SECRET_CONTENT)

    async def attack() -> dict[str, OperationResult]:
        agent, session = await _session(world, tmp_path)
        results = {
            f"{op} {name}": await session.execute(_command(op, f"{world.allowed}/{name}"))
            for name in ["ID_RSA", "backup.PEM"]
            for op in ("read", "stat")
        }
        results["ls"] = await session.execute(_command("list", str(world.allowed)))
        await session.end("done")
        await agent.wait()
        return results

    results = asyncio.run(attack())
    listing = results.pop("ls")
    assert listing.status == "ok" and [e["name"] for e in listing.result["entries"]] == ["ok.txt"]
    for what, result in results.items():
        assert result.status == "refused", (what, result)
        assert SECRET_CONTENT not in result.content


@pytest.mark.skipif(namespaces_unavailable() is not None, reason=namespaces_unavailable() or "")
def test_another_mount_namespace_through_proc_pid_root_over_the_wire(tmp_path: Path) -> None:
    # A sandbox binds the denied directory onto an allowed one, in its own namespace.
    world = build_world(tmp_path)
    (world.allowed / "nsbind").mkdir()

    async def attack(pid: int) -> dict[str, OperationResult]:
        agent, session = await _session(world, tmp_path)
        bound = f"/proc/{pid}/root{world.allowed}/nsbind"
        results = {
            f"{op} {path}": await session.execute(_command(op, path))
            for path in (f"{bound}/key.txt", bound)
            for op in ("read", "stat", "list")
        }
        await session.end("done")
        await agent.wait()
        return results

    with other_namespace(world.secret, world.allowed / "nsbind", "key.txt") as other:
        results = asyncio.run(attack(other.pid))
    for what, result in results.items():
        assert result.status == "refused", (what, result)
        assert SECRET_CONTENT not in result.content
