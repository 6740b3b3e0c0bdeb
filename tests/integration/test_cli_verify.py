"""`toolkit verify`: verdicts, exit codes, what it shows, and the ssh-keygen equivalent."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import EMAIL, new_signer, record_sample, write_allowed_signers
from toolkit.cli import run as toolkit


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, Path]:
    signer = new_signer()
    path = record_sample(tmp_path / "session.cast", signer, events=5)
    return path, write_allowed_signers(tmp_path / "allowed_signers", signer)


def test_sealed_shows_who_when_what_and_exits_0(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = sealed
    assert toolkit(["verify", str(path), "--allowed-signers", str(signers)]) == 0
    out = capsys.readouterr().out
    # The file's own path heads the report; the verdict is the last line, after it all.
    assert out.startswith(f"{path}\n")
    assert out.endswith(f"\nSEALED {path}\n")
    for expected in ["Alice Tech <alice@example.com>", "T-1", "5, refusals 0", "completed"]:
        assert expected in out
    assert f"ssh-keygen -Y verify -f {signers} -I {EMAIL} -n toolkit-transcript" in out


def test_printed_ssh_keygen_command_works(
    sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str], ssh_keygen: str
) -> None:
    path, signers = sealed
    toolkit(["verify", str(path), "--allowed-signers", str(signers), "--json"])
    report = json.loads(capsys.readouterr().out)
    toolkit(["verify", str(path), "--allowed-signers", str(signers)])
    line = next(x for x in capsys.readouterr().out.splitlines() if "ssh-keygen -Y" in x)
    command = line.split(None, 1)[1]
    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)  # noqa: S602
    assert done.returncode == 0, done.stderr
    assert report["technician"]["fingerprint"] in done.stdout + done.stderr


def test_json_fields(sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    path, signers = sealed
    assert toolkit(["verify", str(path), "--allowed-signers", str(signers), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "SEALED" and report["failure"] is None
    assert report["ticket"] == "T-1" and report["operations"] == 5
    assert report["trusted_as"] == EMAIL and report["valid_bytes"] == report["size"]


def test_each_verdict_has_its_exit_code(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = sealed
    unsealed = tmp_path / "unsealed.cast"
    shutil.copy(path, unsealed)
    tampered = tmp_path / "tampered.cast"
    tampered.write_bytes(path.read_bytes().replace(b"line 3", b"line 8"))
    shutil.copy(path.with_name("session.cast.sig"), tmp_path / "tampered.cast.sig")
    stranger = write_allowed_signers(tmp_path / "stranger", new_signer())
    cases = [
        ([str(unsealed), "--allowed-signers", str(signers)], 1, "UNSEALED"),
        ([str(tampered), "--allowed-signers", str(signers)], 1, "TAMPERED"),
        ([str(path), "--allowed-signers", str(stranger)], 1, "UNTRUSTED"),
        ([str(path)], 1, "UNTRUSTED"),  # no allowed_signers anywhere
    ]
    for args, code, verdict in cases:
        assert toolkit(["verify", *args]) == code, verdict
        assert capsys.readouterr().out.splitlines()[-1].startswith(verdict)
    assert toolkit(["verify", str(tampered), "--allowed-signers", str(signers)]) == 1
    out = capsys.readouterr().out
    assert "checkpoint 4 (line 21) fails" in out and "lines 17-21" in out
    assert "maybe maliciously" in out


def test_not_a_transcript_is_a_usage_error(
    tmp_path: Path, sealed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = sealed
    junk = tmp_path / "notes.txt"
    junk.write_text("hello\n")
    cast = tmp_path / "plain.cast"
    cast.write_text('{"version": 2, "width": 80, "height": 24}\n[0.1, "o", "hi"]\n')
    for bad in [junk, cast, tmp_path / "missing.cast", tmp_path]:
        assert toolkit(["verify", str(bad), "--allowed-signers", str(signers)]) == 2, bad
        err = capsys.readouterr().err
        assert (
            "not a toolkit transcript" in err or "Cannot read" in err
        ) and "Traceback" not in err
    # Several files: every one is reported, the exit code is the worst.
    assert toolkit(["verify", str(path), str(junk), "--allowed-signers", str(signers)]) == 2
    assert capsys.readouterr().out.endswith(f"\nSEALED {path}\n")


def test_default_allowed_signers_locations(
    sealed: tuple[Path, Path], isolated: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = sealed
    home_file = isolated / "home" / ".ssh" / "allowed_signers"
    home_file.parent.mkdir()
    shutil.copy(signers, home_file)
    assert toolkit(["verify", str(path)]) == 0
    assert str(home_file) in capsys.readouterr().out
    config_file = isolated / "config" / "toolkit" / "allowed_signers"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("")  # the config dir's file wins, and it trusts nobody
    assert toolkit(["verify", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("UNTRUSTED")


def test_bad_allowed_signers_file_is_a_usage_error(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = sealed
    bad = tmp_path / "bad_signers"
    bad.write_text("alice@example.com ssh-ed25519 notbase64!!\n")
    assert toolkit(["verify", str(path), "--allowed-signers", str(bad)]) == 2
    assert "allowed_signers line 1" in capsys.readouterr().err


def test_json_for_a_file_that_is_not_a_transcript_is_one_line(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, signers = sealed
    junk = tmp_path / "junk.cast"
    junk.write_text("hello\n")
    code = toolkit(["verify", str(junk), str(path), "--allowed-signers", str(signers), "--json"])
    assert code == 2
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2  # one JSON object per file, each on one line
    assert json.loads(lines[0]) == {
        "path": str(junk),
        "error": "This is not a toolkit transcript: the first line is not a JSON header.",
    }
    assert json.loads(lines[1])["verdict"] == "SEALED"


def _with_header(path: Path, **changes: object) -> Path:
    """``path`` with top-level header fields replaced (the signatures then fail, as they should)."""
    lines = path.read_bytes().split(b"\n", 1)
    header = json.loads(lines[0])
    header.update(changes)
    path.write_bytes(json.dumps(header).encode() + b"\n" + lines[1])
    return path


@pytest.mark.parametrize("timestamp", [1e20, -1e15, float("nan"), "1700000000", True])
def test_a_header_time_out_of_range_is_one_sentence_and_the_next_file_is_still_checked(
    timestamp: object, sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, signers = sealed
    bad = _with_header(Path(shutil.copy(good, tmp_path / "bad.cast")), timestamp=timestamp)
    assert toolkit(["verify", str(bad), str(good), "--allowed-signers", str(signers)]) == 2
    captured = capsys.readouterr()
    assert "timestamp is not" in captured.err and "internal error" not in captured.err
    assert captured.out.endswith(f"\nSEALED {good}\n")


def test_a_header_naming_a_key_twice_is_refused(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Readers differ on which of two equal keys wins: the first, the last, an error.
    good, signers = sealed
    first, rest = good.read_bytes().split(b"\n", 1)
    doubled = first.replace(b'"ticket":"T-1"', b'"ticket":"T-1","ticket":"T-2"', 1)
    assert doubled != first
    bad = tmp_path / "doubled.cast"
    bad.write_bytes(doubled + b"\n" + rest)
    assert toolkit(["verify", str(bad), "--allowed-signers", str(signers)]) == 2
    assert "names 'ticket' twice" in capsys.readouterr().err


def test_a_signed_duration_past_year_9999_is_shown_as_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The technician signs what they like: a duration of 1e300 seconds must not crash verify.
    signer = new_signer()
    now = [0.0]

    def later(_: object) -> None:
        now[0] = 1e300  # from here on: the session's end, too

    path = record_sample(tmp_path / "long.cast", signer, events=1, body=later, clock=lambda: now[0])
    signers = write_allowed_signers(tmp_path / "allowed_signers", signer)
    assert toolkit(["verify", str(path), "--allowed-signers", str(signers)]) in (0, 1)
    out = capsys.readouterr().out
    assert "duration     unknown" in out
    assert toolkit(["verify", "--json", str(path), "--allowed-signers", str(signers)]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert report["duration"] is None and report["ended"] is None


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def test_fifos_and_devices_are_refused_at_once_not_waited_on(
    sealed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good, signers = sealed
    fifo = _fifo(tmp_path / "fifo.cast")
    # Nothing here may wait for a writer: a hang fails the test by its timeout.
    assert toolkit(["verify", str(fifo), str(good), "--allowed-signers", str(signers)]) == 2
    captured = capsys.readouterr()
    assert "it is a FIFO (named pipe), not a regular file." in captured.err
    assert captured.out.endswith(f"\nSEALED {good}\n")

    assert toolkit(["verify", "/dev/zero", "--allowed-signers", str(signers)]) == 2
    assert "character device" in capsys.readouterr().err

    signers_fifo = _fifo(tmp_path / "signers")
    assert toolkit(["verify", str(good), "--allowed-signers", str(signers_fifo)]) == 2
    assert "Cannot read the allowed signers file" in capsys.readouterr().err

    # A .sig that is a FIFO: the file is intact but not sealed by anything readable.
    copy = Path(shutil.copy(good, tmp_path / "copy.cast"))
    _fifo(tmp_path / "copy.cast.sig")
    assert toolkit(["verify", str(copy), "--allowed-signers", str(signers)]) == 1
    out = capsys.readouterr().out
    assert out.endswith(f"\nUNSEALED {copy}\n") and "FIFO" in out
