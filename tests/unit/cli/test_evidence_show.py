"""`toolkit show` and `toolkit verify` in-process (issue 15): unknown events, escapes, names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample, write_allowed_signers
from toolkit.cli import run as toolkit
from toolkit.transcript.recorder import Recorder

ESC = "\x1b"


@pytest.fixture
def approved(tmp_path: Path) -> tuple[Path, Path]:
    """A sealed sample whose session holds an event type this toolkit does not describe."""
    signer = new_signer()

    def body(rec: Recorder) -> None:
        if not body.done:  # type: ignore[attr-defined]
            rec.event(
                "approval",
                fix="flush-dns",
                by=f"the customer{ESC}[2J{ESC}[1A",
                commands=[["resolvectl", "flush-caches"]],
            )
            body.done = True  # type: ignore[attr-defined]

    body.done = False  # type: ignore[attr-defined]
    path = record_sample(tmp_path / "s.cast", signer, events=3, body=body)
    return path, write_allowed_signers(tmp_path / "as", signer)


def test_show_lists_an_unknown_event_with_its_fields_made_printable(
    approved: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = approved
    assert toolkit(["show", "--allowed-signers", str(signers), str(path)]) == 0
    out = capsys.readouterr().out
    assert ESC not in out
    rows = [line for line in out.splitlines() if "  approval  " in line]
    assert len(rows) == 1, out
    assert "fix=flush-dns" in rows[0]
    assert "by=the customer\\x1b[2J\\x1b[1A" in rows[0]
    assert 'commands=[["resolvectl","flush-caches"]]' in rows[0]
    assert out.endswith(f"\nSEALED {path}\n")


def test_show_json_keeps_the_fields_exact(
    approved: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = approved
    assert toolkit(["show", "--json", "--allowed-signers", str(signers), str(path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    (approval,) = [e for e in shown["events"] if e["type"] == "approval"]
    assert approval["fields"]["by"] == f"the customer{ESC}[2J{ESC}[1A"
    assert approval["counted"] is None
    assert [e["type"] for e in shown["events"]][-1] == "session_end"


def test_show_without_trust_says_untrusted_and_exits_1(
    approved: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = approved
    monkeypatch.setenv("HOME", str(path.parent))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(path.parent / "config"))
    assert toolkit(["show", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.endswith(f"\nUNTRUSTED {path}\n")
    assert "  verdict      UNTRUSTED: no allowed_signers file" in captured.out
    assert "No allowed_signers file was found" in captured.err


@pytest.mark.parametrize("as_json", [False, True])
def test_show_of_a_file_that_is_no_transcript_names_it_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello\n")
    assert toolkit(["show", *(["--json"] if as_json else []), str(other)]) == 2
    captured = capsys.readouterr()
    assert f"{other}: This is not a toolkit transcript" in captured.err
    if as_json:
        assert json.loads(captured.out)["path"] == str(other)


def test_verify_names_every_non_transcript_and_gives_the_hint_once(
    approved: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = approved
    others = [tmp_path / "a.txt", tmp_path / "b.txt"]
    for other in others:
        other.write_text("{}\n")
    argv = ["verify", "--allowed-signers", str(signers), str(others[0]), str(path), str(others[1])]
    assert toolkit(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    for other in others:
        said = f"{other}: This is not a toolkit transcript: the first line is not an asciicast"
        assert f"{said} v2 header." in lines
    assert captured.err.count("toolkit verify reads the .cast files") == 1
    assert lines[-1] == "toolkit verify reads the .cast files that toolkit sessions write."
    assert f"SEALED {path}" in captured.out
