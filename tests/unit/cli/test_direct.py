"""share and connect without typer's start-up: the values typer would pass, or typer's turn.

toolkit/cli/_direct.py reads a plain share or connect line itself, from the
commands' typer annotations. Every line here is read both ways: where the
direct reader takes a line, typer must call the command with exactly the
same values; the lines a session starts with must be taken.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given, settings
from hypothesis import strategies as st
from typer._click.exceptions import ClickException

import toolkit.cli._direct
from toolkit.cli import run
from toolkit.cli._direct import plain_values
from toolkit.cli.connect import connect_command
from toolkit.cli.share import share_command

COMMANDS: dict[str, Callable[..., Any]] = {"share": share_command, "connect": connect_command}


def _through_typer(command: Callable[..., Any], args: list[str]) -> dict[str, Any] | None:
    """The values typer calls ``command`` with for ``args``; None if typer refuses the line."""
    seen: dict[str, Any] = {}

    @functools.wraps(command)
    def spy(**values: Any) -> None:
        seen.update(values)

    app = typer.Typer()
    app.command()(spy)
    try:
        app(args=args, prog_name="toolkit", standalone_mode=False)
    except ClickException:
        return None
    return seen


@pytest.fixture
def words(tmp_path: Path) -> dict[str, str]:
    policy = tmp_path / "policy.toml"
    policy.write_text("")
    batch = tmp_path / "batch.txt"
    batch.write_text("run uptime\n")
    unreadable = tmp_path / "unreadable"
    unreadable.write_text("")
    unreadable.chmod(0)
    return {
        "FILE": str(policy),
        "BATCH": str(batch),
        "DIR": str(tmp_path),
        "MISSING": str(tmp_path / "missing"),
        "UNREADABLE": str(unreadable),
    }


# Lines the direct reader must take (what sessions start with).
TAKEN = [
    ["share", "--yes", "--json", "--policy", "FILE"],
    ["share"],
    ["share", "--listen", "0.0.0.0:2222", "--ttl", "30", "--scope", "fixes", "--scope", "shell"],
    ["share", "--listen=[::1]:0", "--ttl=7.25", "--code-file", "MISSING", "--allowed-signers=FILE"],
    ["share", "--relay", "alice@relay.example:2222", "--relay-dir", "/srv/rv", "--json"],
    ["connect", "127.0.0.1:5", "--code", "123-456-789", "--ticket", "BENCH-1", "--batch", "BATCH"],
    ["connect", "--ticket", "T-1", "h:22", "--batch", "-", "--json", "--scope", "diagnostics"],
    ["connect", "h:22", "--ticket=T-1", "--agent=", "--key", "FILE"],
    ["connect", "--relay", "relay.example", "--ticket", "T-1", "--code", "12-345-678"],
    ["connect", "-", "--ticket", "T-1"],
]
# Lines left to typer, or read the same way.
OTHERS = [
    ["share", "--help"],
    ["share", "-h"],
    ["share", "--ttl", "0.5"],
    ["share", "--ttl", "1e3"],
    ["share", "--ttl", "-1"],
    ["share", "--ttl", "ten"],
    ["share", "--ttl", "1."],
    ["share", "--yes", "--yes"],
    ["share", "--yes=1"],
    ["share", "--listen"],
    ["share", "--listen", "-1"],
    ["share", "--listen", "a", "--listen", "b"],
    ["share", "--policy", "DIR"],
    ["share", "--policy", ""],
    ["share", "--allowed-signers", "DIR"],
    ["share", "--allowed-signers", "UNREADABLE"],
    ["share", "--allowed-signers", "MISSING"],
    ["share", "--bogus"],
    ["share", "extra"],
    ["share", "--", "--yes"],
    ["share", "--scope"],
    ["connect"],
    ["connect", "h:1"],
    ["connect", "h:1", "h:2", "--ticket", "T"],
    ["connect", "h:1", "--ticket", "T", "--key", "DIR"],
    ["connect", "h:1", "--ticket", "T", "--key", "UNREADABLE"],
    ["connect", "h:1", "--ticket", "T", "-k", "FILE"],
    ["connect", "h:1", "--ticket", "T", "--agent", "SHA256:abc"],
    ["connect", "h:1", "--ticket", "T", "--code=-1"],
    ["connect", "--ticket", "T", "--", "h:1"],
]


def _line(case: list[str], words: dict[str, str]) -> list[str]:
    def one(word: str) -> str:
        name, eq, value = word.partition("=")
        if eq and value in words:
            return f"{name}={words[value]}"
        return words.get(word, word)

    return [one(w) for w in case]


@pytest.mark.parametrize("case", TAKEN + OTHERS, ids=[" ".join(c) for c in TAKEN + OTHERS])
def test_the_values_typer_passes(case: list[str], words: dict[str, str]) -> None:
    line = _line(case, words)
    command = COMMANDS[line[0]]
    mine = plain_values(command, line[1:])
    if case in TAKEN:
        assert mine is not None
    if mine is not None:
        assert mine == _through_typer(command, line[1:])


_VOCABULARY = [
    "--yes", "--json", "--ttl", "--ttl=", "--listen", "--listen=", "--scope", "--policy",
    "--code-file", "--allowed-signers", "--relay", "--relay-dir", "--ticket", "--ticket=",
    "--code", "--batch", "--key", "--agent", "--agent=", "-h", "--", "-", "-1", "0", "1",
    "1.5", "30", "1e3", "", "fixes", "h:1", "x", "FILE", "DIR", "MISSING", "--bogus",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(COMMANDS)),
    tokens=st.lists(st.sampled_from(_VOCABULARY), max_size=7),
    data=st.data(),
)
def test_any_line_is_read_as_typer_reads_it_or_left_to_it(
    name: str, tokens: list[str], data: st.DataObject, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("words")
    (root / "file").write_text("")
    words = {"FILE": str(root / "file"), "DIR": str(root), "MISSING": str(root / "missing")}
    line = [words.get(t, t) for t in tokens]
    for i, token in enumerate(line):  # "--name=" takes a word after the "=" too
        if token.endswith("="):
            line[i] = token + data.draw(st.sampled_from(["", "2", "x", words["FILE"]]))
    mine = plain_values(COMMANDS[name], line)
    if mine is not None:
        assert mine == _through_typer(COMMANDS[name], line)


FAILING = [
    ["connect", "h:1", "--ticket", "T-1", "--code", "123-456-789", "--batch", "BATCH"],  # no key
    ["connect", "h", "--ticket", "T-1", "--batch", "BATCH"],  # no port
    ["connect", "h:1", "--ticket", "T-1", "--batch", "MISSING"],
    ["connect", "h:1", "--ticket", "T 1", "--batch", "BATCH"],
    ["connect", "h:1", "--ticket", "T-1", "--scope", "root", "--batch", "BATCH"],
    ["connect", "--ticket", "T-1", "--batch", "BATCH"],
    ["share", "--listen", "::1:22"],
    ["share", "--scope", "everything", "--yes"],
    ["share", "--policy", "MISSING", "--yes"],
]


@pytest.mark.parametrize("case", FAILING, ids=[" ".join(c) for c in FAILING])
def test_the_same_output_and_exit_code_as_through_typer(
    case: list[str], words: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    line = _line(case, words)
    assert toolkit.cli._direct.plain_call(line, "_TOOLKIT_COMPLETE") is not None
    direct = run(line), capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(toolkit.cli._direct, "plain_call", lambda args, var: None)
        typed = run(line), capsys.readouterr()
    assert direct == typed
    assert direct[0] != 0


def test_completion_mode_is_left_to_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    line = ["connect", "h:1", "--ticket", "T-1"]
    assert toolkit.cli._direct.plain_call(line, "_TOOLKIT_COMPLETE") is not None
    monkeypatch.setenv("_TOOLKIT_COMPLETE", "bash_complete")
    assert toolkit.cli._direct.plain_call(line, "_TOOLKIT_COMPLETE") is None


def test_a_plain_line_does_not_build_the_typer_app(tmp_path: Path) -> None:
    batch = tmp_path / "batch.txt"
    batch.write_text("run uptime\n")
    code = (
        "import sys; from toolkit.cli import run;"
        "code = run(['connect', 'h:1', '--ticket', 'T-1', '--code', '123-456-789',"
        f" '--batch', {str(batch)!r}]);"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'"
        " or m == 'toolkit.cli.app'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "1 []"  # no key: exit 1, before any import
