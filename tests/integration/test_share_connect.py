"""`toolkit share` and `toolkit connect` end to end: real processes, a HOME each, loopback.

The customer and the technician each get their own HOME and XDG dirs; the
technician's identity is made once per test run and copied in. Every process
is ended (its whole process group) when a test leaves, passed or failed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pty
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import tool
from tests.integration.share_process import (
    EMAIL,
    NAME,
    RUN_TIMEOUT,
    Person,
    Share,
    end,
    sharing,
)
from toolkit.transcript.models import NAMESPACE_SEAL, Event

NOTES = "hello from the customer\n"
# Stands in for a private key: only the marker matters, which must never leave the agent.
SECRET_KEY = "customer-private-key-material do-not-leak-5f1e\n"
#: A sleep whose argument no other process on the machine is likely to have.
SLEEP = "29"
POLICY = f"""\
[files]
# ~/.ssh is allowed on purpose: the built-in deny list must still win.
allow = ["~/notes.txt", "~/.ssh/**"]
[commands]
diagnostics = [
    ["uname", "-a"],
    ["true"],
    ["false"],
    ["toolkit-no-such-program-4711"],
    ["sleep", "{{seconds}}"],
]
[placeholders]
seconds = "^{SLEEP}$"
"""
CODE = re.compile(r"^\d{3}-\d{3}-\d{3}$")


# -- the people ------------------------------------------------------------------


def make_technician(root: Path, identity: Path) -> Person:
    person = Person.make(root)
    shutil.copytree(identity, person.data)
    return person


def make_customer(root: Path) -> Person:
    person = Person.make(root)
    (person.home / "notes.txt").write_text(NOTES)
    ssh = person.home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "id_rsa").write_text(SECRET_KEY)
    (ssh / "id_rsa").chmod(0o600)
    (root / "policy.toml").write_text(POLICY)
    return person


@pytest.fixture
def technician(tmp_path: Path, identity: Path) -> Person:
    return make_technician(tmp_path / "technician", identity)


@pytest.fixture
def customer(tmp_path: Path) -> Person:
    return make_customer(tmp_path / "customer")


@pytest.fixture
def share(customer: Person, tmp_path: Path) -> Iterator[Share]:
    """`toolkit share` with the test policy, running for the whole test."""
    with sharing(customer, "--policy", customer.root / "policy.toml", logs=tmp_path) as running:
        yield running


def connect(
    technician: Person,
    share: Share,
    batch: str,
    *args: str,
    code: str | None = None,
    ticket: str = "T-1",
) -> subprocess.CompletedProcess[str]:
    return technician.toolkit(
        "connect",
        share.address,
        "--code",
        code or share.code,
        "--ticket",
        ticket,
        "--batch",
        "-",
        *args,
        stdin=batch,
    )


def start_connect(
    technician: Person, share: Share, batch: str, code: str | None = None
) -> subprocess.Popen[str]:
    """`toolkit connect` left running (its batch in a file); end() it when done."""
    path = technician.root / "batch"
    path.write_text(batch)
    return technician.popen(
        "connect", share.address, "--code", code or share.code, "--ticket", "T-1", "--batch", path
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def result_lines(text: str) -> list[dict[str, Any]]:
    """The result lines of `toolkit connect --json` (not its closing summary line)."""
    return [line for line in json_lines(text) if line["type"] == "result"]


def wrong(code: str, by: int = 1) -> str:
    digits = f"{(int(code.replace('-', '')) + by) % 10**9:09d}"
    return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"


# -- transcripts -------------------------------------------------------------------


def events(path: Path) -> list[dict[str, Any]]:
    """The structured events of a transcript, in order."""
    found = []
    for line in path.read_bytes().splitlines()[1:]:
        event = Event.from_line(line)
        if event.code == "e":
            found.append(event.fields())
    return found


def assert_code_nowhere(code: str, *roots: Path, but: Path | None = None) -> None:
    """Not in any file below ``roots`` (but the --code-file), in any of its written forms."""
    digits = code.replace("-", "")
    forms = [code, digits, f"{digits[:3]} {digits[3:6]} {digits[6:]}"]
    checked = 0
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path == but:
                continue
            data = path.read_bytes()
            checked += 1
            for form in forms:
                assert form.encode() not in data, f"the code is in {path}"
    assert checked >= 4, "too few files to mean anything"


def attached(technician: Person, ticket: str = "T-1") -> list[Path]:
    return locations(technician.toolkit("tickets", "show", ticket, "--json"))


def locations(shown: subprocess.CompletedProcess[str]) -> list[Path]:
    """The attachments' paths, from `toolkit tickets show T --json`."""
    assert shown.returncode == 0, shown.stderr
    return [Path(a["location"]) for a in json.loads(shown.stdout)["attachments"]]


def the_transcript(attachments: list[Path]) -> Path:
    casts = [p for p in attachments if p.suffix == ".cast"]
    assert len(casts) == 1, attachments
    return casts[0]


def technician_transcript(technician: Person, ticket: str = "T-1") -> Path:
    return the_transcript(attached(technician, ticket))


def customer_copy(share_stderr: str) -> Path:
    found = re.search(r"^Your copy of the transcript: (.+)$", share_stderr, re.MULTILINE)
    assert found, share_stderr
    return Path(found.group(1))


def verified(person: Person, transcript: Path, signers: Path) -> dict[str, Any]:
    done = person.toolkit("verify", "--json", "--allowed-signers", signers, transcript)
    report: dict[str, Any] = json.loads(done.stdout)
    assert done.returncode == 0, (report, done.stderr)
    assert report["verdict"] == "SEALED", report
    return report


# -- the happy path: one session, looked at from every side ----------------------------

HAPPY_BATCH = """\
# diagnostics, an allowed read, a refused read and a refused run
diag system
run uname -a
read ~/notes.txt
stat ~/notes.txt
ls ~
read ~/.ssh/id_rsa
run id -un
"""


@dataclass(frozen=True)
class Session:
    customer: Person
    technician: Person
    code: str
    code_file: Path
    share_lines: list[dict[str, Any]]
    share_exit: int
    share_stderr: str
    connect: subprocess.CompletedProcess[str]
    tickets: subprocess.CompletedProcess[str]  # toolkit tickets show T-1 --json

    @property
    def attachments(self) -> list[Path]:
        return locations(self.tickets)

    @property
    def transcript(self) -> Path:
        """The technician's transcript, attached to the ticket."""
        return the_transcript(self.attachments)

    @property
    def copy(self) -> Path:
        """The customer's copy, where toolkit share said it is."""
        return customer_copy(self.share_stderr)


@pytest.fixture(scope="module")
def happy(tmp_path_factory: pytest.TempPathFactory, identity: Path) -> Session:
    root = tmp_path_factory.mktemp("happy")
    customer = make_customer(root / "customer")
    technician = make_technician(root / "technician", identity)
    code_file = customer.home / "share-code.txt"
    args = ("--policy", customer.root / "policy.toml", "--code-file", code_file)
    with sharing(customer, *args, logs=root / "logs") as running:
        done = connect(technician, running, HAPPY_BATCH, "--json")
        share_exit = running.wait(10)
    return Session(
        customer,
        technician,
        running.code,
        code_file,
        list(running.lines),
        share_exit,
        running.stderr(),
        done,
        technician.toolkit("tickets", "show", "T-1", "--json"),
    )


def test_happy_path_exits_3_because_something_was_refused(happy: Session) -> None:
    assert happy.connect.returncode == 3, happy.connect.stderr
    assert happy.share_exit == 0, happy.share_stderr
    results = result_lines(happy.connect.stdout)
    assert [r["command"] for r in results] == [
        "diag system",
        "run uname -a",
        "read ~/notes.txt",
        "stat ~/notes.txt",
        "ls ~",
        "read ~/.ssh/id_rsa",
        "run id -un",
    ]
    assert [r["status"] for r in results] == ["ok"] * 5 + ["refused"] * 2


def test_happy_path_json_fields(happy: Session) -> None:
    diag, run, read, stat, ls, refused_read, refused_run = result_lines(happy.connect.stdout)
    for result in (diag, run, read, stat, ls, refused_read, refused_run):
        assert {"command", "status", "exit_status", "result"} <= result.keys()
    assert diag["exit_status"] == 0
    assert [s["argv"][0] for s in diag["result"]["steps"]] == ["uname", "uptime", "free", "df"]
    assert diag["stdout"].startswith("Linux")
    assert run["exit_status"] == 0 and run["stdout"].startswith("Linux")
    notes = str(happy.customer.home / "notes.txt")
    assert read["content"] == NOTES
    assert read["result"]["path"] == notes
    assert read["result"]["size"] == len(NOTES)
    assert read["result"]["sha256"] == hashlib.sha256(NOTES.encode()).hexdigest()
    assert stat["result"]["kind"] == "file" and stat["result"]["size"] == len(NOTES)
    names = [e["name"] for e in ls["result"]["entries"]]
    assert "notes.txt" in names and ".ssh" not in names
    for refusal in (refused_read, refused_run):
        assert refusal["error"]["code"] == "refused"
        assert refusal["error"]["message"].startswith("refused")
        assert refusal["exit_status"] is None
        assert refusal["content"] is None and refusal["stdout"] is None
    assert "do-not-leak" not in happy.connect.stdout + happy.connect.stderr


def test_share_prints_one_json_line_with_code_address_and_expiry(happy: Session) -> None:
    (line,) = happy.share_lines
    assert set(line) == {"code", "address", "port", "host_key", "expires"}
    assert CODE.match(line["code"])
    assert line["address"] == "127.0.0.1"
    assert isinstance(line["port"], int) and 0 < line["port"] < 65536
    assert line["host_key"].startswith("SHA256:")
    expires = datetime.datetime.fromisoformat(line["expires"])
    left = (expires - datetime.datetime.now(datetime.UTC)).total_seconds()
    assert 500 < left <= 601  # the default 10 minutes, less the test's own time
    assert f"Agent host key {line['host_key']}" in happy.connect.stderr


def test_code_file_has_mode_0600(happy: Session) -> None:
    assert happy.code_file.stat().st_mode & 0o777 == 0o600
    assert happy.code_file.read_text().strip() == happy.code


def test_technician_transcript_is_attached_and_sealed(happy: Session, signers: Path) -> None:
    files = happy.attachments
    assert sorted(p.name.split(".", 1)[1] for p in files) == [
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "cast",
        "cast.sig",
    ]
    assert all(p.is_file() and p.is_relative_to(happy.technician.data) for p in files)
    transcript = happy.transcript
    assert f"Verify it: toolkit verify {transcript}" in happy.connect.stderr
    report = verified(happy.technician, transcript, signers)
    assert report["ticket"] == "T-1"
    assert report["technician"]["email"] == EMAIL
    assert report["trusted_as"] == EMAIL
    assert report["agent_host_key"] == happy.share_lines[0]["host_key"]
    assert report["end_reason"] == "completed"
    assert (report["operations"], report["refusals"]) == (5, 2)


def test_technician_transcript_verifies_with_ssh_keygen(
    happy: Session, signers: Path, ssh_keygen: str
) -> None:
    said = _ssh_keygen_verify(ssh_keygen, signers, NAMESPACE_SEAL, happy.transcript)
    assert "Good" in said


def _ssh_keygen_verify(ssh_keygen: str, signers: Path, namespace: str, signed: Path) -> str:
    """``ssh-keygen -Y verify`` of ``signed`` with ``signed.sig``; its output (must pass)."""
    argv = [ssh_keygen, "-Y", "verify", "-f", str(signers), "-I", EMAIL, "-n", namespace]
    with signed.open("rb") as data:
        done = subprocess.run(
            [*argv, "-s", f"{signed}.sig"],
            stdin=data,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_ticket_manifest_verifies_with_ssh_keygen_and_lists_the_files(
    happy: Session, signers: Path, ssh_keygen: str
) -> None:
    (manifest,) = [p for p in happy.attachments if p.name.endswith(".SHA256SUMS")]
    _ssh_keygen_verify(ssh_keygen, signers, "toolkit-manifest", manifest)
    listed: dict[str, str] = {}
    for line in manifest.read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    transcript = happy.transcript
    for path in (transcript, Path(f"{transcript}.sig")):
        assert listed[path.name] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_customer_copy_is_sealed_by_the_agent_host_key(happy: Session) -> None:
    copy = happy.copy
    assert copy.is_relative_to(happy.customer.data)
    signers = copy.with_name(copy.name + ".allowed_signers")
    assert f"toolkit verify --allowed-signers {signers} {copy}" in happy.share_stderr
    report = verified(happy.customer, copy, signers)
    assert report["ticket"] == "T-1"
    assert report["signer"] == happy.share_lines[0]["host_key"]
    assert report["technician"]["email"] == EMAIL
    assert report["refusals"] == 2
    assert report["end_reason"].endswith("completed")


def _assert_records_the_session(found: list[dict[str, Any]], home: Path) -> None:
    types = [e["type"] for e in found]
    assert types[0] == "consent" and types[-1] == "session_end"
    consent = found[0]
    assert consent["method"] == "spake2" and consent["result"] == "approved"
    assert consent["ticket"] == "T-1" and consent["granted"] == ["diagnostics"]
    ops = [e for e in found if e["type"] == "operation" and e.get("op") not in ("hello", "end")]
    assert [e["op"] for e in ops] == ["diag", "run", "read", "stat", "list"]
    read = next(e for e in ops if e["op"] == "read")
    assert read["size"] == len(NOTES)
    assert read["sha256"] == hashlib.sha256(NOTES.encode()).hexdigest()
    assert str(home / "notes.txt") in json.dumps(read)
    refusals = [e for e in found if e["type"] == "refusal"]
    assert len(refusals) == 2, refusals
    assert [r["op"] for r in refusals] == ["read", "run"]
    assert all(r["error"] == "refused" for r in refusals)


def test_transcripts_hold_consent_every_operation_and_refusal(happy: Session) -> None:
    technician = events(happy.transcript)
    _assert_records_the_session(technician, happy.customer.home)
    assert technician[-1]["reason"] == "completed"
    customer = events(happy.copy)
    _assert_records_the_session(customer, happy.customer.home)
    assert "completed" in customer[-1]["reason"]
    for path in (happy.transcript, happy.copy):
        assert b"do-not-leak" not in path.read_bytes()


def test_code_is_nowhere_but_the_code_file(happy: Session) -> None:
    roots = (happy.customer.root, happy.technician.root)
    assert_code_nowhere(happy.code, *roots, but=happy.code_file)
    assert happy.code_file.is_relative_to(happy.customer.home)  # it was looked for, and skipped
    digits = happy.code.replace("-", "")
    for shown in (happy.share_stderr, happy.connect.stdout, happy.connect.stderr):
        assert happy.code not in shown and digits not in shown


def test_customer_sees_each_operation_as_a_line(happy: Session) -> None:
    lines = happy.share_stderr.splitlines()
    notes = str(happy.customer.home / "notes.txt")
    expected = [
        "diagnostic system -> exit 0",
        "run uname -a -> exit 0",
        f"read {notes} ({len(NOTES)} bytes)",
        f"stat {notes}",
        f"list {happy.customer.home} ",
        "'~/.ssh/id_rsa'",
        "'id -un'",
    ]
    at = []
    for text in expected:
        matching = [i for i, line in enumerate(lines) if text in line]
        assert len(matching) == 1, (text, happy.share_stderr)
        at.append(matching[0])
    assert at == sorted(at)  # in the order they happened
    assert "refused" in lines[at[5]] and "refused" in lines[at[6]]
    assert "refused: refused" not in happy.share_stderr  # said once


# -- exit codes --------------------------------------------------------------------------


def test_exit_0_when_everything_succeeded(technician: Person, share: Share) -> None:
    done = connect(technician, share, "run true\nread ~/notes.txt\nexit\nrun false\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == NOTES  # people get the file itself on stdout
    assert share.wait(10) == 0
    ops = [e["op"] for e in events(technician_transcript(technician)) if "op" in e]
    assert ops == ["run", "read"]  # nothing after exit


def test_exit_1_when_a_command_failed(technician: Person, share: Share) -> None:
    batch = "run true\nrun false\nrun toolkit-no-such-program-4711\n"
    done = connect(technician, share, batch, "--json")
    assert done.returncode == 1, done.stderr
    results = result_lines(done.stdout)
    assert [r["status"] for r in results] == ["ok", "failed", "failed"]
    assert [r["exit_status"] for r in results] == [0, 1, 127]
    assert "No such file" in results[2]["stderr"]


def test_refused_outranks_failed(technician: Person, share: Share) -> None:
    done = connect(technician, share, "run id -un\nrun false\nrun true\n", "--json")
    assert done.returncode == 3, done.stderr
    assert [r["status"] for r in result_lines(done.stdout)] == ["refused", "failed", "ok"]


def test_a_full_disk_on_the_technician_side_ends_the_session_and_says_so(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    """The technician's transcript cannot grow past 256 KiB (RLIMIT_FSIZE on connect)."""
    big = customer.home / "big.txt"
    big.write_bytes(b"a line of the customer's log file, long enough to add up\n" * 20_000)
    policy = customer.root / "big-policy.toml"
    policy.write_text(
        f'[files]\nallow = ["~/notes.txt"]\n[commands]\ndiagnostics = [["cat", "{big}"]]\n'
    )
    with sharing(customer, "--policy", policy, logs=tmp_path) as share:
        done = technician.toolkit(
            "connect",
            share.address,
            "--code",
            share.code,
            "--ticket",
            "T-1",
            "--batch",
            "-",
            stdin=f"read ~/notes.txt\nrun cat {big}\nread ~/notes.txt\n",
            max_file_size=256 * 1024,
        )
        assert share.wait(10) == 0
        share_stderr = share.stderr()
    assert done.returncode == 1, done.stderr
    assert "Cannot write the transcript " in done.stderr and "File too large" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout.startswith(NOTES)  # the first read
    assert done.stdout.count(NOTES) == 1  # nothing after the failure ran
    # Not attached, not sealed; what its checkpoints cover still verifies.
    casts = sorted((technician.data / "transcripts").glob("*.cast"))
    assert len(casts) == 1 and not casts[0].with_name(casts[0].name + ".sig").exists()
    assert casts[0].stat().st_size == 256 * 1024
    checked = technician.toolkit("verify", "--json", casts[0])
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["verdict"] == "UNSEALED"
    # The customer's copy is sealed, and says why the session ended.
    copy = customer_copy(share_stderr)
    ended = [e for e in events(copy) if e["type"] == "session_end"]
    assert ended[0]["reason"] == (
        "the technician ended the session: the technician's transcript could not be written"
    )
    trust = copy.with_name(copy.name + ".allowed_signers")
    assert customer.toolkit("verify", "--allowed-signers", trust, copy).returncode == 0


def test_a_full_disk_on_the_customer_side_ends_the_session_and_says_so(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    """The customer's copy cannot grow past 16 KiB; its first 64 KiB of events do not fit."""
    policy = customer.root / "policy.toml"
    limit = 16 * 1024
    with sharing(customer, "--policy", policy, logs=tmp_path, max_file_size=limit) as share:
        done = connect(technician, share, "run true\n" * 600, "--json")
        assert share.wait(10) == 1
        share_stderr = share.stderr()
    assert done.returncode == 3, done.stderr
    said = "The customer's transcript could not be written, so the session ended."
    assert said in done.stderr, done.stderr
    ran = result_lines(done.stdout)
    assert 0 < len(ran) < 600 and all(r["status"] == "ok" for r in ran)
    assert "Cannot write the transcript " in share_stderr and "File too large" in share_stderr
    assert "Your copy of the transcript" not in share_stderr
    assert "Traceback" not in share_stderr
    found = re.search(r"Cannot write the transcript (\S+\.cast): File too large", share_stderr)
    assert found, share_stderr
    checked = customer.toolkit("verify", "--json", found.group(1))
    assert checked.returncode == 1
    assert json.loads(checked.stdout)["verdict"] == "UNSEALED"
    # The technician's copy is whole and sealed, with the reason the customer's side gave.
    ended = [e for e in events(technician_transcript(technician)) if e["type"] == "session_end"]
    assert ended[0]["reason"] == said


def test_a_transcript_the_customer_side_cannot_create_starts_no_session(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    """Where the customer's copies go is a file, not a directory: no session, and share says so."""
    customer.data.mkdir(parents=True, exist_ok=True)
    (customer.data / "transcripts").write_text("in the way\n")
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path) as share:
        done = connect(technician, share, "run true\n")
        assert share.wait(10) == 1
        share_stderr = share.stderr()
    # The technician hears that the customer's side could not start the session (exit 1),
    # not that the agent could not be reached (it was told "check the address", exit 4).
    assert done.returncode == 1, done.stderr
    assert "could not start the session" in done.stderr, done.stderr
    assert "Cannot reach" not in done.stderr and "Traceback" not in done.stderr
    assert "Cannot create the transcript " in share_stderr, share_stderr
    assert "Traceback" not in share_stderr
    assert not list((technician.data / "transcripts").glob("*.cast"))  # nothing ran


def test_a_full_disk_before_the_session_tells_the_technician_the_session_could_not_start(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    """No byte of the customer's copy fits: the technician hears why, exit 1, not 4."""
    policy = customer.root / "policy.toml"
    with scripted_share(customer, "--policy", policy, logs=tmp_path, max_file_size=64) as share:
        done = connect(technician, share, "run true\n")
        assert share.wait(10) == 1
    share_stderr = share.stderr()  # all of it: its reader is done once the block is
    assert done.returncode == 1, done.stderr
    assert "could not start the session" in done.stderr, done.stderr
    assert "Cannot reach" not in done.stderr and "Traceback" not in done.stderr
    assert "File too large" in share_stderr and "Traceback" not in share_stderr
    assert not list((technician.data / "transcripts").glob("*.cast"))


@contextmanager
def connect_on_terminal(
    technician: Person, share: Share
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`toolkit connect` at its prompt, its stdin a pseudo-terminal; yields it and the pty."""
    controller, terminal = pty.openpty()
    try:
        proc = technician.popen(
            "connect", share.address, "--code", share.code, "--ticket", "T-1", stdin=terminal
        )
    except BaseException:
        os.close(controller)
        raise
    finally:
        os.close(terminal)
    try:
        yield proc, controller
    finally:
        end(proc)
        os.close(controller)


def test_prompt_on_a_terminal_says_what_was_wrong_and_goes_on(
    technician: Person, share: Share
) -> None:
    with connect_on_terminal(technician, share) as (proc, terminal):
        os.write(terminal, b"frobnicate\nhelp frobnicate\nrun true\nexit\n")
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "toolkit> " in stdout
    assert "Unknown command 'frobnicate'" in stderr
    assert "No help for 'frobnicate'" in stderr
    assert share.wait(10) == 0
    found = events(technician_transcript(technician))
    assert [e["op"] for e in found if "op" in e] == ["run"]
    assert found[-1]["reason"] == "the technician ended the session"


def test_prompt_hears_at_once_when_the_customer_ends_it(
    technician: Person, share: Share, signers: Path
) -> None:
    with connect_on_terminal(technician, share) as (proc, _):
        share.wait_for_stderr("] session started\n")  # the technician's hello: at the prompt
        share.interrupt()
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        took = time.monotonic() - start
    assert took < 3, took
    assert proc.returncode == 3, stderr
    assert "The customer ended the session" in stderr
    assert "Fatal Python error" not in stderr
    assert share.wait(5) == 130
    report = verified(technician, technician_transcript(technician), signers)
    assert "the customer ended the session (ctrl-c)" in report["end_reason"].lower()


QUESTION = "Allow this technician in? [y/n] (n): "


def test_customer_declines_then_approves_at_the_terminal(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    policy = customer.root / "policy.toml"
    with sharing(customer, "--policy", policy, logs=tmp_path, terminal=True) as share:
        first = start_connect(technician, share, "run true\n")
        try:
            shown = share.wait_for_stderr(QUESTION)
            share.type("n\n")
            _, declined = first.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(first)
        assert first.returncode == 3, declined
        assert "declined" in declined
        for text in (NAME, EMAIL, "ticket       T-1", "asks for     diagnostics", "SHA256:"):
            assert text in shown
        # A declined code is used up; share ends unless the customer asks for a new one.
        assert share.line(1, timeout=5) == {
            "event": "declined",
            "reason": "declined",
            "ask": "new-code",
        }
        share.type("n\n")
        fresh = share.line(2, timeout=5)
        assert fresh["code"] != share.code

        second = start_connect(technician, share, "run true\n", code=fresh["code"])
        try:
            share.wait_for_stderr(QUESTION, count=2)
            share.type("maybe\ny\n")
            _, approved = second.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(second)
        assert second.returncode == 0, approved
        assert "Please answer y or n." in share.stderr()
        assert "WARNING" not in share.stderr()  # nobody used --yes
        assert share.wait(10) == 0


def test_customer_ctrl_c_while_asked_ends_share_cleanly(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    with sharing(customer, logs=tmp_path, terminal=True) as share:
        waiting = start_connect(technician, share, "run true\n")
        try:
            share.wait_for_stderr(QUESTION)
            share.interrupt()
            assert share.wait(5) == 130, share.stderr()
            _, stderr = waiting.communicate(timeout=10)
        finally:
            end(waiting)
    assert waiting.returncode in (3, 4), stderr
    assert "Fatal Python error" not in share.stderr()
    assert not (technician.data / "tickets").exists()


# -- the code: tries, expiry, reuse --------------------------------------------------------


def scripted_share(customer: Person, *args: str | Path, **options: Any) -> Any:
    """``toolkit share --yes --json ARGS`` run by a script: its stdin a pipe the test writes."""
    return sharing(customer, *args, scripted=True, **options)


def ask_for_a_new_code(share: Share) -> None:
    """What a script does after a code-unusable line: one line on share's stdin."""
    assert share.proc.stdin is not None
    share.proc.stdin.write("new-code\n")
    share.proc.stdin.flush()


def test_three_wrong_codes_burn_it_and_share_makes_a_new_one_only_when_asked(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    code_file = tmp_path / "code"
    policy = customer.root / "policy.toml"
    with scripted_share(
        customer, "--policy", policy, "--code-file", code_file, logs=tmp_path
    ) as share:
        old = share.code
        assert code_file.read_text().strip() == old
        messages = []
        for by in (1, 2, 3):
            done = connect(technician, share, "run true\n", code=wrong(old, by))
            assert done.returncode == 3, done.stderr
            messages.append(done.stderr)
        assert "2 tries left" in messages[0] and "1 try left" in messages[1]
        assert "burned" in messages[2]
        burned = share.line(1, timeout=5)
        assert burned == {
            "event": "code-unusable",
            "reason": "burned",
            "failed_tries": {"127.0.0.1": 3},
            "ask": "new-code",
        }
        assert "the code is burned after 3 failed tries (3 from 127.0.0.1)" in share.stderr()
        # The burned code stays on: no new code comes unless someone asks for it.
        again = connect(technician, share, "run true\n", code=old)
        assert again.returncode == 3 and "burned" in again.stderr, again.stderr
        assert len(share.lines) == 2 and code_file.read_text().strip() == old

        ask_for_a_new_code(share)
        fresh = share.line(2, timeout=5)
        assert CODE.match(fresh["code"]) and fresh["code"] != old
        assert fresh["port"] == share.line()["port"]
        assert fresh["host_key"] == share.line()["host_key"]
        assert code_file.read_text().strip() == fresh["code"]
        assert code_file.stat().st_mode & 0o777 == 0o600

        # The old code now is an old code: said so, and the new one loses no try.
        refused = connect(technician, share, "run true\n", code=old)
        assert refused.returncode == 3, refused.stderr
        assert "expired or the customer replaced it" in refused.stderr
        works = connect(technician, share, "run true\n", code=fresh["code"])
        assert works.returncode == 0, works.stderr
        assert share.wait(10) == 0
        for code in (old, fresh["code"], *(wrong(old, by) for by in (1, 2, 3))):
            assert code not in share.stderr()
    # One session: its transcript, its seal, and the signed manifest of the two.
    assert len(attached(technician)) == 4
    for code in (old, fresh["code"]):
        assert_code_nowhere(code, customer.root, technician.root)


def test_expired_code_stays_expired_until_the_customer_asks(
    technician: Person, customer: Person, tmp_path: Path
) -> None:
    with scripted_share(customer, "--ttl", "1", logs=tmp_path) as share:
        old = share.code
        time.sleep(1.0)  # the code's whole life (--ttl 1); it was made before it was printed
        done = connect(technician, share, "exit\n", code=old)
        assert done.returncode == 3, done.stderr
        assert "expired" in done.stderr and "ask for a new one" in done.stderr
        assert "Consent passed" not in done.stderr
        assert "session started" not in share.stderr()
        expired = share.line(1, timeout=5)  # said once, and no new code on its own
        assert expired == {
            "event": "code-unusable",
            "reason": "expired",
            "failed_tries": {},
            "ask": "new-code",
        }
        assert "the code expired" in share.stderr()
        ask_for_a_new_code(share)
        assert share.line(2, timeout=5)["code"] != old
    assert not (technician.data / "tickets").exists()


def test_code_is_refused_while_its_session_runs(
    technician: Person, share: Share, signers: Path
) -> None:
    first = start_connect(technician, share, f"run true\nrun sleep {SLEEP}\n")
    try:
        share.wait_for_stderr("run true -> exit 0")
        again = connect(technician, share, "run true\n", ticket="T-2")
        assert again.returncode == 3, again.stderr
        assert "session started" not in again.stderr
        assert first.poll() is None  # the first session goes on
        assert share.stderr().count("session started:") == 1

        first.send_signal(2)  # the technician's Ctrl-C ends it
        assert first.wait(5) == 130
        assert share.wait(5) == 0
    finally:
        end(first)
    report = verified(technician, technician_transcript(technician), signers)
    assert "interrupted by the technician" in report["end_reason"]
    assert not (technician.data / "tickets" / "T-2").exists()


def test_code_is_refused_after_its_session(technician: Person, share: Share) -> None:
    first = connect(technician, share, "run true\n")
    assert first.returncode == 0, first.stderr
    assert share.wait(10) == 0  # one session, then the agent is gone
    again = connect(technician, share, "run true\n", ticket="T-2")
    assert again.returncode in (3, 4), again.stderr
    assert "Consent passed" not in again.stderr
    assert not (technician.data / "tickets" / "T-2").exists()


# -- Ctrl-C on the customer's side ----------------------------------------------------------


def _sleepers() -> list[int]:
    """Processes running this module's `sleep`, wherever they were left."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[:2] == [b"sleep", SLEEP.encode()]:
                found.append(int(entry.name))
    return found


def test_ctrl_c_to_share_ends_the_session_for_both(
    technician: Person, customer: Person, share: Share, signers: Path
) -> None:
    proc = start_connect(technician, share, f"run true\nrun sleep {SLEEP}\nrun true\n")
    try:
        share.wait_for_stderr("run true -> exit 0")
        deadline = time.monotonic() + 5
        while not _sleepers() and time.monotonic() < deadline:
            time.sleep(0.02)  # until the sleep runs: the session is busy
        assert _sleepers(), "the agent never started the sleep"
        start = time.monotonic()
        share.interrupt()
        _, stderr = proc.communicate(timeout=5)
        took = time.monotonic() - start
        assert share.wait(5) == 130
    finally:
        end(proc)
    assert took < 3, took
    assert proc.returncode not in (0, None)
    assert "customer ended the session" in stderr, stderr
    assert not _sleepers()

    why = "the customer ended the session (Ctrl-C)"
    transcript = technician_transcript(technician)
    report = verified(technician, transcript, signers)
    assert why.lower() in report["end_reason"].lower()
    last = events(transcript)[-1]
    assert last["type"] == "session_end" and why.lower() in last["reason"].lower()
    copy = customer_copy(share.stderr())
    signers = copy.with_name(copy.name + ".allowed_signers")
    assert verified(customer, copy, signers)["end_reason"] == why
    last = events(copy)[-1]
    assert last["type"] == "session_end" and last["reason"] == why


# -- OpenSSH's client gets nothing ------------------------------------------------------------


@pytest.fixture
def ssh() -> str:
    return tool("ssh") or pytest.skip("OpenSSH's ssh is not installed (package openssh-client)")


def _ssh(
    ssh: str, key: Path, share: Share, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """``ssh [OPTIONS] ARGS``: ARGS end with the host (and what to ask it for)."""
    host, port = share.address.rsplit(":", 1)
    options = [
        "-F", "/dev/null", "-i", str(key), "-o", "IdentitiesOnly=yes",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "-p", port,
    ]  # fmt: skip
    return subprocess.run(
        [ssh, *options, *(host if a == "HOST" else a for a in args)],
        env={**os.environ, "HOME": str(key.parent), **env},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=15,
    )


def test_openssh_client_gets_no_command_shell_or_subsystem_and_share_keeps_serving(
    ssh: str, keygen_key: Path, technician: Person, share: Share
) -> None:
    asks = {
        "a command": ("HOST", "true"),
        "a shell": ("-T", "HOST"),
        "the session subsystem": ("-s", "HOST", "toolkit-session-v1"),
    }
    for what, args in asks.items():
        done = _ssh(ssh, keygen_key, share, "-o", "BatchMode=yes", *args)
        assert done.returncode == 255, (what, done.stdout + done.stderr)
        assert "Permission denied" in done.stderr, what
        assert done.stdout == "", what
        assert share.proc.poll() is None, what
    assert share.stderr().count("connection from") == len(asks)
    works = connect(technician, share, "run true\n")
    assert works.returncode == 0, works.stderr


def test_openssh_client_answering_with_the_code_gets_nothing(
    ssh: str, keygen_key: Path, technician: Person, share: Share, tmp_path: Path
) -> None:
    askpass = tmp_path / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{share.code}'\n")
    askpass.chmod(0o700)
    done = _ssh(
        ssh, keygen_key, share,
        "-o", "BatchMode=no", "-o", "PreferredAuthentications=keyboard-interactive",
        "-o", "NumberOfPasswordPrompts=1", "HOST", "true",
        SSH_ASKPASS=str(askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0",
    )  # fmt: skip
    assert done.returncode == 255, done.stdout + done.stderr
    assert "Permission denied" in done.stderr
    works = connect(technician, share, "run true\n")  # it cost one try of three
    assert works.returncode == 0, works.stderr


# -- bad input: exit 2, a clear message, before anything connects ------------------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that records connections: after a usage error, nothing may have come."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def _nobody_came(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


@pytest.mark.parametrize(
    ("batch", "args", "says"),
    [
        ("run true\n# fine\nfrobnicate now\n", [], ["line 3", "Unknown command 'frobnicate'"]),
        ("read\n", [], ["line 1", "Usage: read PATH"]),
        ("help\nhelp frobnicate\n", [], ["line 2", "No help for 'frobnicate'"]),
        ("exit\n", ["--ticket", "../x"], ["'../x' is not a ticket id"]),
        ("exit\n", ["--scope", "bogus"], ["--scope", "bogus"]),
        ("exit\n", ["--code", "12-34"], ["not a consent code"]),
    ],
    ids=[
        "unknown-command",
        "missing-argument",
        "help-topic",
        "bad-ticket",
        "bad-scope",
        "bad-code",
    ],
)
def test_connect_bad_input_is_a_usage_error_before_connecting(
    technician: Person,
    listener: socket.socket,
    batch: str,
    args: list[str],
    says: list[str],
) -> None:
    port = listener.getsockname()[1]
    options = {"--ticket": "T-1", "--code": "123-456-789", "--batch": "-"}
    for name, value in zip(args[::2], args[1::2], strict=True):
        options[name] = value
    flat = [part for item in options.items() for part in item]
    done = technician.toolkit("connect", f"127.0.0.1:{port}", *flat, stdin=batch)
    assert done.returncode == 2, done.stderr
    for text in says:
        assert text in done.stderr
    assert "Traceback" not in done.stderr
    assert _nobody_came(listener)
    assert not (technician.data / "transcripts").exists()


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "127.0.0.1:", "127.0.0.1:x"])
def test_connect_without_a_port_is_a_usage_error(technician: Person, address: str) -> None:
    done = technician.toolkit(
        "connect", address, "--code", "123-456-789", "--ticket", "T-1", "--batch", "-", stdin=""
    )
    assert done.returncode == 2, done.stderr
    assert address in done.stderr and "port" in done.stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--listen", "nonsense"], "--listen 'nonsense'"),
        (["--listen", "127.0.0.1:99999"], "127.0.0.1:99999"),
        (["--listen", "::1:0"], "brackets"),
        (["--scope", "bogus"], "bogus"),
        (["--policy", "missing.toml"], "missing.toml"),
        (["--ttl", "inf"], "--ttl is the seconds"),
        (["--ttl", "1e300"], "--ttl is the seconds"),
        (["--ttl", "nan"], "--ttl is the seconds"),
        (["--ttl", "0.5"], "--ttl is the seconds"),
        (["--ttl", "3601"], "from 1 to 3600"),
        (["--code-file", "no-such-dir/code"], "does not exist"),
        (["--code-file", "."], "is a directory"),
    ],
    ids=[
        "listen-nonsense",
        "listen-port",
        "listen-v6-unbracketed",
        "scope",
        "policy",
        "ttl-inf",
        "ttl-1e300",
        "ttl-nan",
        "ttl-under-1",
        "ttl-over-an-hour",
        "code-file-missing-dir",
        "code-file-a-dir",
    ],
)
def test_share_bad_input_is_a_usage_error(customer: Person, args: list[str], says: str) -> None:
    done = customer.toolkit("share", "--yes", "--json", *args, timeout=10)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert done.stdout == ""  # no code was made, nothing listened
    assert "Traceback" not in done.stderr and "bug" not in done.stderr
    assert len(done.stderr.strip().splitlines()) <= 2  # a sentence (and what to do)
