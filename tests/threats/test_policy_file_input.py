"""Threat: a policy file that is not what `toolkit share --policy` can take.

A FIFO would block the agent before it starts, ``/dev/zero`` would fill its
memory, and a TOML file nested 5,000 deep used to crash the parser into
"this is a bug". Each case runs the real CLI as a subprocess: it must exit 2
within seconds, with one sentence on stderr and no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from toolkit.errors import ExitCode
from toolkit.inputs import SMALL

TOOLKIT = [sys.executable, "-m", "toolkit"]
#: A usage error is printed before anything is set up; seconds are plenty on a loaded machine.
TIMEOUT = 20


def _fifo(tmp_path: Path) -> str:
    os.mkfifo(tmp_path / "policy.toml")
    return str(tmp_path / "policy.toml")


def _text(text: str) -> Callable[[Path], str]:
    def write(tmp_path: Path) -> str:
        (tmp_path / "policy.toml").write_text(text)
        return str(tmp_path / "policy.toml")

    return write


def _bytes(data: bytes) -> Callable[[Path], str]:
    def write(tmp_path: Path) -> str:
        (tmp_path / "policy.toml").write_bytes(data)
        return str(tmp_path / "policy.toml")

    return write


def _huge(tmp_path: Path) -> str:
    with open(tmp_path / "policy.toml", "wb") as f:
        f.truncate(SMALL + 1)
    return str(tmp_path / "policy.toml")


CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "fifo": (_fifo, "it is a FIFO (named pipe), not a regular file"),
    "dev zero": (lambda _: "/dev/zero", "it is a character device, not a regular file"),
    "directory": (lambda tmp: str(tmp), "it is a directory"),
    "missing": (lambda tmp: str(tmp / "nope.toml"), "no such file"),
    "over 4 MiB": (_huge, "it is larger than 4 MiB"),
    "5000-deep arrays": (_text("x = " + "[" * 5000 + "]" * 5000), "nested too deeply"),
    "5000-deep tables": (_text("x = " + "{a = " * 5000 + "1" + "}" * 5000), "nested too deeply"),
    "5000-digit integer": (_text("[files]\nmax_bytes = " + "9" * 5000), "too many digits"),
    "not utf-8": (_bytes(b"[files]\nallow = ['\xff']\n"), "not UTF-8"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_share_with_a_hostile_policy_file_exits_2_with_one_sentence(
    case: str, tmp_path: Path
) -> None:
    make, what = CASES[case]
    path = make(tmp_path)
    try:
        done = subprocess.run(
            [*TOOLKIT, "share", "--listen", "127.0.0.1:0", "--policy", path],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"share --policy {case} still running after {TIMEOUT} s: it hangs")
    assert done.returncode == ExitCode.USAGE, done.stderr
    assert what in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "bug" not in done.stderr, done.stderr
    assert done.stdout == ""
    first = done.stderr.strip().splitlines()[0]
    assert path in first, first  # names the file
