"""`toolkit run FIX --inventory` against 51 grant-only service agents on loopback.

Every agent is what `toolkit serve` runs (AgentSettings(service=True, codes=False,
grants=...)): 50 as tasks of one event loop in a thread of the test's process, the
51st in a process of its own, which the test kills with SIGKILL while its fix's
apply runs. Nobody at any agent approves anything: every session's consent and
every fix's approval is a grant, checked by the agent against the owner's key.

Mixed outcomes, each from the real path: a valid grant (changed), the fix not
needed (ok), the fix failing (failed, rolled back), a grant used up, revoked,
expired, or for other hosts (consent refused, with the agent's reason), nothing
listening (unreachable), and the killed agent. The test checks the recap, the
JSON, the retry file, that every technician's transcript verifies, and that
each agent's grant ledger agrees with the signed run summary.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.fleet_service_agent import hanging_fix
from tests.integration.test_fleet_sessions import BOTH, FIX
from tests.session_support import Collector, Customer, make_policy
from toolkit.agent.server import Agent, AgentSettings
from toolkit.cli import run
from toolkit.fleet.summary import verify
from toolkit.grants import Grant, GrantedProcedure, issue
from toolkit.grants.acceptance import GrantAcceptance
from toolkit.grants.ledger import Ledger
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import blob_from_line, fingerprint, public_line
from toolkit.identity.signer import KeySigner
from toolkit.plugins.catalogue import Catalogue
from toolkit.tickets.summary import verdict

OWNER = "owner@example.com"
TICKET = "OPS-17"
NOW = datetime.now(UTC).replace(microsecond=0)

#: name prefix: (hosts, the result each ends with, the grant's refusal if any).
PLAN: dict[str, tuple[int, str, str | None]] = {
    "valid": (30, "changed", None),
    "notneeded": (5, "ok", None),
    "failing": (5, "failed", None),
    "usedup": (2, "consent refused", "used-up"),
    "revoked": (2, "consent refused", "revoked"),
    "expired": (2, "consent refused", "expired"),
    "wronghost": (2, "consent refused", "other-host"),
    "unreachable": (2, "unreachable", None),
}
KILLED = "killed-01"


class Agents:
    """Service agents served by an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agents: dict[str, Agent] = {}

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self, name: str, root: Path, issuers: Path) -> Agent:
        agent: Agent = self.call(_service(name, root, issuers))
        self.agents[name] = agent
        return agent

    def close(self) -> None:
        async def stop_all() -> None:
            for agent in self.agents.values():
                await agent.stop("test over")
                await agent.wait()

        self.call(stop_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


async def _service(name: str, root: Path, issuers: Path) -> Agent:
    nobody = Customer(approve=False, approve_fixes=False)  # a grant is the only yes
    agent = Agent(
        AgentSettings(
            policy=make_policy(root),
            approver=nobody,
            approve_fix=nobody.approve_fix,
            offered=BOTH,
            catalogue=Catalogue([FIX]),
            transcripts=root / "customer-transcripts",
            hostname=name,
            grants=GrantAcceptance(
                AllowedSigners.from_file(issuers), Ledger(root / "grants"), frozenset({name})
            ),
            codes=False,
            service=True,
        ),
        Collector(),
    )
    await agent.start("127.0.0.1", 0)
    return agent


@pytest.fixture
def agents() -> Iterator[Agents]:
    running = Agents()
    try:
        yield running
    finally:
        running.close()


@dataclass
class Killed:
    """The agent in a process of its own, killed once its apply has started."""

    process: subprocess.Popen[str]
    port: int
    host_key: str
    killed: threading.Event


@pytest.fixture
def killed(tmp_path: Path, issuers: Path) -> Iterator[Killed]:
    root = tmp_path / "agents" / KILLED
    root.mkdir(parents=True)
    fifo = tmp_path / "apply-started"
    os.mkfifo(fifo)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.fleet_service_agent",
         str(root), KILLED, str(issuers), str(fifo)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert process.stdout is not None
    ready = json.loads(process.stdout.readline())
    done = threading.Event()

    def kill_when_apply_starts() -> None:
        with fifo.open() as started:  # blocks until the apply opens it
            if started.readline().strip() == "started":
                process.send_signal(signal.SIGKILL)
                done.set()

    watcher = threading.Thread(target=kill_when_apply_starts, daemon=True)
    watcher.start()
    try:
        yield Killed(process, int(ready["port"]), str(ready["host_key"]), done)
    finally:
        process.kill()
        process.wait(30)
        if watcher.is_alive():  # the apply never started: let the watcher's open return
            with open(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK), "w"):
                pass
        watcher.join(10)


@pytest.fixture
def owner() -> KeySigner:
    return KeySigner(ed25519.Ed25519PrivateKey.generate())


@pytest.fixture
def issuers(tmp_path: Path, owner: KeySigner) -> Path:
    path = tmp_path / "issuers"
    path.write_text(f'{OWNER} namespaces="toolkit-grant" {public_line(owner.public_blob)}\n')
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _grant(owner: KeySigner, technician: str, hosts: list[str], **changes: Any) -> Grant:
    values: dict[str, Any] = {
        "issuer": OWNER,
        "technician": technician,
        "procedures": [GrantedProcedure("fix", FIX.name, FIX.sha256)],
        "scopes": [],
        "hosts": hosts,
        "ticket": TICKET,
        "not_before": NOW - timedelta(minutes=5),
        "not_after": NOW + timedelta(hours=1),
        "uses": 1,
    }
    values.update(changes)
    return issue(owner, **values)


def test_fifty_one_service_agents_with_grants(
    agents: Agents,
    killed: Killed,
    owner: KeySigner,
    issuers: Path,
    tmp_path: Path,
    isolated: Path,
    keygen_key: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = isolated / "home"
    technician = " ".join(keygen_key.with_name("id_ed25519.pub").read_text().split()[:2])
    who = fingerprint(blob_from_line(technician))
    names = [f"{p}-{i:02d}" for p, (n, _, _) in PLAN.items() for i in range(1, n + 1)]
    names.append(KILLED)
    main_hosts = [
        n
        for n in names
        if n.split("-")[0] in ("valid", "notneeded", "failing", "usedup", "revoked", "unreachable")
    ]
    main = _grant(owner, technician, main_hosts)
    hanging = GrantedProcedure("fix", FIX.name, hanging_fix(tmp_path / "apply-started").sha256)
    grants = {
        "main": main,
        "expired": _grant(
            owner, technician, [n for n in names if n.startswith("expired")],
            not_before=NOW - timedelta(hours=2), not_after=NOW - timedelta(hours=1),
            now=NOW - timedelta(hours=3),  # issued while it was still to come
        ),
        "wronghost": _grant(owner, technician, ["elsewhere-01"]),
        "killed": _grant(owner, technician, [KILLED], procedures=[hanging]),
    }  # fmt: skip
    for label, grant in grants.items():
        (tmp_path / f"grant-{label}.txt").write_bytes(grant.to_bytes())
    inventory = ['[defaults]\ngrant = "grant-main.txt"\n']
    roots: dict[str, Path] = {}
    for name in names:
        prefix = name.split("-")[0]
        if prefix == "unreachable":
            where, key = f"127.0.0.1:{_closed_port()}", "SHA256:" + "A" * 43
        elif name == KILLED:
            where, key = f"127.0.0.1:{killed.port}", killed.host_key
            roots[name] = tmp_path / "agents" / name
        else:
            roots[name] = tmp_path / "agents" / name
            agent = agents.start(name, roots[name], issuers)
            where, key = f"127.0.0.1:{agent.address[1]}", agent.host_key.fingerprint
        inventory.append(
            f'[hosts.{name}]\naddress = "{where}"\nhost_key = "{key}"\ngroups = ["{prefix}"]\n'
            f'params = {{ name = "{name}" }}\n'
        )
        if prefix in ("expired", "wronghost", "killed"):
            inventory.append(f'grant = "grant-{prefix}.txt"\n')
        if prefix == "notneeded":
            (home / name).mkdir()  # the fix is not needed there
        elif prefix == "failing":
            (home / name).write_text("in the way: mkdir fails")
    for name in names:
        if name.startswith("usedup"):  # its one use was spent before
            Ledger(roots[name] / "grants").spend(
                main, technician="bob@example.com", ticket=TICKET, session="earlier",
                peer="127.0.0.1", now=NOW,
            )  # fmt: skip
        elif name.startswith("revoked"):
            assert Ledger(roots[name] / "grants").revoke(main.id, reason="lost laptop", now=NOW)
    path = tmp_path / "hosts.toml"
    path.write_text("".join(inventory))
    assert len(names) == 51

    code = run(
        ["run", FIX.name, "--inventory", str(path), "--key", str(keygen_key), "--json",
         "--ticket", TICKET, "--forks", "20"]
    )  # fmt: skip
    out, err = capsys.readouterr()

    assert killed.killed.is_set()  # the killed host really was killed mid-apply
    expected = {n: PLAN[n.split("-")[0]][1] for n in names if n != KILLED}
    expected[KILLED] = "unreachable"
    lines = [json.loads(line) for line in out.splitlines()]
    hosts = {line["host"]: line for line in lines if line["type"] == "host"}
    assert {h: line["result"] for h, line in hosts.items()} == expected
    for name, line in hosts.items():
        refusal = PLAN.get(name.split("-")[0], (0, "", None))[2]
        assert line["reason"] == refusal, (name, line)
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["counts"] == {
        "changed": 30, "ok": 5, "failed": 5, "consent refused": 8, "unreachable": 3
    }  # fmt: skip
    assert code == summary["exit_code"] == 4  # unreachable ranks over failed and refused
    # The recap: one line per host, in the inventory's order, then the counts.
    recaps = [line.split()[1] for line in err.splitlines() if line.startswith("recap: ")]
    assert recaps == names
    # The retry file: exactly the hosts that did not end ok or changed, in order.
    retry = (tmp_path / "hosts.toml.retry").read_text().splitlines()
    assert [n for n in retry if not n.startswith("#")] == [
        n for n in names if expected[n] not in ("ok", "changed")
    ]
    # A fix failing is rolled back: the rollback ran, and removed what was in the way.
    failing = [line for line in lines if line.get("host") == "failing-01"]
    assert [line["purpose"] for line in failing if line["type"] == "step"] == [
        "check", "apply", "rollback"
    ]  # fmt: skip
    assert not (home / "failing-01").exists()
    # The signed summary lists every host; every transcript verifies, digests as on disk.
    document, _ = verify(Path(summary["run_summary"]))
    listed = {h["host"]: h for h in document["hosts"]}
    assert list(listed) == names
    for name, entry in listed.items():
        result = expected[name]
        assert entry["result"] == result and entry["ticket"] == TICKET
        if result in ("consent refused",) or name.startswith("unreachable"):
            assert entry["transcript"] is None and entry["grant_use"] is None, entry
            continue
        cast = Path(entry["transcript"])
        assert entry["transcript_sha256"] == hashlib.sha256(cast.read_bytes()).hexdigest()
        report, why = verdict(cast, None)
        assert report.verdict.value == "SEALED", (name, why)
        assert entry["grant_use"] == 1, entry
    # Each agent's grant ledger agrees with the summary: the use it counted is the one the
    # summary names, for this technician and ticket, and ended (but for the killed agent,
    # whose use stays spent with no end); refused hosts spent nothing.
    for name, root in roots.items():
        entry = listed[name]
        history = Ledger(root / "grants").history()
        if name.startswith("usedup"):
            assert [(h.number, h.technician) for h in history] == [(1, "bob@example.com")]
            continue
        if entry["grant_use"] is None:
            assert history == [], (name, history)
            continue
        (use,) = history
        assert use.grant_id == entry["grant"] == grants["killed" if name == KILLED else "main"].id
        # The grant names the technician's key: the ledger names the key, not the email
        # beside it, which is only what the technician says.
        assert (use.number, use.technician, use.ticket) == (entry["grant_use"], who, TICKET)
        if name == KILLED:
            assert use.outcome is None  # killed: never ended, never given back
        else:
            assert use.outcome is not None and use.transcript is not None
            customer_copy = Path(use.transcript)
            report, why = verdict(customer_copy, None)
            assert report.verdict.value == "SEALED", (name, why)
