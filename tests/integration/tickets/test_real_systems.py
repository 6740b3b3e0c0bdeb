"""Redmine and Request Tracker 5 for real: transcripts attached, read back, downloaded, verified.

The systems are Debian's packages, installed by scripts/ticket-systems.sh
when missing and started once per test run on 127.0.0.1 (see conftest.py).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample, write_allowed_signers
from tests.integration.share_process import PASSPHRASE, Person, sharing
from tests.integration.test_share_connect import make_customer
from tests.integration.tickets.proxy import proxying
from tests.integration.tickets.systems import System
from toolkit.cli import run as toolkit
from toolkit.identity.signer import KeySigner
from toolkit.tickets.http import AttachmentTooLarge
from toolkit.tickets.outbox import Outbox
from toolkit.tickets.package import PARTS
from toolkit.tickets.plugins import open_backend

SYSTEMS = ["redmine", "rt"]
MIB = 1024 * 1024


@pytest.fixture(params=SYSTEMS)
def system(request: pytest.FixtureRequest, test_keyring: Path) -> System:
    found: System = request.getfixturevalue(request.param)
    return found


def login(system: System, url: str | None = None) -> None:
    args = ["tickets", "login", system.name, "--url", url or system.url, "--secret-stdin"]
    if system.name == "redmine":
        args += ["--option", "project=support"]
    stdin = sys.stdin
    sys.stdin = io.StringIO(system.credential + "\n")
    try:
        assert toolkit([*args, "--default"]) == 0
    finally:
        sys.stdin = stdin


def new_ticket(system: System, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert toolkit(["tickets", "new", "--subject", "Printer jams", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["backend"] == system.name
    return str(made["ticket"])


def sealed(folder: Path, signer: KeySigner, *, mib: int = 0) -> Path:
    """A sealed sample transcript; ``mib`` MiB of output that gzip cannot shrink much."""
    folder.mkdir(parents=True, exist_ok=True)
    chunks = iter(range(mib * 2))

    def body(rec: object) -> None:
        if next(chunks, None) is not None:
            rec.output(os.urandom(256 * 1024).hex().encode())  # type: ignore[attr-defined]

    events = max(12, mib * 2)
    return record_sample(folder / f"s-{time.monotonic_ns()}.cast", signer, events=events, body=body)


def tool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """toolkit as its own process, in this test's dirs and keyring."""
    env = {**os.environ, "TOOLKIT_KEY_PASSPHRASE": PASSPHRASE}
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


# -- credentials -----------------------------------------------------------------------


def test_login_keeps_the_key_in_the_keyring_only(redmine: System, test_keyring: Path) -> None:
    login(redmine)
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "toolkit" / "tickets.toml"
    text = config.read_text()
    assert redmine.credential not in text
    assert tomllib.loads(text) == {
        "default": "redmine",
        "redmine": {"url": redmine.url, "project": "support"},
    }
    assert redmine.credential in test_keyring.read_text()
    assert config.stat().st_mode & 0o777 == 0o600


def test_a_wrong_key_is_refused_with_what_to_do(
    redmine: System,
    test_keyring: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # login checks the key first: a wrong one is refused there and nothing is saved.
    stdin = sys.stdin
    sys.stdin = io.StringIO("0" * 40 + "\n")
    try:
        args = ["tickets", "login", "redmine", "--url", redmine.url, "--secret-stdin"]
        assert toolkit(args) == 5
    finally:
        sys.stdin = stdin
    shown = capsys.readouterr().err
    assert shown.startswith(
        f"redmine at {redmine.url} refused the API key (HTTP 401); nothing was saved."
    )
    assert not (Path(os.environ["XDG_CONFIG_HOME"]) / "toolkit" / "tickets.toml").exists()
    assert not test_keyring.exists() or "0" * 40 not in test_keyring.read_text()
    # A key that stops working later (revoked; here the environment's token, which wins).
    login(redmine)
    monkeypatch.setenv("TOOLKIT_TICKETS_REDMINE_TOKEN", "0" * 40)
    assert toolkit(["tickets", "new", "--subject", "x"]) == 5
    shown = capsys.readouterr().err
    assert "HTTP 401" in shown and "toolkit tickets login redmine --url" in shown
    assert "0" * 40 not in shown


# -- attach, read back, download ---------------------------------------------------------


def test_transcript_attached_read_back_and_downloaded_byte_exact(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    login(system)
    ticket = new_ticket(system, capsys)
    signer = new_signer()
    cast = sealed(tmp_path / "sealed", signer)
    # Latin-1 bytes that RT would re-encode as UTF-8 if they went up as text/plain.
    backend = open_backend()
    entry = Outbox().enqueue(system.name, ticket, cast, signer, backend.max_attachment_bytes)
    delivered = Outbox().deliver(entry, backend)
    assert delivered is not None and delivered.verdict == "SEALED"
    assert sorted(delivered.uploaded) == _attached(cast)
    assert Outbox().entries() == []
    assert system.attachment_names(ticket) == _attached(cast)
    out = tmp_path / "down"
    assert toolkit(["tickets", "download", ticket, "--to", str(out)]) == 0
    assert (out / cast.name).read_bytes() == cast.read_bytes()
    signers_file = write_allowed_signers(tmp_path / "allowed_signers", signer)
    assert toolkit(["verify", "--allowed-signers", str(signers_file), str(out / cast.name)]) == 0


def test_comment_says_who_what_verdict_and_how_to_verify(
    redmine: System, test_keyring: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    login(redmine)
    ticket = new_ticket(redmine, capsys)
    signer = new_signer()
    cast = sealed(tmp_path, signer)
    entry = Outbox().enqueue("redmine", ticket, cast, signer, None)
    assert Outbox().deliver(entry, open_backend()) is not None
    issue = redmine.api("GET", f"issues/{ticket}.json?include=journals")["issue"]
    notes = issue["journals"][-1]["notes"]
    for expected in (
        "Technician: Alice Tech <alice@example.com>",
        "Scope: diagnostics",
        "Operations: 12, refusals: 0",
        "Verified right before upload: SEALED",
        f"ssh-keygen -Y verify -f allowed_signers -I alice@example.com -n toolkit-transcript "
        f"-s {cast.name}.sig < {cast.name}",
    ):
        assert expected in notes


def test_20_mib_transcript_goes_to_redmine_in_parts_under_its_5_mib_limit(
    redmine: System, test_keyring: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    login(redmine)
    ticket = new_ticket(redmine, capsys)
    signer = new_signer()
    cast = sealed(tmp_path / "sealed", signer, mib=20)
    assert cast.stat().st_size > 20 * MIB
    backend = open_backend()
    assert backend.max_attachment_bytes == 5 * MIB
    # Redmine's own answer to the whole file: refused as too large.
    with pytest.raises(AttachmentTooLarge, match="exceeds the maximum"):
        backend.attach(ticket, [cast], "too big")
    entry = Outbox().enqueue("redmine", ticket, cast, signer, backend.max_attachment_bytes)
    assert entry.form == PARTS
    assert all((entry.folder / n).stat().st_size <= 5 * MIB for n in entry.files)
    delivered = Outbox().deliver(entry, backend)
    assert delivered is not None and delivered.verdict == "SEALED"
    out = tmp_path / "down"
    assert toolkit(["tickets", "download", ticket, "--to", str(out)]) == 0
    assert (out / cast.name).read_bytes() == cast.read_bytes()
    signers_file = write_allowed_signers(tmp_path / "allowed_signers", signer)
    capsys.readouterr()
    assert toolkit(["verify", "--allowed-signers", str(signers_file), str(out / cast.name)]) == 0
    assert "SEALED" in capsys.readouterr().out


# -- kill -9 ----------------------------------------------------------------------------


def test_kill_9_after_the_system_committed_attaches_exactly_once(
    system: System, tmp_path: Path, capsys: pytest.CaptureFixture[str], identity: Path
) -> None:
    with proxying(system.url) as proxy:
        login(system, proxy.url)
        ticket = new_ticket(system, capsys)
        shutil.copytree(identity, Path(os.environ["XDG_DATA_HOME"]) / "toolkit")
        signer = new_signer()
        cast = sealed(tmp_path / "sealed", signer)
        Outbox().enqueue(system.name, ticket, cast, signer, None)
        committing = ("PUT", "/issues/") if system.name == "redmine" else ("POST", "/comment")
        proxy.stall = lambda method, path: method == committing[0] and committing[1] in path
        env = {**os.environ, "TOOLKIT_KEY_PASSPHRASE": PASSPHRASE}
        sync = subprocess.Popen(
            [sys.executable, "-m", "toolkit", "tickets", "sync"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            assert proxy.stalled.wait(60), "the upload never reached the system"
        finally:
            os.killpg(sync.pid, signal.SIGKILL)
            sync.wait(10)
        assert system.attachment_names(ticket) == _attached(cast)
        assert len(Outbox().entries()) == 1  # nothing lost
        proxy.release()
        done = tool("tickets", "sync")
        assert done.returncode == 0, done.stderr
        assert "already there from an earlier try" in done.stderr
    assert Outbox().entries() == []
    assert system.attachment_names(ticket) == _attached(cast)


# -- whole sessions ---------------------------------------------------------------------


def _technician(identity: Path) -> None:
    shutil.copytree(identity, Path(os.environ["XDG_DATA_HOME"]) / "toolkit")


def _session(customer: Person, tmp_path: Path, ticket: str) -> subprocess.CompletedProcess[str]:
    with sharing(customer, "--policy", customer.root / "policy.toml", logs=tmp_path) as share:
        connect = tool(
            "connect", share.address, "--code", share.code, "--ticket", ticket, "--batch", "-",
            stdin="run uname -a\nrun true\n",
        )  # fmt: skip
        share.wait(30)
    return connect


def test_whole_session_attached_downloaded_and_sealed(
    system: System,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    identity: Path,
    signers: Path,
) -> None:
    login(system)
    ticket = new_ticket(system, capsys)
    _technician(identity)
    connect = _session(make_customer(tmp_path / "customer"), tmp_path, ticket)
    assert connect.returncode == 0, connect.stderr
    assert f"attached to {system.name} ticket {ticket} (read back, SHA-256 matches)" in (
        connect.stderr
    )
    names = system.attachment_names(ticket)
    (name,) = [n for n in names if n.endswith(".cast")]
    assert len(names) == 4
    out = tmp_path / "down"
    assert toolkit(["tickets", "download", ticket, "--to", str(out)]) == 0
    local = Path(os.environ["XDG_DATA_HOME"]) / "toolkit" / "transcripts" / name
    assert (out / name).read_bytes() == local.read_bytes()
    capsys.readouterr()
    checked = ["verify", "--json", "--allowed-signers", str(signers), str(out / name)]
    assert toolkit(checked) == 0
    assert json.loads(capsys.readouterr().out)["verdict"] == "SEALED"


def test_backend_down_then_session_then_sync_attaches_once(
    redmine: System,
    test_keyring: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    identity: Path,
) -> None:
    login(redmine)
    ticket = new_ticket(redmine, capsys)
    _technician(identity)
    redmine.stop()
    try:
        connect = _session(make_customer(tmp_path / "customer"), tmp_path, ticket)
        assert connect.returncode == 0, connect.stderr
        assert "waits in the outbox" in connect.stderr
        waiting = json.loads(tool("tickets", "outbox", "--json").stdout)
        assert len(waiting) == 1 and "cannot be reached" in waiting[0]["last_error"]
    finally:
        redmine.start()
    done = tool("tickets", "sync")
    assert done.returncode == 0, done.stderr
    assert tool("tickets", "sync").stderr.startswith("The outbox is empty")
    names = redmine.attachment_names(ticket)
    assert len(names) == 4 and waiting[0]["transcript"] in names


def _attached(cast: Path) -> list[str]:
    """What a plain transcript puts on a ticket: itself, its seal, the signed manifest."""
    stem = cast.name.removesuffix(".cast")
    return sorted([cast.name, cast.name + ".sig", f"{stem}.SHA256SUMS", f"{stem}.SHA256SUMS.sig"])
