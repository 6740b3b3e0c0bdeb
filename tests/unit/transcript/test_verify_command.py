"""`toolkit verify` without typer: the same output, exit codes and errors as through typer.

toolkit/cli/__init__.py runs a plain ``toolkit verify FILE... [--allowed-signers
F] [--json]`` line itself and leaves every other line to typer. Each case
here runs once each way, in process, and compares stdout, stderr and the
exit code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import toolkit.cli
from tests.helpers import new_signer, record_sample, write_allowed_signers
from toolkit.cli import run


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    signer = new_signer()
    sealed = record_sample(tmp_path / "sealed.cast", signer, events=3)
    made = {"sealed": sealed, "signers": write_allowed_signers(tmp_path / "as", signer)}
    made["stranger"] = write_allowed_signers(tmp_path / "stranger", new_signer())
    made["unsealed"] = tmp_path / "unsealed.cast"
    shutil.copy(sealed, made["unsealed"])
    made["tampered"] = tmp_path / "tampered.cast"
    made["tampered"].write_bytes(sealed.read_bytes().replace(b"line 1", b"line 7"))
    shutil.copy(f"{sealed}.sig", f"{made['tampered']}.sig")
    made["junk"] = tmp_path / "notes.txt"
    made["junk"].write_text("hello\n")
    made["bad_signers"] = tmp_path / "bad_signers"
    made["bad_signers"].write_text("alice@example.com ssh-ed25519 notbase64!!\n")
    for odd in ["[bold]x [red].cast", ":smile: 12:30:45.cast", "café ☃.cast"]:
        made[odd] = tmp_path / odd
        shutil.copy(sealed, made[odd])
        shutil.copy(f"{sealed}.sig", f"{made[odd]}.sig")
    made["dir"] = tmp_path
    made["missing"] = tmp_path / "missing.cast"
    return made


CASES = [
    ["sealed", "--allowed-signers", "signers"],
    ["sealed", "--allowed-signers=signers"],
    ["--json", "sealed", "--allowed-signers", "signers"],
    ["sealed", "unsealed", "tampered", "junk", "--allowed-signers", "signers", "--json"],
    ["sealed", "unsealed", "tampered", "junk", "missing", "dir", "--allowed-signers", "signers"],
    ["sealed", "--allowed-signers", "stranger"],
    ["sealed"],  # no allowed_signers anywhere
    ["sealed", "--json"],
    ["tampered", "--allowed-signers", "signers"],
    ["sealed", "--allowed-signers", "bad_signers"],
    ["sealed", "--allowed-signers", "missing"],
    ["sealed", "--allowed-signers", "dir"],  # typer refuses a directory
    ["[bold]x [red].cast", ":smile: 12:30:45.cast", "café ☃.cast", "--allowed-signers", "signers"],
    [":smile: 12:30:45.cast", "--allowed-signers", "signers", "--json"],
    ["sealed", "--allowed-signers"],
    ["sealed", "--json", "--json", "--allowed-signers", "signers"],
    ["sealed", "--allowed-signers", "signers", "--allowed-signers", "stranger"],
    ["sealed", "--", "unsealed"],
    ["sealed", "-v"],
    ["--help"],
    [],
]


def _args(case: list[str], files: dict[str, Path]) -> list[str]:
    def one(word: str) -> str:
        if word.startswith("--allowed-signers="):
            return f"--allowed-signers={files[word.partition('=')[2]]}"
        return str(files[word]) if word in files else word

    return ["verify", *map(one, case)]


def _through_typer(args: list[str]) -> int:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(toolkit.cli, "_plain_verify", lambda args: None)
        return run(args)


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c) or "nothing" for c in CASES])
def test_the_same_as_through_typer(
    case: list[str], files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(case, files)
    fast = run(args)
    fast_out = capsys.readouterr()
    typer = _through_typer(args)
    typer_out = capsys.readouterr()
    assert (fast, fast_out.out, fast_out.err) == (typer, typer_out.out, typer_out.err)
    assert fast_out.out or fast_out.err


def test_relative_paths_are_shown_as_typer_shows_them(
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["verify", ".//sealed.cast", "./missing/../sealed.cast", "--allowed-signers", "./as"]
    fast = run(args), capsys.readouterr()
    assert fast == (_through_typer(args), capsys.readouterr())
    assert fast[1].out.startswith("sealed.cast\n")
    assert fast[1].out.endswith("\nSEALED sealed.cast\n")


def test_verbose_from_an_earlier_command_does_not_stick(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    run(["-v", "verify", str(files["sealed"])])
    assert run(_args(["sealed", "--allowed-signers", "bad_signers"], files)) == 2
    assert "cause:" not in capsys.readouterr().err


def test_plain_lines_are_run_without_typer_or_a_rich_console(files: dict[str, Path]) -> None:
    code = (
        "import sys; from toolkit.cli import run; code = run(sys.argv[1:]);"
        "print(code, sorted({'typer', 'click', 'rich.console'} & set(sys.modules)))"
    )
    args = _args(["sealed", "--allowed-signers", "signers"], files)
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.splitlines()[-1] == "0 []"
    assert done.stdout.splitlines()[-2].startswith("SEALED")


def test_completion_mode_is_left_to_typer(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = _args(["sealed", "--allowed-signers", "signers"], files)
    assert toolkit.cli._plain_verify(args) is not None
    monkeypatch.setenv("_TOOLKIT_COMPLETE", "bash_complete")
    assert toolkit.cli._plain_verify(args) is None
