"""The signed run summary: what it lists, that it verifies, and that tampering shows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import new_signer
from toolkit.errors import SignatureError, TicketBackendError
from toolkit.fleet import summary
from toolkit.fleet.results import FleetResult, HostResult, HostStatus
from toolkit.identity.keys import fingerprint
from toolkit.identity.store import Identity

WHO = Identity("Alice Tech", "alice@example.com", new_signer(), "test")
START = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)


def _written(tmp_path: Path) -> summary.Written:
    fleet = FleetResult.of(
        [
            HostResult("web-01", HostStatus.CHANGED, "applied", ({"purpose": "check"},),
                       grant="g-1", transcript=Path("/t/1.cast"), transcript_sha256="ab" * 32),
            HostResult("web-02", HostStatus.CONSENT_REFUSED, "expired", reason="expired"),
        ],
        interrupted=False,
    )  # fmt: skip
    document = summary.build(
        fleet,
        run_id=summary.new_run_id(START),
        identity=WHO,
        fix="restart-unit",
        declaration_sha256="cd" * 32,
        check_only=False,
        inventory=Path("hosts.toml"),
        limit="web",
        tickets={"web-01": "OPS-1", "web-02": "OPS-2"},
        started=START,
        ended=START,
    )
    return summary.write(document, WHO, tmp_path / "runs")


def test_it_lists_every_host_and_verifies(tmp_path: Path) -> None:
    written = _written(tmp_path)
    document, signer = summary.verify(written.path)
    assert fingerprint(signer) == fingerprint(WHO.public_blob)
    assert document["technician"] == {
        "name": "Alice Tech",
        "email": "alice@example.com",
        "key": fingerprint(WHO.public_blob),
    }
    assert document["run"].startswith("run-20261203T180000Z-")
    assert document["started"] == "2026-12-03T18:00:00Z"
    assert document["exit_code"] == 3 and document["counts"] == {"changed": 1, "consent refused": 1}
    web1, web2 = document["hosts"]
    assert (web1["grant"], web1["transcript"], web1["transcript_sha256"]) == (
        "g-1",
        "/t/1.cast",
        "ab" * 32,
    )
    assert (web2["result"], web2["reason"], web2["ticket"]) == (
        "consent refused",
        "expired",
        "OPS-2",
    )
    assert written.tickets == ("OPS-1", "OPS-2")
    assert oct(written.path.stat().st_mode & 0o777) == "0o600"


def test_a_changed_byte_or_another_namespace_fails(tmp_path: Path) -> None:
    written = _written(tmp_path)
    original = written.path.read_bytes()
    written.path.write_bytes(original.replace(b'"changed"', b'"ok"     '))
    with pytest.raises(SignatureError):
        summary.verify(written.path)
    written.path.write_bytes(original)
    from toolkit.identity import sshsig

    other = sshsig.sign(WHO.signer, original, "toolkit-seal").armor()  # a transcript's namespace
    written.signature.write_text(other)
    with pytest.raises(SignatureError, match="namespace"):
        summary.verify(written.path)


def test_not_a_summary_is_refused(tmp_path: Path) -> None:
    from toolkit.identity import sshsig

    path = tmp_path / "x.json"
    data = json.dumps({"format": "something else"}).encode()
    path.write_bytes(data)
    path.with_name("x.json.sig").write_text(
        sshsig.sign(WHO.signer, data, summary.NAMESPACE).armor()
    )
    with pytest.raises(SignatureError, match="not a toolkit run summary"):
        summary.verify(path)


def test_attached_to_each_ticket_and_a_failure_is_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = _written(tmp_path)
    notes: list[str] = []
    assert summary.attach(written, written.tickets, note=notes.append) == ["OPS-1", "OPS-2"]
    assert notes == []

    def broken(*args: object, **kwargs: object) -> None:
        raise TicketBackendError("The ticket system answered 503.")

    monkeypatch.setattr("toolkit.tickets.attach.attach_files", broken)
    assert summary.attach(written, ["OPS-1"], note=notes.append) == []
    assert notes == [
        f"Could not attach the run summary to ticket OPS-1: The ticket system answered 503; "
        f"it stays at {written.path}."
    ]
