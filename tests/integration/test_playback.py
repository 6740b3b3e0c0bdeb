"""Transcripts play in asciinema 2.x (`asciinema cat` wants a terminal: run under script)."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample, tool


@pytest.fixture
def asciinema() -> str:
    path = tool("asciinema")
    if path is None or tool("script") is None:
        pytest.skip("asciinema or script is not installed (Debian packages asciinema, bsdutils)")
    return path


def asciinema_cat(asciinema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["script", "-qec", f"{asciinema} cat {shlex.quote(str(path))}", "/dev/null"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_event_kind_plays(tmp_path: Path, asciinema: str) -> None:
    path = record_sample(tmp_path / "all.cast", new_signer(), events=30)
    data = path.read_text()
    for code in ['"o"', '"i"', '"r"', '"m"', '"e"', '"c"']:
        assert code in data
    done = asciinema_cat(asciinema, path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "line 29: caf\u00e9 \u2603" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_crashed_transcript_prefix_still_plays(tmp_path: Path, asciinema: str) -> None:
    path = record_sample(tmp_path / "crash.cast", new_signer(), seal=False)
    done = asciinema_cat(asciinema, path)
    assert done.returncode == 0, done.stdout
    assert "line 11" in done.stdout


def test_asciinema_rejects_what_we_must_never_write(tmp_path: Path, asciinema: str) -> None:
    """The oracle is sharp: a 4th array element breaks asciinema 2.2, so playback tests mean
    something."""
    path = record_sample(tmp_path / "ok.cast", new_signer(), events=1)
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:-1] + ', "extra"]'
    bad = tmp_path / "bad.cast"
    bad.write_text("\n".join(lines) + "\n")
    done = asciinema_cat(asciinema, bad)
    assert done.returncode != 0 or "Traceback" in done.stdout
