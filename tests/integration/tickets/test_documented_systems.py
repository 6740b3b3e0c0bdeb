"""Jira Cloud, Zendesk and ServiceNow against fakes that enforce their documented API shapes."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample
from tests.integration.tickets.fakes import SECRET, USER, Fake, serving
from toolkit.cli import run as toolkit
from toolkit.errors import TicketBackendError
from toolkit.tickets.outbox import Outbox
from toolkit.tickets.plugins import open_backend


@pytest.fixture(params=["jira", "zendesk", "servicenow"])
def fake(request: pytest.FixtureRequest, test_keyring: Path) -> Iterator[Fake]:
    with serving(request.param) as running:
        yield running


def login(fake: Fake, secret: str = SECRET, *options: str) -> None:
    args = ["tickets", "login", fake.system, "--url", fake.url, "--user", USER, "--secret-stdin"]
    if fake.system == "jira":
        args += ["--option", "project=SUP"]
    for option in options:
        args += ["--option", option]
    stdin = sys.stdin
    sys.stdin = io.StringIO(secret + "\n")
    try:
        assert toolkit([*args, "--default"]) == 0
    finally:
        sys.stdin = stdin


def ticket(capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert toolkit(["tickets", "new", "--subject", "VPN drops", "--json"]) == 0
    return str(json.loads(capsys.readouterr().out)["ticket"])


def test_attached_read_back_and_downloaded(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    login(fake)
    number = ticket(capsys)
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer)
    entry = Outbox().enqueue(fake.system, number, cast, signer, None)
    delivered = Outbox().deliver(entry, open_backend())
    assert delivered is not None and delivered.verdict == "SEALED", fake.refusals
    record = fake.records[number]
    assert sorted(f["name"] for f in record.files) == [
        "s.SHA256SUMS",
        "s.SHA256SUMS.sig",
        "s.cast",
        "s.cast.sig",
    ]
    said = [
        json.dumps(c["body"] if isinstance(c, dict) and "files" in c else c)
        for c in record.comments
    ]
    assert any("Verified right before upload: SEALED" in text for text in said)
    out = tmp_path / "down"
    assert toolkit(["tickets", "download", number, "--to", str(out)]) == 0, fake.refusals
    assert (out / "s.cast").read_bytes() == cast.read_bytes()
    # A second delivery of the same files finds them there and attaches nothing.
    again = Outbox().enqueue(fake.system, number, cast, signer, None)
    redo = Outbox().deliver(again, open_backend())
    assert redo is not None and redo.uploaded == ()
    assert len(record.files) == 4  # .cast, .sig and the signed manifest, once


def test_a_wrong_secret_is_refused_and_the_transcript_waits(
    fake: Fake, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    login(fake)
    number = ticket(capsys)
    # The key is revoked after login (login itself refuses a wrong one): the environment's
    # token, which wins over the stored one, stands for it.
    monkeypatch.setenv(f"TOOLKIT_TICKETS_{fake.system.upper()}_TOKEN", "not-the-token")
    signer = new_signer()
    cast = record_sample(tmp_path / "s.cast", signer)
    Outbox().enqueue(fake.system, number, cast, signer, None)
    capsys.readouterr()
    assert toolkit(["tickets", "sync"]) == 5
    shown = capsys.readouterr().err
    assert "HTTP 401" in shown and "not-the-token" not in shown
    assert toolkit(["tickets", "outbox", "--json"]) == 0
    waiting = json.loads(capsys.readouterr().out)
    assert len(waiting) == 1 and "HTTP 401" in waiting[0]["last_error"]


def test_the_systems_size_answer_keeps_the_transcript_in_the_outbox(
    tmp_path: Path, test_keyring: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving("servicenow", limit=100_000) as fake:
        login(fake)
        number = ticket(capsys)
        signer = new_signer()
        cast = record_sample(tmp_path / "s.cast", signer, events=2000)
        assert cast.stat().st_size > 100_000
        entry = Outbox().enqueue("servicenow", number, cast, signer, None)
        with pytest.raises(TicketBackendError, match="exceeds the maximum"):
            Outbox().deliver(entry, open_backend())
        assert len(Outbox().entries()) == 1
        # Told the real limit, the next transcript goes up compressed (and split) to fit.
        login(fake, SECRET, "max_attachment_bytes=100000")
        backend = open_backend()
        second = record_sample(tmp_path / "t.cast", signer, events=2000)
        entry = Outbox().enqueue("servicenow", number, second, signer, backend.max_attachment_bytes)
        assert entry.form in ("gzip", "parts")
        assert Outbox().deliver(entry, backend) is not None
        out = tmp_path / "down"
        assert toolkit(["tickets", "download", number, "--to", str(out)]) == 0
        assert (out / "t.cast").read_bytes() == second.read_bytes()
