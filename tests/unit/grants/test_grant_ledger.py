"""The grant ledger: uses counted crash-safely, by racing processes and killed ones."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.grants.test_grant_check import grant_of
from tests.unit.grants.test_grant_model import NOW
from toolkit.errors import UsageError
from toolkit.grants import Grant, GrantRefused, Ledger, LedgerError

REPO = Path(__file__).parents[3]


def spend(ledger: Ledger, grant: Grant, session: str = "s-1") -> int:
    use = ledger.spend(
        grant, technician="alice@example.com", ticket="T-17", session=session,
        peer="10.0.0.9:4242", now=NOW,
    )  # fmt: skip
    return use.number


def test_uses_are_numbered_finished_and_listed(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=3)
    assert ledger.used(grant.id) == 0 and ledger.history() == []
    assert [spend(ledger, grant, f"s-{i}") for i in range(3)] == [1, 2, 3]
    with pytest.raises(GrantRefused) as caught:
        spend(ledger, grant)
    assert caught.value.reason == "used-up"
    assert ledger.used(grant.id) == 3

    first = ledger.spend(grant_of(uses=1), technician="t", ticket="T-17", session="x",
                         peer="p", now=NOW)  # fmt: skip
    ledger.finish(first, outcome="completed", transcript="/t/x.cast", now=NOW + timedelta(1))
    with pytest.raises(LedgerError, match="has already ended"):
        ledger.finish(first, outcome="again", transcript=None, now=NOW)

    entries = ledger.history(grant.id)
    assert [(e.number, e.session, e.outcome, e.problem) for e in entries] == [
        (1, "s-0", None, None), (2, "s-1", None, None), (3, "s-2", None, None),
    ]  # fmt: skip
    assert entries[0].technician == "alice@example.com" and entries[0].at == NOW
    assert entries[0].peer == "10.0.0.9:4242" and entries[0].uses == 3
    (done,) = ledger.history(first.grant_id)
    assert (done.outcome, done.transcript, done.ended) == (
        "completed", "/t/x.cast", NOW + timedelta(1),
    )  # fmt: skip
    assert len(ledger.history()) == 4
    assert done.to_json()["ended"] == "2026-12-04T18:00:00Z"
    # Every record was written whole, private, and nothing staged is left behind.
    record = tmp_path / "grants" / "uses" / grant.id / "1.json"
    assert json.loads(record.read_text())["grant_sha256"] == grant.sha256
    assert record.stat().st_mode & 0o777 == 0o600
    assert os.listdir(tmp_path / "grants" / "tmp") == []


def test_revocation(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=5)
    assert ledger.revoked(grant.id) is None
    assert spend(ledger, grant) == 1
    assert ledger.revoke(grant.id, reason="the job is done", now=NOW) is True
    assert ledger.revoke(grant.id, reason="again", now=NOW + timedelta(1)) is False
    assert ledger.revoked(grant.id) == NOW
    with pytest.raises(GrantRefused) as caught:
        spend(ledger, grant)
    assert caught.value.reason == "revoked"
    (revocation,) = ledger.revocations()
    assert (revocation.grant_id, revocation.reason) == (grant.id, "the job is done")
    with pytest.raises(UsageError, match="not a grant id"):
        ledger.revoke("../../etc/passwd", reason=None, now=NOW)


def test_an_unreadable_revocation_still_revokes(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of()
    (tmp_path / "grants" / "revoked").mkdir(parents=True)
    (tmp_path / "grants" / "revoked" / f"{grant.id}.json").write_bytes(b"\x00garbage")
    assert ledger.revoked(grant.id) is not None
    with pytest.raises(GrantRefused, match="revoked"):
        spend(ledger, grant)
    (revocation,) = ledger.revocations()
    assert revocation.problem and "not a ledger record" in revocation.problem


def test_a_corrupt_record_counts_as_spent_and_is_reported(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=5)
    assert spend(ledger, grant) == 1
    uses = tmp_path / "grants" / "uses" / grant.id
    (uses / "2.json").write_bytes(b'{"v": 1, "grant": "g-other"')
    os.mkfifo(uses / "3.json")  # a FIFO: reading it must not hang
    (uses / "4.json").write_text(f'{{"v": 1, "grant": "{grant.id}", "v": 1}}')
    assert ledger.used(grant.id) == 4
    assert spend(ledger, grant) == 5  # 2-4 are not taken as free
    problems = {e.number: e.problem for e in ledger.history(grant.id)}
    assert problems[1] is None and problems[5] is None
    assert "not a ledger record" in str(problems[2])
    assert "FIFO" in str(problems[3])
    assert "not a ledger record" in str(problems[4])  # a name given twice


def test_a_foreign_file_stops_spending_and_is_reported(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=5)
    assert spend(ledger, grant) == 1
    uses = tmp_path / "grants" / "uses" / grant.id
    (uses / "2.json~").write_text("an editor's backup")
    with pytest.raises(LedgerError, match=r"holds 2\.json~, which toolkit never writes"):
        spend(ledger, grant)
    with pytest.raises(LedgerError):
        ledger.used(grant.id)
    problems = [e.problem for e in ledger.history(grant.id) if e.problem]
    assert problems == ["2.json~ is not a ledger file"]
    (uses / "2.json~").unlink()
    assert spend(ledger, grant) == 2


def test_a_ledger_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "grants").write_text("not a directory")
    ledger = Ledger(tmp_path / "grants")
    with pytest.raises(
        LedgerError, match=r"^Cannot read .* in the grant ledger: not a directory\.$"
    ):
        spend(ledger, grant_of())
    (tmp_path / "grants").unlink()
    (tmp_path / "grants" / "uses").mkdir(parents=True)
    (tmp_path / "grants" / "uses" / (grant := grant_of()).id).write_text("")
    with pytest.raises(LedgerError, match="is in the grant ledger's way: it is not a directory"):
        spend(ledger, grant)


# -- real processes ---------------------------------------------------------------------------


def _child(root: Path, grant_file: Path, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.grants.ledger_child", str(root), str(grant_file),
         *extra],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def _write(tmp_path: Path, grant: Grant) -> Path:
    path = tmp_path / "g.grant"
    path.write_bytes(grant.to_bytes())
    return path


def _check_records(ledger: Ledger, grant: Grant) -> list[int]:
    """Every use on disk is a whole record, numbered 1..n without a gap; the numbers."""
    entries = ledger.history(grant.id)
    assert [e.problem for e in entries if e.problem] == []
    numbers = [e.number for e in entries]
    assert numbers == list(range(1, len(numbers) + 1))
    return numbers


def test_racing_processes_spend_each_use_exactly_once(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=60)
    grant_file = _write(tmp_path, grant)
    procs = [_child(ledger.root, grant_file) for _ in range(6)]
    for proc in procs:  # every process is ready: start them together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    got: list[int] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        lines = out.split()
        assert lines[-2:] == ["done", "used-up"], out
        got += [int(n) for n in lines[:-2]]
        assert proc.returncode == 0
    assert sorted(got) == list(range(1, 61))
    assert _check_records(ledger, grant) == list(range(1, 61))
    assert os.listdir(ledger.root / "tmp") == []


def _kill_and_check(
    ledger: Ledger, grant: Grant, proc: subprocess.Popen[str], reported: list[int]
) -> None:
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    numbers = [int(n) for n in out.split() if n.isdigit()]
    before = set(reported)
    reported += numbers
    assert before.isdisjoint(numbers)  # never a use spent twice
    on_disk = _check_records(ledger, grant)
    # Never a use given back: every number a spend() returned is on disk, and the next
    # spend takes the one after the highest on disk.
    assert set(reported) <= set(on_disk)
    assert len(on_disk) - len(reported) <= 1  # at most the use being spent when killed


def test_sigkill_at_random_points_never_gives_a_use_back_nor_spends_twice(
    tmp_path: Path,
) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=100_000)
    grant_file = _write(tmp_path, grant)
    rng = random.Random(17)
    reported: list[int] = []
    for _ in range(30):
        proc = _child(ledger.root, grant_file)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
        for _ in range(rng.randrange(0, 6)):  # let it spend a few, then kill it mid-spend
            reported.append(int(proc.stdout.readline()))
        _kill_and_check(ledger, grant, proc, reported)
        # What the process was spending when killed was either taken or not: the next is next.
        following = spend(ledger, grant)
        assert following == len(_check_records(ledger, grant))
        reported.append(following)
    assert sorted(reported) == sorted(set(reported))


@pytest.mark.parametrize("crash_at", range(1, 12))
def test_sigkill_at_each_file_system_call_of_a_spend(tmp_path: Path, crash_at: int) -> None:
    ledger = Ledger(tmp_path / "grants")
    grant = grant_of(uses=10)
    assert spend(ledger, grant) == 1  # the directories exist: the calls are a spend's own
    proc = _child(ledger.root, _write(tmp_path, grant), str(crash_at))
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, out
    reported = [1] + [int(n) for n in out.split()]
    on_disk = _check_records(ledger, grant)
    assert set(reported) <= set(on_disk) and len(on_disk) - len(reported) <= 1
    assert spend(ledger, grant) == len(on_disk) + 1
