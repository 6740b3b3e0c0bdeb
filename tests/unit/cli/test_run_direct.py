"""`toolkit run` without typer's start-up (toolkit/cli/_direct.py): the values typer would pass."""

from __future__ import annotations

import pytest

import toolkit.cli._direct
from tests.unit.cli.test_direct import _through_typer
from toolkit.cli import run
from toolkit.cli._direct import plain_values
from toolkit.cli.run_fix import run_command

TAKEN = [
    ["mark", "127.0.0.1:5", "--code", "123-456-789", "--ticket", "BENCH-1", "--check"],
    ["mark", "h:1", "--ticket=T-1", "--param", "name=x", "--json"],
    ["mark", "--relay", "relay.example", "--ticket", "T-1", "--relay-dir", "/srv/rv"],
]
OTHERS = [
    ["mark", "h:1", "--ticket", "T-1", "-p", "name=x"],  # a short option: typer's
    ["mark", "h:1", "--ticket", "T-1", "--param", "a=1", "--param", "b=2"],
    ["mark", "h:1", "--ticket", "T-1", "--param", "name=-rf"],
]


@pytest.mark.parametrize("line", TAKEN + OTHERS, ids=" ".join)
def test_the_values_typer_passes(line: list[str]) -> None:
    mine = plain_values(run_command, line)
    if line in TAKEN:
        assert mine is not None
    if mine is not None:
        assert mine == _through_typer(run_command, line)


@pytest.mark.parametrize(
    "line",
    [
        ["run", "Not-A-Name", "h:1", "--ticket", "T-1", "--code", "123-456-789"],
        ["run", "mark", "h", "--ticket", "T-1", "--code", "123-456-789"],
        ["run", "mark", "h:1", "--ticket", "T 1", "--code", "123-456-789"],
        ["run", "mark", "h:1", "--ticket", "T-1", "--param", "novalue", "--json"],
    ],
    ids=" ".join,
)
def test_the_same_output_and_exit_code_as_through_typer(
    line: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert toolkit.cli._direct.plain_call(line, "_TOOLKIT_COMPLETE") is not None
    direct = run(line), capsys.readouterr()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(toolkit.cli._direct, "plain_call", lambda args, var: None)
        typed = run(line), capsys.readouterr()
    assert direct == typed
    assert direct[0] == 2
