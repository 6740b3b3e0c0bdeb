"""Every first-party Linux diagnostic on a real agent: one share, one `toolkit connect --batch`.

The customer's machine is this one, with the stand-ins of tests/fakes for
what it lacks (systemd, its journal, timedated), so that the units, the
journal and the clock say something a test can know. Each diagnostic runs
once (the ones that can fail here twice: once failing), and its exit status
and output are asserted on the technician's ``--json`` result lines.

Findings are not rendered: the plugin's ``findings`` functions exist
(tests/unit/plugins/test_linux_findings.py), but neither ``connect`` nor
``run`` calls them, so the technician sees the commands' output only. The
assertions below are on that output, which is what the findings would be
built from.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import toolkit_linux

from tests.integration.share_process import Person, sharing
from tests.integration.test_share_connect import (
    connect,
    customer_copy,
    events,
    make_customer,
    make_technician,
    result_lines,
)
from tests.linux_support import FakeMachine
from toolkit.plugins import Diagnostic

DIAGNOSTICS = [p.name for p in toolkit_linux.plugin.procedures if isinstance(p, Diagnostic)]
ERROR_LINES = [
    "2026-12-03T09:00:01+0000 host cupsd[311]: Unable to open listen socket",
    "2026-12-03T09:00:02+0000 host cupsd[311]: Scheduler shutting down due to error",
]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def policy(machine: FakeMachine, customer: Person) -> Path:
    """The stand-ins first on PATH; the built-in readable files the diagnostics read, and
    the directory largest-dirs looks into (a policy's [files] allow replaces the built-in)."""
    allow = [
        "/etc/os-release",
        "/usr/lib/os-release",
        "/proc/uptime",
        "/proc/loadavg",
        "/proc/meminfo",
        str(customer.home / "big"),
        str(customer.home / "big") + "/**",
    ]
    path = customer.root / "linux-policy.toml"
    path.write_text(machine.policy_toml(f"[files]\nallow = {json.dumps(allow)}\n"))
    return path


def by_command(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["command"]: line for line in lines}


def stdout(line: dict[str, Any]) -> str:
    return str(line["stdout"] or "")


def test_every_diagnostic_runs_on_a_real_agent(tmp_path: Path, identity: Path) -> None:
    technician = make_technician(tmp_path / "technician", identity)
    customer = make_customer(tmp_path / "customer")
    machine = FakeMachine.create(tmp_path, programs=("systemctl", "timedatectl", "journalctl"))
    machine.unit("cups.service", "failed")
    machine.unit("ssh.service", "active")
    machine.journal(1024, errors=ERROR_LINES)
    machine.clock(synchronized=False, timezone="Europe/Berlin")
    big = customer.home / "big"
    for name, size in (("photos", 300_000), ("mail", 100_000)):
        (big / name).mkdir(parents=True)
        (big / name / "blob").write_bytes(b"\0" * size)
    closed = closed_port()
    with sharing(customer, "--policy", policy(machine, customer), logs=tmp_path / "logs") as share:
        port = share.address.rsplit(":", 1)[1]
        batch = [
            "diag system",
            "diag os-release",
            "diag uptime-load",
            "diag memory",
            "diag disk",
            f"diag largest-dirs -p path={big}",
            "diag top-processes",
            "diag services",
            "diag journal-errors -p unit=cups.service -p lines=5",
            "diag network",
            "diag dns-resolve -p name=localhost",
            "diag dns-resolve -p name=no-such-host.invalid",
            "diag listening-ports",
            f"diag reachable -p host=127.0.0.1 -p port={port}",
            f"diag reachable -p host=127.0.0.1 -p port={closed}",
            "diag time-sync",
        ]
        done = connect(technician, share, "\n".join(batch) + "\n", "--json")
        theirs = customer_copy(share.wait_for_stderr("Your copy of the transcript: "))
    assert {line.split()[1] for line in batch} == set(DIAGNOSTICS)  # every one, by name
    results = by_command(result_lines(done.stdout))
    assert list(results) == batch, done.stderr
    failing = {
        "diag dns-resolve -p name=no-such-host.invalid": 2,  # getent: not found
        f"diag reachable -p host=127.0.0.1 -p port={closed}": 1,
    }
    for command, line in results.items():
        expected = failing.get(command, 0)
        assert (line["exit_status"], line["status"]) == (
            expected, "ok" if expected == 0 else "failed",
        ), line  # fmt: skip
    assert done.returncode == 1, done.stderr  # the two that fail here
    # Every one ran on the agent, as the installed procedure.
    ran = [e for e in events(theirs) if e.get("op") == "diag"]
    assert [e["name"] for e in ran] == [line.split()[1] for line in batch]
    assert {e["procedure"]["source"] for e in ran} == {"installed"}
    # The technician's own Linux plugin (the same declarations) sums each one up.
    for command, line in results.items():
        findings = line["findings"]
        assert findings and all(f["message"] for f in findings), (command, findings)
        for finding in findings:
            assert f"finding: {finding['severity']}: " in done.stderr

    # What each one's findings would be built from is on the technician's screen.
    def out(command: str) -> str:
        return stdout(results[command])

    assert "PRETTY_NAME=" in out("diag os-release")
    assert "MemAvailable:" in out("diag memory")
    assert "Filesystem" in out("diag disk") and "IUse%" in out("diag disk")
    du = out(f"diag largest-dirs -p path={big}")
    sizes = {name: int(size) for size, name in (line.split("\t") for line in du.splitlines())}
    assert sizes[str(big / "photos")] > sizes[str(big / "mail")] > 0
    assert "PID" in out("diag top-processes") and "COMMAND" in out("diag top-processes")
    assert "cups.service loaded failed failed" in out("diag services")
    assert "ssh.service" not in out("diag services")
    assert out("diag journal-errors -p unit=cups.service -p lines=5").splitlines() == ERROR_LINES
    journal = machine.calls("journalctl")[-1]
    assert journal[:7] == ["journalctl", "-u", "cups.service", "-p", "err", "-n", "5"]
    assert "127.0.0.1" in out("diag dns-resolve -p name=localhost")
    assert out("diag dns-resolve -p name=no-such-host.invalid") == ""
    assert f"127.0.0.1:{port}" in out("diag listening-ports")  # the agent itself listens
    assert out(f"diag reachable -p host=127.0.0.1 -p port={port}") == (
        f"127.0.0.1 port {port}: reachable (127.0.0.1)\n"
    )
    assert out(f"diag reachable -p host=127.0.0.1 -p port={closed}").startswith(
        f"127.0.0.1 port {closed}: not reachable: "
    )
    assert "NTPSynchronized=no" in out("diag time-sync")
    assert "Timezone=Europe/Berlin" in out("diag time-sync")
