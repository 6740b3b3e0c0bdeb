"""Files the CLI is told to read: a FIFO, a device or a huge file is one sentence, never a hang."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit.cli import run


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def test_connect_batch_from_a_fifo_is_refused_before_connecting(
    fifo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on loopback: nothing would answer, and nothing is tried.
    args = ["connect", "127.0.0.1:9", "--code", "123-456-789", "--ticket", "T-1", "--batch"]
    assert run([*args, str(fifo)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"Cannot read the batch file {fifo}: it is a FIFO")
    assert run([*args, "/dev/zero"]) == 2
    assert "character device" in capsys.readouterr().err


def test_a_huge_batch_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = tmp_path / "batch"
    with batch.open("wb") as f:
        f.truncate(5 << 20)  # sparse: 5 MiB of nothing, over the 4 MiB cap
    args = ["connect", "127.0.0.1:9", "--code", "123-456-789", "--ticket", "T-1", "--batch"]
    assert run([*args, str(batch)]) == 2
    assert "it is larger than 4 MiB." in capsys.readouterr().err


def test_ticket_configuration_that_is_a_fifo_or_nested_too_deep(
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "toolkit" / "tickets.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(config)
    assert run(["tickets", "backends"]) == 2
    assert "Cannot read the ticket configuration" in capsys.readouterr().err
    config.unlink()
    config.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert run(["tickets", "backends"]) == 2
    err = capsys.readouterr().err
    assert "nested too deep" in err and "internal error" not in err
