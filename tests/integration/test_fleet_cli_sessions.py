"""`toolkit run FIX --inventory` end to end: 50 real agents on loopback, mixed outcomes.

The agents run in a thread of their own (an event loop of theirs), the CLI in the
test's thread as a user runs it. Until consent by grant is merged (issue 17,
part 2), each host's session passes consent with its agent's one-time code, put
into the request run_host builds, and the grant the CLI loads is a stand-in; all
else is the real path: the inventory, --limit, the runner, run_host, run_session,
run_fix, the seal, the ticket, the recap, the JSON, the retry file, the summary.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import toolkit.cli.fleet
from tests.integration.test_fleet_sessions import BOTH, FIX, _agent
from tests.session_support import Customer, code_of
from toolkit.agent.server import Agent
from toolkit.cli import run
from toolkit.consent import Scope
from toolkit.fleet import session as fleet_session
from toolkit.fleet.inventory import Host
from toolkit.fleet.summary import verify
from toolkit.secrets import Secret
from toolkit.tickets.summary import verdict

#: name prefix: (how many, the agent's customer, the scopes it offers); None: no agent.
PLAN: dict[str, tuple[int, Customer | None, frozenset[Scope] | None]] = {
    "changed": (20, Customer(), BOTH),
    "ok": (10, Customer(), BOTH),
    "failed": (5, Customer(), BOTH),
    "declined": (5, Customer(approve=False), BOTH),
    "refused": (5, Customer(), frozenset({Scope.DIAGNOSTICS})),
    "unreachable": (5, None, None),
}
RESULT = {
    "changed": "changed",
    "ok": "ok",
    "failed": "failed",
    "declined": "declined",
    "refused": "refused",
    "unreachable": "unreachable",
}


class Grant:
    id = "g-cccccccccccccccccccccccccc"


class Agents:
    """Agents served by an event loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.agents: dict[str, Agent] = {}

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def start(self, name: str, root: Path, customer: Customer, offered: frozenset[Scope]) -> Agent:
        agent: Agent = self.call(_agent(root, customer, offered))
        self.agents[name] = agent
        return agent

    def close(self) -> None:
        async def stop_all() -> None:
            for agent in self.agents.values():
                await agent.stop("test over")
            this = asyncio.current_task()
            rest = [t for t in asyncio.all_tasks() if t is not this]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        self.call(stop_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture
def agents() -> Iterator[Agents]:
    running = Agents()
    try:
        yield running
    finally:
        running.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_fifty_hosts_mixed_outcomes(
    agents: Agents,
    tmp_path: Path,
    isolated: Path,
    keygen_key: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = isolated / "home"
    codes: dict[str, Secret] = {}
    names: list[str] = []
    inventory = ['[defaults]\nticket = "OPS-{host}"\n']
    for prefix, (count, customer, offered) in PLAN.items():
        for i in range(1, count + 1):
            name = f"{prefix}-{i:02d}"
            names.append(name)
            if customer is not None and offered is not None:
                agent = agents.start(name, tmp_path / "agents" / name, customer, offered)
                codes[name] = code_of(agent)
                port = agent.address[1]
            else:
                port = _closed_port()
            inventory.append(
                f'[hosts.{name}]\naddress = "127.0.0.1:{port}"\ngroups = ["{prefix}"]\n'
                f'params = {{ name = "{name}" }}\n'
            )
            if prefix == "ok":
                (home / name).mkdir()  # not needed there
            elif prefix == "failed":
                (home / name).write_text("in the way: mkdir fails")
    path = tmp_path / "hosts.toml"
    path.write_text("".join(inventory))
    assert len(names) == 50
    real = fleet_session.request_for

    def with_code(host: Host, **kwargs: Any) -> Any:
        # The stand-in grant and the pins stay out of the request until they can be sent.
        request = real(host, **{**kwargs, "grant": None, "host_key_check": None})
        return dataclasses.replace(request, code=codes.get(host.name, Secret("000000000")))

    monkeypatch.setattr(fleet_session, "request_for", with_code)
    monkeypatch.setattr(toolkit.cli.fleet, "_load_grant", lambda path: Grant())
    code = run(
        ["run", FIX.name, "--inventory", str(path), "--key", str(keygen_key), "--json",
         "--forks", "10", "--limit", "all:!ok-10"]
    )  # fmt: skip
    out, err = capsys.readouterr()
    chosen = [n for n in names if n != "ok-10"]
    lines = [json.loads(line) for line in out.splitlines()]
    hosts = {line["host"]: line for line in lines if line["type"] == "host"}
    assert {h: line["result"] for h, line in hosts.items()} == {
        n: RESULT[n.rsplit("-", 1)[0]] for n in chosen
    }
    summary = lines[-1]
    assert summary["counts"] == {
        "ok": 9, "changed": 20, "failed": 5, "declined": 5, "refused": 5, "unreachable": 5
    }  # fmt: skip
    assert code == summary["exit_code"] == 4  # the network's 4 ranks over refused's 3
    # The recap: one line per host, in the inventory's order.
    recaps = [line.split()[1] for line in err.splitlines() if line.startswith("recap: ")]
    assert recaps == chosen
    assert "hosts=49 ok=9 changed=20 failed=5 declined=5 refused=5 unreachable=5 (exit 4)" in err
    # Each host's steps, as JSON, right before its host line.
    changed = [line for line in lines if line.get("host") == "changed-01"]
    assert [line["type"] for line in changed] == ["step"] * 4 + ["host"]
    assert [line["purpose"] for line in changed[:-1]] == ["check", "apply", "verify", "recheck"]
    # The retry file: exactly the hosts that did not end ok or changed.
    retry = (tmp_path / "hosts.toml.retry").read_text().splitlines()
    assert retry[1:] == [
        n for n in chosen if n.split("-")[0] in ("failed", "declined", "refused", "unreachable")
    ]
    # The summary is signed and lists every transcript, each sealed, digests as on disk.
    document, _ = verify(Path(summary["run_summary"]))
    listed = {h["host"]: h for h in document["hosts"]}
    assert list(listed) == chosen
    for name, entry in listed.items():
        prefix = name.rsplit("-", 1)[0]
        assert entry["ticket"] == f"OPS-{name}" and entry["grant"] == Grant.id
        if prefix in ("declined", "unreachable"):
            assert entry["transcript"] is None, entry
            continue
        cast = Path(entry["transcript"])
        assert entry["transcript_sha256"] == hashlib.sha256(cast.read_bytes()).hexdigest()
        report, why = verdict(cast, None)
        assert report.verdict.value == "SEALED", (name, why)
    assert summary["attached_to"] == sorted(f"OPS-{n}" for n in chosen)
