"""`toolkit run FIX --inventory`: the rendering, the JSON, the retry file, the signed summary.

Each host's session is a run_host of the test's own (toolkit.fleet.session.run_host is
what the CLI calls), so the runner, its output and its files are tested for real:
real asyncio, a real timeout, real signatures checked with ssh-keygen.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

import toolkit.cli.fleet
import toolkit.fleet.session
from toolkit.cli import run
from toolkit.fleet.inventory import Host
from toolkit.fleet.results import HostResult, HostStatus
from toolkit.fleet.runner import Stop
from toolkit.fleet.summary import NAMESPACE, verify
from toolkit.identity.keys import blob_from_line, fingerprint

INVENTORY = """
[defaults]
ticket = "OPS-7"
params = { unit = "nginx.service" }

[hosts.web-01]
address = "127.0.0.1:7001"
groups = ["web"]

[hosts.web-02]
address = "127.0.0.1:7002"
groups = ["web"]

[hosts.web-03]
address = "127.0.0.1:7003"
groups = ["web"]
params = { unit = "apache2.service" }

[hosts.db-01]
address = "127.0.0.1:7004"
groups = ["db"]

[hosts.db-02]
address = "127.0.0.1:7005"
groups = ["db"]

[hosts.cache-01]
address = "127.0.0.1:7006"
"""


class Grant:
    """Stands in for the grant the CLI would load: it covers every fix."""

    id = "g-aaaaaaaaaaaaaaaaaaaaaaaaaa"
    scopes = frozenset({"fixes"})

    def names(self, kind: str, name: str) -> None:
        return None


def _transcript(tmp_path: Path, host: str) -> tuple[Path, str]:
    path = tmp_path / "transcripts" / f"{host}.cast"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"a sealed transcript of {host}\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def _step(purpose: str, status: str = "ok") -> dict[str, Any]:
    return {"purpose": purpose, "step": purpose, "status": status, "exit_status": 0}


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The inventory, and a run_host that ends each host as its name says."""
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(INVENTORY)
    calls: dict[str, Any] = {"inventory": inventory, "params": {}, "tickets": {}}

    async def run_host(
        host: Host,
        fix: str,
        params: Mapping[str, str],
        check_only: bool,
        identity: Any,
        grant: Any,
        *,
        mine: Any,
        ticket: str,
        stop: Stop,
        on_step: Any,
        **_: Any,
    ) -> HostResult:
        calls["params"][host.name] = dict(params)
        calls["tickets"][host.name] = ticket
        on_step("check")
        path, digest = _transcript(tmp_path, host.name)
        sealed = {"transcript": path, "transcript_sha256": digest, "grant": grant.id}
        lines = (f"Connecting to {host.where}...", "== check: systemctl show (exit 0)", "\x1b[2J")
        if host.name == "web-01":
            return HostResult(
                host.name, HostStatus.OK, "not needed", (_step("check"),), lines, **sealed
            )
        if host.name == "web-02":
            status = HostStatus.WOULD_CHANGE if check_only else HostStatus.CHANGED
            steps = (
                (_step("check"),)
                if check_only
                else tuple(_step(p) for p in ("check", "apply", "recheck"))
            )
            return HostResult(host.name, status, "needed", steps, lines, **sealed)
        if host.name == "web-03":
            steps = (_step("check"), _step("apply", "failed"), _step("rollback"))
            return HostResult(
                host.name,
                HostStatus.FAILED,
                "apply failed (exit 1); rolled back",
                steps,
                lines,
                **sealed,
            )
        if host.name == "db-01":
            return HostResult(
                host.name,
                HostStatus.CONSENT_REFUSED,
                "the grant expired",
                output=lines,
                reason="expired",
            )
        if host.name == "db-02":
            return HostResult(
                host.name, HostStatus.UNREACHABLE, "connection refused", output=lines, exit_code=4
            )
        await asyncio.Event().wait()  # cache-01 never answers
        raise AssertionError

    monkeypatch.setattr(toolkit.fleet.session, "run_host", run_host)
    monkeypatch.setattr(
        toolkit.cli.fleet, "_load_grants", lambda hosts, given: {h.name: Grant() for h in hosts}
    )
    return calls


def _run(keygen_key: Path, inventory: Path, *extra: str) -> list[str]:
    return ["run", "restart-unit", "--inventory", str(inventory), "--key", str(keygen_key), *extra]


def test_mixed_outcomes(
    fleet: dict[str, Any],
    keygen_key: Path,
    ssh_keygen: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = fleet["inventory"]
    code = run(_run(keygen_key, inventory, "--json", "--timeout", "0.5", "--forks", "3"))
    out, err = capsys.readouterr()
    assert fleet["params"]["web-03"] == {"unit": "apache2.service"}  # the host's own
    assert fleet["params"]["web-01"] == {"unit": "nginx.service"}  # the defaults'
    lines = [json.loads(line) for line in out.splitlines()]
    hosts = [line for line in lines if line["type"] == "host"]
    assert [(h["host"], h["result"]) for h in sorted(hosts, key=lambda h: h["host"])] == [
        ("cache-01", "timed out"),
        ("db-01", "consent refused"),
        ("db-02", "unreachable"),
        ("web-01", "ok"),
        ("web-02", "changed"),
        ("web-03", "failed"),
    ]
    # Each host's step lines come right before its host line.
    for index, line in enumerate(lines[:-1]):
        if line["type"] == "step":
            following = next(x for x in lines[index:] if x["type"] == "host")
            assert following["host"] == line["host"]
    steps = [(line["host"], line["purpose"]) for line in lines if line["type"] == "step"]
    assert [p for h, p in steps if h == "web-03"] == ["check", "apply", "rollback"]
    refused = next(h for h in hosts if h["host"] == "db-01")
    assert (refused["reason"], refused["exit_code"]) == ("expired", 3)
    summary = lines[-1]
    assert summary["type"] == "summary"
    assert summary["counts"] == {
        "ok": 1, "changed": 1, "failed": 1, "unreachable": 1, "consent refused": 1, "timed out": 1
    }  # fmt: skip
    # Worst as a single run ranks it: web-03 failed (1) < db-01 refused (3) < db-02 network (4).
    assert code == summary["exit_code"] == 4
    # The retry file: every host that did not end ok or changed, in inventory order.
    retry = Path(summary["retry_file"])
    assert retry == tmp_path / "hosts.toml.retry"
    assert [n for n in retry.read_text().splitlines() if not n.startswith("#")] == [
        "web-03", "db-01", "db-02", "cache-01"
    ]  # fmt: skip
    # Each host's lines whole, prefixed, never interleaved, escapes shown not obeyed.
    said = err.splitlines()
    assert "\x1b" not in err
    for host in ("web-01", "web-02", "web-03", "db-01", "db-02"):
        mine = [i for i, line in enumerate(said) if line.startswith(f"{host} | ")]
        assert mine == list(range(mine[0], mine[0] + 4)), host
        assert said[mine[1]] == f"{host} | == check: systemctl show (exit 0)"
        assert said[mine[2]] == f"{host} | \\x1b[2J"
    assert "recap: web-01 result=ok steps=1 (exit 0)" in said
    assert "recap: web-02 result=changed steps=3 (exit 0)" in said
    assert (
        "recap: web-03 result=failed steps=3 (exit 1: apply failed (exit 1); rolled back)" in said
    )
    assert (
        "recap: db-01 result=consent-refused steps=0 (exit 3: expired: the grant expired)" in said
    )
    assert "recap: db-02 result=unreachable steps=0 (exit 4: connection refused)" in said
    assert (
        "recap: cache-01 result=timed-out steps=0 (exit 4: did not end within 0.5 seconds)" in said
    )
    recaps = [line.split()[1] for line in said if line.startswith("recap: ")]
    assert recaps == ["web-01", "web-02", "web-03", "db-01", "db-02", "cache-01"]
    assert (
        "hosts=6 ok=1 changed=1 failed=1 unreachable=1 consent-refused=1 timed-out=1 (exit 4)"
        in said
    )
    # The signed run summary: every host, its grant, its transcript's digest.
    path = Path(summary["run_summary"])
    document, signer = verify(path)
    public = keygen_key.with_suffix(".pub").read_text()
    assert fingerprint(signer) == fingerprint(blob_from_line(public))
    assert document["fix"] == "restart-unit" and document["check_only"] is False
    assert document["declaration_sha256"] and len(document["declaration_sha256"]) == 64
    by_host = {h["host"]: h for h in document["hosts"]}
    assert [h["host"] for h in document["hosts"]] == recaps
    assert by_host["web-02"]["grant"] == Grant.id
    sealed = Path(by_host["web-02"]["transcript"])
    assert by_host["web-02"]["transcript_sha256"] == hashlib.sha256(sealed.read_bytes()).hexdigest()
    assert by_host["db-01"]["reason"] == "expired"
    assert summary["attached_to"] == ["OPS-7"]
    # ... and stock OpenSSH checks it too.
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"alice@example.com {' '.join(public.split()[:2])}\n")
    with path.open("rb") as stdin:
        done = subprocess.run(
            [ssh_keygen, "-Y", "verify", "-f", str(signers), "-I", "alice@example.com",
             "-n", NAMESPACE, "-s", str(path) + ".sig"],
            stdin=stdin, capture_output=True, text=True,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_params_and_tickets_per_host(
    fleet: dict[str, Any], keygen_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _run(keygen_key, fleet["inventory"], "--limit", "web:!web-02", "--ticket", "OPS-{host}")
    code = run([*line, "-p", "unit=x.service"])
    assert code == 1
    assert fleet["params"] == {"web-01": {"unit": "x.service"}, "web-03": {"unit": "x.service"}}
    assert fleet["tickets"] == {"web-01": "OPS-web-01", "web-03": "OPS-web-03"}


def test_check_only_would_change_is_not_retried(
    fleet: dict[str, Any], keygen_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    retry = tmp_path / "again.txt"
    code = run(_run(keygen_key, fleet["inventory"], "--check", "--limit", "web-0[12]",
                    "--retry-file", str(retry)))  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 0
    assert "recap: web-02 result=would-change steps=1 (exit 0)" in err
    assert not retry.exists()  # nothing to run again
    code = run(_run(keygen_key, fleet["inventory"], "--limit", "web", "--retry-file", str(retry)))
    assert code == 1
    assert retry.read_text().splitlines()[1:] == ["web-03"]
    # The retry file is a --limit.
    capsys.readouterr()
    code = run(_run(keygen_key, fleet["inventory"], "--limit", f"@{retry}", "--json"))
    out, _ = capsys.readouterr()
    assert [json.loads(x)["host"] for x in out.splitlines() if '"type": "host"' in x] == ["web-03"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["127.0.0.1:5"], "no HOST:PORT, --code or --relay"),
        (["--forks", "0"], "--forks must be 1 to"),
        (["--timeout", "0"], "--timeout must be"),
        (["--limit", "web-9"], "'web-9' matches no host or group"),
        (["-p", "unit=a b"], "web-01: "),
    ],
)
def test_refused_before_any_host(
    fleet: dict[str, Any],
    keygen_key: Path,
    extra: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run(_run(keygen_key, fleet["inventory"], "--json", *extra))
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert fleet["params"] == {}  # no host was reached
    if extra[0] != "127.0.0.1:5":
        line = json.loads(out)
        assert (line["type"], line["exit_code"]) == ("error", 2)


def test_a_fleet_needs_a_grant_and_tickets(
    keygen_key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "hosts.toml"
    inventory.write_text('[hosts.a]\naddress = "127.0.0.1:1"\nparams = { unit = "a.service" }\n')
    assert run(_run(keygen_key, inventory, "--ticket", "T-1")) == 2
    assert "No grant for a: a fleet run has nobody to read a code" in capsys.readouterr().err
    not_a_grant = tmp_path / "grant.txt"
    not_a_grant.write_text("hello\n")
    assert run(_run(keygen_key, inventory, "--ticket", "T-1", "--grant", str(not_a_grant))) == 2
    assert "grant" in capsys.readouterr().err
    assert run(_run(keygen_key, inventory)) == 2
    assert "No ticket for a: give --ticket" in capsys.readouterr().err
    assert run(_run(keygen_key, inventory, "--ticket", "bad ticket")) == 2
    assert "is not a ticket id" in capsys.readouterr().err
