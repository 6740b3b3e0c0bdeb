"""The commands end to end: ``toolkit relay --agents``, ``toolkit serve --relay --name``,
``toolkit connect --relay --name``, each a real process on loopback.

The service takes grants only (no code is ever shown), so the technician's
code is refused *by the service* (exit 3): that is the proof the name led to
it. A name no service holds is a network error (exit 4) saying so.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.helpers import new_signer, write_issuers
from tests.integration.share_process import Person, end
from tests.relay_support import host_key, relay_process, trust
from toolkit.agent.host_key import HostKey


def test_a_service_registers_its_name_at_the_relay_and_technicians_reach_it_by_name(
    tmp_path: Path, people: tuple[Person, Person]
) -> None:
    technician, owner = people
    operator = Person.make(tmp_path / "operator")
    relay_key = host_key(operator.root / "relay_key")
    shown = owner.toolkit("serve", "--show-host-key")
    assert shown.returncode == 0, shown.stderr
    service_key, fingerprint = shown.stdout.splitlines()
    agents = operator.root / "agents"
    agents.write_text(f"web-01 {' '.join(service_key.split()[:2])}\n")
    issuers = write_issuers(tmp_path / "issuers", new_signer())
    with relay_process(operator, relay_key, 0, "--agents", str(agents)) as relay:
        assert relay.listening["agents"] == 1
        for person in (owner, technician):
            trust(relay.port, relay_key, person.home)
        proc = owner.popen(
            "serve", "--accept-grants-from", issuers,
            "--relay", f"127.0.0.1:{relay.port}", "--name", "web-01",
        )  # fmt: skip
        try:
            assert proc.stderr is not None and proc.stdout is not None
            said = proc.stderr.readline()
            assert said.startswith(f"Serving on the relay 127.0.0.1:{relay.port} as web-01,"), (
                said + proc.stderr.read()
            )
            assert fingerprint in said

            def connect(name: str) -> subprocess.CompletedProcess[str]:
                return technician.toolkit(
                    "connect", "--relay", f"127.0.0.1:{relay.port}", "--name", name,
                    "--code", "123-456-789", "--ticket", "T-1", "--batch", "-", stdin="",
                )  # fmt: skip

            reached = connect("web-01")
            assert reached.returncode == 3, reached.stderr  # the service refused the code
            missing = connect("web-02")
            assert missing.returncode == 4, missing.stderr
            assert "no agent called web-02 is connected to this relay" in missing.stderr
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            log = [json.loads(line) for line in proc.stdout.read().splitlines()]
        finally:
            end(proc)
        relay_log, _ = relay.stop()
    events = [json.loads(line) for line in relay_log.splitlines()]
    registered = [e for e in events if e["event"] == "register"]
    assert [(e["name"], e["stable"], e["key"]) for e in registered] == [
        ("web-01", True, fingerprint)
    ]
    joins = [e for e in events if e["event"] == "join"]
    assert [e["name"] for e in joins] == ["web-01"]
    assert log[0]["event"] == "listening" and log[0]["name"] == "web-01"


def test_name_without_relay_is_a_usage_error(people: tuple[Person, Person]) -> None:
    technician, _ = people
    done = technician.toolkit(
        "connect", "--name", "web-01", "--code", "123-456-789", "--ticket", "T-1"
    )
    assert done.returncode == 2 and "--name needs --relay" in done.stderr


def test_relay_refuses_an_agents_file_it_cannot_use(tmp_path: Path) -> None:
    operator = Person.make(tmp_path / "operator")
    agents = operator.root / "agents"
    agents.write_text(f"web-* {HostKey().public_line}\n")
    done = operator.toolkit("relay", "--listen", "127.0.0.1:0", "--agents", agents)
    assert done.returncode == 2 and "'web-*' is not an agent name" in done.stderr


def test_a_service_refuses_a_relay_whose_host_key_it_does_not_know(tmp_path: Path) -> None:
    """Nobody is at a service to answer ssh's question: it stops, saying what to add."""
    operator, owner = Person.make(tmp_path / "operator"), Person.make(tmp_path / "owner")
    relay_key = host_key(operator.root / "relay_key")
    issuers = write_issuers(tmp_path / "issuers", new_signer())
    with relay_process(operator, relay_key) as relay:
        done = owner.toolkit(
            "serve", "--accept-grants-from", issuers,
            "--relay", f"127.0.0.1:{relay.port}", "--name", "web-01",
        )  # fmt: skip
        assert done.returncode == 4, done.stderr
        assert "is not in your known_hosts" in done.stderr
        assert relay.listening["host_key"] in done.stderr
        relay_log, _ = relay.stop()
    assert '"event":"register"' not in relay_log  # nothing was sent to it
