"""Issue 15, the supervisor's evidence: CRLF output, one counting rule, the verified prefix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import new_signer, record_sample, write_allowed_signers
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.transcript.models import counted_as
from toolkit.transcript.recorder import Recorder, new_header
from toolkit.transcript.timeline import entries
from toolkit.transcript.verify import Verdict, examine, read_events


def _recorder(tmp_path: Path) -> tuple[Recorder, AllowedSigners]:
    signer = new_signer()
    trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / "as", signer))
    header = new_header("Alice", "alice@example.com", signer, "T-9")
    return Recorder.create(tmp_path / "s.cast", header, signer), trust


def _output(path: Path) -> str:
    return "".join(e.data for e in read_events(path) if e.code == "o")


# -- command output as a terminal shows it --------------------------------------------


@pytest.mark.parametrize(
    ("writes", "recorded"),
    [
        ([b"a\nb\n"], "a\r\nb\r\n"),
        ([b"a\r\nb\r\n"], "a\r\nb\r\n"),  # CRLF already: kept as it is
        ([b"a\r", b"\nb\n"], "a\r\nb\r\n"),  # a CRLF split between two writes
        ([b"a\r", b"\r\n"], "a\r\r\n"),
        ([b"\n\n"], "\r\n\r\n"),
        ([b"no newline"], "no newline"),
        ([b"caf\xc3", b"\xa9\n"], "caf\u00e9\r\n"),  # a character split between writes
        ([b"x\r\ry\n"], "x\r\ry\r\n"),
    ],
)
def test_command_output_ends_lines_in_crlf(
    tmp_path: Path, writes: list[bytes], recorded: str
) -> None:
    rec, trust = _recorder(tmp_path)
    for data in writes:
        rec.command_output(data)
    rec.close("completed")
    assert _output(rec.path) == recorded
    assert examine(rec.path, trust).verdict is Verdict.SEALED


def test_terminal_output_is_written_as_it_came(tmp_path: Path) -> None:
    """A PTY's output (the shell) is the terminal's own: never changed."""
    rec, _ = _recorder(tmp_path)
    rec.output(b"prompt$ \n")
    rec.output(b"a\r")
    rec.command_output(b"\nb\n")  # the CR before was not command output: this LF is bare
    rec.close("completed")
    assert _output(rec.path) == "prompt$ \na\r\r\nb\r\n"


# -- one rule for counting ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "counted"),
    [
        ({"type": "operation", "op": "run", "exit_status": 0}, "operation"),
        ({"type": "operation", "op": "run", "exit_status": 1}, "operation"),
        ({"type": "operation", "op": "read", "ok": False, "error": "cancelled"}, "operation"),
        ({"type": "operation", "op": "shell", "exit_status": 0}, "operation"),
        ({"type": "refusal", "op": "read", "error": "refused"}, "refusal"),
        ({"type": "refusal", "op": "channel", "error": "refused"}, "refusal"),
        ({"type": "operation", "op": "list", "purpose": "completion"}, "lookup"),
        # The technician alone chooses the mark: a refused "look-up" is a probe, a refusal.
        ({"type": "refusal", "op": "list", "purpose": "completion"}, "refusal"),
        ({"type": "operation", "op": "hello"}, None),
        ({"type": "operation", "op": "end"}, None),
        ({"type": "operation", "op": "cancel", "target": 3}, None),
        ({"type": "operation", "op": ["not", "hashable"]}, "operation"),
        ({"type": "consent"}, None),
        ({"type": "approval", "op": "fix"}, None),
        ({"type": "protocol_error", "op": "run"}, None),
        ({"type": "session_end"}, None),
    ],
)
def test_what_counts_as_an_operation(fields: dict[str, Any], counted: str | None) -> None:
    assert counted_as(fields) == counted


def _session(rec: Recorder, *, agent: bool) -> None:
    """The same session as either copy records it: the agent's adds hello, cancel and end."""
    if agent:
        rec.event("operation", op="hello", technician_session="x", ok=True)
    rec.event("operation", op="list", path="/home", purpose="completion", ok=True)
    rec.event("operation", op="read", path="/home/notes.txt", ok=True, size=3)
    rec.event("operation", op="run", argv=["sleep", "9"], ok=False, error="cancelled")
    if agent:
        rec.event("operation", op="cancel", target=4, cancelled=True, ok=True)
    rec.event("refusal", op="run", argv=["id"], ok=False, error="refused")
    rec.event("operation", op="fix", name="flush-dns", exit_status=127, ok=True)
    if agent:
        rec.event("operation", op="end", reason="", ok=True)


def test_both_copies_of_one_session_count_alike(tmp_path: Path) -> None:
    reports = []
    for agent in (False, True):
        signer = new_signer()
        trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / f"as{agent}", signer))
        header = new_header("Alice", "alice@example.com", signer, "T-9")
        rec = Recorder.create(tmp_path / f"{agent}.cast", header, signer)
        _session(rec, agent=agent)
        rec.close("completed")
        reports.append(examine(rec.path, trust))
    assert [(r.operations, r.refusals, r.lookups) for r in reports] == [(3, 1, 1)] * 2
    assert [r.to_json()["lookups"] for r in reports] == [1, 1]


# -- the verified prefix -----------------------------------------------------------------------


def _tampered(tmp_path: Path, at_index: int) -> tuple[Path, AllowedSigners]:
    """A sample of 12 operations (a checkpoint every 4 lines), operation ``at_index`` changed."""
    signer = new_signer()
    trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / "as", signer))
    path = record_sample(tmp_path / "s.cast", signer)
    data = path.read_bytes()
    mark = f'\\"index\\":{at_index}}}'.encode()
    assert data.count(mark) == 1
    path.write_bytes(data.replace(mark, f'\\"index\\":{at_index + 50}}}'.encode()))
    return path, trust


def test_a_tampered_file_reports_what_its_valid_prefix_holds(tmp_path: Path) -> None:
    path, trust = _tampered(tmp_path, 6)
    report = examine(path, trust)
    assert report.verdict is Verdict.TAMPERED and report.prefix_only
    assert report.failure is not None and report.failure.checkpoint is not None
    # The operations before the failing checkpoint's range, no more (its sample has 12).
    covered = entries(path, report.valid_bytes)
    indexes = [e.fields["index"] for e in covered if e.type == "operation"]
    assert report.operations == len(indexes) and 0 < len(indexes) < 7
    assert indexes == list(range(len(indexes)))
    assert report.duration is None and report.end_reason is None
    assert report.covered_seconds is not None and report.covered_seconds >= 0
    shown = report.to_json()
    assert shown["prefix_only"] is True and shown["operations"] == len(indexes)


def test_a_sealed_file_is_not_a_prefix(tmp_path: Path) -> None:
    signer = new_signer()
    trust = AllowedSigners.from_file(write_allowed_signers(tmp_path / "as", signer))
    report = examine(record_sample(tmp_path / "s.cast", signer), trust)
    assert report.verdict is Verdict.SEALED and not report.prefix_only
    assert report.operations == 12 and report.duration is not None


def test_the_timeline_reads_only_the_covered_bytes(tmp_path: Path) -> None:
    path, trust = _tampered(tmp_path, 10)
    report = examine(path, trust)
    listed = entries(path, report.valid_bytes)
    assert report.failure is not None and report.failure.lines is not None
    assert listed and all(e.line < report.failure.lines[1] for e in listed)
    assert entries(path, path.stat().st_size)[-1].type == "session_end"
