"""`toolkit grant` through the real toolkit process: issue, show (and the ssh-keygen
check it prints), revoke and history."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import new_signer
from tests.integration.share_process import EMAIL, Person
from tests.integration.test_share_connect import make_technician
from toolkit.grants import Grant, load
from toolkit.grants.ledger import Ledger
from toolkit.identity.keys import blob_from_line, fingerprint, public_line
from toolkit.plugins import Kind
from toolkit.plugins.loader import installed

OWNER = "owner@example.com"
HOST_FP = "SHA256:" + "B" * 43


@pytest.fixture
def owner(tmp_path: Path, keygen_key: Path) -> tuple[Person, Path, Path]:
    """The machine owner: a person, their key file, and an allowed_signers that trusts it."""
    person = Person.make(tmp_path / "owner")
    pub = keygen_key.with_name(keygen_key.name + ".pub").read_text().split()
    signers = tmp_path / "grant_signers"
    signers.write_text(f'{OWNER} namespaces="toolkit-grant" {pub[0]} {pub[1]}\n')
    return person, keygen_key, signers


def issue(person: Person, key: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return person.toolkit(
        "grant", "issue", "--key", key, "--issuer", OWNER, "--ticket", "T-17", *args
    )


BASIC = ("--technician", "tech@example.com", "--scope", "diagnostics",
         "--hosts", f"web-01,{HOST_FP}", "--not-after", "+8h")  # fmt: skip


def test_issue_show_and_check_by_hand_with_ssh_keygen(
    tmp_path: Path, owner: tuple[Person, Path, Path], ssh_keygen: str
) -> None:
    person, key, signers = owner
    path = tmp_path / "g.grant"
    done = issue(person, key, *BASIC, "--uses", "3", "-o", path)
    assert done.returncode == 0, done.stderr
    grant = load(path)
    assert done.stdout == f"{grant.id}\n"
    assert f"Issued {grant.id} as {OWNER}" in done.stderr
    assert "3 use(s) per host" in done.stderr and "toolkit grant show" in done.stderr
    assert (grant.issuer, grant.technician, grant.ticket, grant.uses) == (
        OWNER, "tech@example.com", "T-17", 3,
    )  # fmt: skip
    assert grant.hosts == ("web-01", HOST_FP) and grant.scopes == {"diagnostics"}
    assert grant.not_after - grant.not_before == timedelta(hours=8)
    assert abs(grant.not_before - datetime.now(UTC)) < timedelta(minutes=5)

    shown = person.toolkit("grant", "show", path, "--allowed-signers", signers)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == str(path) and lines[-1] == f"TRUSTED {path}"
    assert f"  issuer       {OWNER}" in lines
    assert "  host         web-01" in lines and "  uses         3 on each host" in lines
    assert any(line.startswith("  signer") and f"trusted as {OWNER}" in line for line in lines)

    # The two commands it prints check the grant without toolkit.
    commands = [line.split(None, 1)[1] for line in lines if line.startswith(("  split", "  ssh-"))]
    assert len(commands) == 2
    for command in commands:
        by_hand = subprocess.run(  # noqa: S602 (the commands under test are shell lines)
            command, shell=True, cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert by_hand.returncode == 0, by_hand.stderr
    assert f'Good "toolkit-grant" signature for {OWNER}' in by_hand.stdout + by_hand.stderr

    as_json = person.toolkit("grant", "show", path, "--allowed-signers", signers, "--json")
    view = json.loads(as_json.stdout)
    assert view["verdict"] == "TRUSTED" and view["problem"] is None
    assert view["id"] == grant.id and view["sha256"] == grant.sha256
    assert view["hosts"] == ["web-01", HOST_FP] and view["scopes"] == ["diagnostics"]
    assert view["by_hand"] == commands


def test_show_refuses_untrusted_and_forged_grants(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, signers = owner
    path = tmp_path / "g.grant"
    assert issue(person, key, *BASIC, "-o", path).returncode == 0
    # No allowed_signers anywhere: nobody is trusted.
    shown = person.toolkit("grant", "show", path)
    assert shown.returncode == 1
    assert shown.stdout.endswith(f"UNTRUSTED {path}\n")
    assert "no allowed_signers file" in shown.stdout
    # Trusted for another namespace only.
    consent_only = tmp_path / "consent_only"
    consent_only.write_text(signers.read_text().replace("toolkit-grant", "toolkit-consent"))
    shown = person.toolkit("grant", "show", path, "--allowed-signers", consent_only, "--json")
    assert json.loads(shown.stdout)["verdict"] == "UNTRUSTED" and shown.returncode == 1
    # Changed after it was signed.
    forged = tmp_path / "forged.grant"
    forged.write_bytes(path.read_bytes().replace(b"uses: 1\n", b"uses: 99\n"))
    shown = person.toolkit("grant", "show", forged, "--allowed-signers", signers)
    assert shown.returncode == 1
    assert shown.stdout.endswith(f"FORGED {forged}\n")
    assert "signature does not hold" in shown.stdout


def test_show_refuses_what_is_not_a_grant_in_one_sentence(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    path = tmp_path / "g.grant"
    assert issue(person, key, *BASIC, "-o", path).returncode == 0
    hostile = tmp_path / "hostile.grant"
    hostile.write_bytes(path.read_bytes().replace(b"ticket: T-17", b"ticket: T-17\x1b[2J"))
    for bad, message in [
        (hostile, "The grant file {hostile}, line 9: it holds a control or invisible"),
        (tmp_path / "missing", "no such file"),
        (tmp_path, "it is a directory"),
        (Path("/dev/zero"), "character device"),
    ]:
        shown = person.toolkit("grant", "show", bad)
        assert shown.returncode == 2, shown.stderr
        assert message.format(hostile=hostile) in shown.stderr
        assert "\x1b" not in shown.stderr + shown.stdout and "Traceback" not in shown.stderr


def test_issue_to_standard_output_with_each_kind_of_technician(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    tech = new_signer()
    line = public_line(tech.public_blob)
    pub = tmp_path / "tech.pub"
    pub.write_text(f"{line} tech@laptop\n")
    for given in (str(pub), f"{line} a comment", line):
        done = issue(person, key, "--technician", given, "--scope", "fixes", "--hosts", "web-01",
                     "--not-after", "+30m")  # fmt: skip
        assert done.returncode == 0, done.stderr
        grant = Grant.parse(done.stdout.encode())
        assert grant.technician == line and grant.technician_key == tech.public_blob
        assert grant.not_after - grant.not_before == timedelta(minutes=30)


def test_fixes_and_diagnostics_are_named_with_their_declaration_digest(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    found = installed().find(Kind.FIX, "restart-unit")
    assert found is not None
    fix = found[0]
    brought = dict(fix.to_dict(), name="my-restart")
    declaration = tmp_path / "my-restart.json"
    declaration.write_text(json.dumps(brought))
    done = issue(person, key, "--technician", "tech@example.com", "--hosts", "web-01",
                 "--not-after", "+1d", "--fix", "restart-unit,flush-dns",
                 "--diagnostic", "disk", "--procedure-file", declaration)  # fmt: skip
    assert done.returncode == 0, done.stderr
    grant = Grant.parse(done.stdout.encode())
    by_name = {(p.kind, p.name): p.sha256 for p in grant.procedures}
    assert by_name[("fix", "restart-unit")] == fix.sha256
    flush = installed().find(Kind.FIX, "flush-dns")
    disk = installed().find(Kind.DIAGNOSTIC, "disk")
    assert flush is not None and disk is not None
    assert by_name[("fix", "flush-dns")] == flush[0].sha256
    assert by_name[("diagnostic", "disk")] == disk[0].sha256
    assert by_name[("fix", "my-restart")] != fix.sha256 and len(by_name) == 4
    assert grant.scopes == frozenset()


def test_the_window_from_iso_times_and_relative_ones(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, signers = owner
    path = tmp_path / "later.grant"
    window = ("--not-before", "+2d", "--not-after", "+8h")
    done = issue(person, key, "--technician", "tech@example.com", "--scope", "diagnostics",
                 "--hosts", "web-01", *window, "-o", path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    grant = load(path)
    assert timedelta(days=2) - timedelta(minutes=5) < grant.not_before - datetime.now(UTC)
    assert grant.not_after - grant.not_before == timedelta(hours=8)
    shown = person.toolkit("grant", "show", path, "--allowed-signers", signers)
    assert shown.returncode == 0 and shown.stdout.endswith(f"NOT-YET-VALID {path}\n")

    done = issue(person, key, "--technician", "tech@example.com", "--scope", "diagnostics",
                 "--hosts", "web-01", "--not-before", "2030-01-02T03:04:05+02:00",
                 "--not-after", "2030-01-02T12:00:00Z")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "not-before: 2030-01-02T01:04:05Z\nnot-after: 2030-01-02T12:00:00Z\n" in done.stdout


REFUSED = [
    (("--scope", "shell"), "a shell is never granted in advance"),
    ((), "at least one procedure or scope"),
    (("--scope", "diagnostics", "--fix", "no-such-fix"), "No installed fix is named 'no-such-fix'"),
    (("--scope", "diagnostics", "--not-after", "tomorrow"), "--not-after 'tomorrow' is not a time"),
    (("--scope", "diagnostics", "--not-after", "2026-01-01T00:00:00"), "is not a time"),
    (("--scope", "diagnostics", "--not-before", "2020-01-01T00:00:00Z"), "has already passed"),
    (("--scope", "diagnostics", "--not-after", "2020-01-01T00:00:00Z"), "has already passed"),
    (("--scope", "diagnostics", "--uses", "0"), "uses is a whole number from 1 to 100000"),
    (("--scope", "diagnostics", "--hosts", "web 01"), "host 'web 01' is refused"),
    (("--scope", "diagnostics", "--technician", "ssh-ed25519 AAAA"), "neither a principal nor"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_issue_refusals_are_one_sentence_and_exit_2(
    tmp_path: Path, owner: tuple[Person, Path, Path], args: tuple[str, ...], message: str
) -> None:
    person, key, _ = owner
    base = {"--technician": "tech@example.com", "--hosts": "web-01", "--not-after": "+1h"}
    flags = [x for k, v in base.items() if k not in args for x in (k, v)]
    done = issue(person, key, *flags, *args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_issue_never_overwrites_a_file(tmp_path: Path, owner: tuple[Person, Path, Path]) -> None:
    person, key, _ = owner
    path = tmp_path / "g.grant"
    path.write_text("keep me")
    done = issue(person, key, *BASIC, "-o", path)
    assert done.returncode == 2 and "exists" in done.stderr
    assert path.read_text() == "keep me"


def test_issue_with_the_stored_identity(tmp_path: Path, identity: Path) -> None:
    person = make_technician(tmp_path / "alice", identity)
    done = person.toolkit("grant", "issue", *BASIC, "--ticket", "T-1")
    assert done.returncode == 0, done.stderr
    grant = Grant.parse(done.stdout.encode())
    assert grant.issuer == EMAIL
    profile = json.loads(person.toolkit("keys", "show", "--json").stdout)
    assert fingerprint(grant.signer_key) == profile["fingerprint"]
    assert grant.signer_key == blob_from_line(profile["public_key"])


def test_revoke_and_history_read_the_agents_ledger(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    path = tmp_path / "g.grant"
    assert issue(person, key, *BASIC, "--uses", "2", "-o", path).returncode == 0
    grant = load(path)
    ledger = Ledger(person.data / "grants")  # where the person's toolkit keeps it
    now = datetime(2026, 12, 3, 18, 30, tzinfo=UTC)
    first = ledger.spend(grant, technician="tech@example.com", ticket="T-17", session="s-1",
                         peer="10.0.0.7:50000", now=now)  # fmt: skip
    ledger.finish(first, outcome="completed", transcript="/t/s-1.cast", now=now)
    ledger.spend(grant, technician="tech\x1b[2J@example.com", ticket="T-17", session="s-2",
                 peer="10.0.0.8:50000", now=now)  # fmt: skip

    listed = person.toolkit("grant", "history")
    assert listed.returncode == 0, listed.stderr
    rows = listed.stdout.splitlines()
    assert rows[0].split() == ["GRANT", "USE", "TIME", "TECHNICIAN", "TICKET", "SESSION",
                               "PEER", "OUTCOME"]  # fmt: skip
    assert rows[1].split() == [grant.id, "1/2", "2026-12-03T18:30:00Z", "tech@example.com",
                               "T-17", "s-1", "10.0.0.7:50000", "completed"]  # fmt: skip
    assert "tech\\x1b[2J@example.com" in rows[2] and "(no end recorded)" in rows[2]
    assert "\x1b" not in listed.stdout

    revoked = person.toolkit("grant", "revoke", grant.id, "--reason", "job done")
    assert revoked.returncode == 0 and f"Revoked {grant.id}" in revoked.stderr
    assert "has recorded no use" not in revoked.stderr  # this ledger knows the grant
    unseen = person.toolkit("grant", "revoke", "g-" + "b" * 26)  # a typo, or the wrong host
    assert unseen.returncode == 0 and "this ledger has recorded no use of g-bbbb" in unseen.stderr
    again = person.toolkit("grant", "revoke", str(path))  # by file, too
    assert again.returncode == 0 and "already revoked" in again.stderr
    assert ledger.revoked(grant.id) is not None

    view = json.loads(person.toolkit("grant", "history", grant.id, "--json").stdout)
    assert [u["use"] for u in view["uses"]] == [1, 2]
    assert view["uses"][0]["outcome"] == "completed"
    assert view["uses"][0]["transcript"] == "/t/s-1.cast"
    assert view["revoked"] == [
        {"grant": grant.id, "at": view["revoked"][0]["at"], "reason": "job done", "problem": None}
    ]
    other = person.toolkit("grant", "history", "g-" + "a" * 26, "--json")
    assert json.loads(other.stdout)["uses"] == []
    bad = person.toolkit("grant", "revoke", "../../etc")
    assert bad.returncode == 2 and "is not a grant id" in bad.stderr
    elsewhere = person.toolkit("grant", "history", "--ledger", tmp_path / "empty")
    assert elsewhere.returncode == 0 and "No grant was used or revoked here" in elsewhere.stderr


def test_history_reports_a_record_it_cannot_read(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    path = tmp_path / "g.grant"
    assert issue(person, key, *BASIC, "--uses", "5", "-o", path).returncode == 0
    grant = load(path)
    ledger = Ledger(person.data / "grants")
    ledger.spend(grant, technician="t", ticket="T-17", session="s-1", peer="p",
                 now=datetime(2026, 12, 3, 18, 30, tzinfo=UTC))  # fmt: skip
    (person.data / "grants" / "uses" / grant.id / "2.json").write_bytes(b"\x1b[2Jgarbage")
    listed = person.toolkit("grant", "history")
    assert listed.returncode == 0, listed.stderr
    row = listed.stdout.splitlines()[2]
    assert row.split()[:2] == [grant.id, "2"] and "problem: not a ledger record" in row
    view = json.loads(person.toolkit("grant", "history", "--json").stdout)
    assert view["uses"][1]["problem"].startswith("not a ledger record")


def test_hosts_from_an_inventory_by_pinned_key_else_by_name(
    tmp_path: Path, owner: tuple[Person, Path, Path]
) -> None:
    person, key, _ = owner
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(
        f'[hosts.web-01]\naddress = "10.0.0.5:7022"\nhost_key = "{HOST_FP}"\ngroups = ["web"]\n'
        '[hosts.web-02]\naddress = "10.0.0.6:7022"\ngroups = ["web"]\n'
        '[hosts.db-01]\naddress = "10.0.0.7:7022"\n'
    )
    path = tmp_path / "g.grant"
    done = issue(
        person, key, "--technician", "tech@example.com", "--scope", "diagnostics",
        "--hosts", f"@{inventory}:web", "--not-after", "+8h", "-o", path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load(path).hosts == (HOST_FP, "web-02")
    typo = issue(
        person, key, "--technician", "tech@example.com", "--scope", "diagnostics",
        "--hosts", f"@{inventory}:webb", "--not-after", "+8h",
    )  # fmt: skip
    assert typo.returncode == 2 and "webb" in typo.stderr
