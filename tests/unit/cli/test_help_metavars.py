"""Help texts name what a person types (TICKET, SECONDS), never a Python type (<str>)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer

from toolkit.cli.app import app

#: What typer shows for a parameter with no metavar: <str>, <list[Path]>, <float range>, <file>,
#: and {ticket} for an argument in the usage line.
_PYTHON_TYPE = re.compile(r"<[a-z][A-Za-z0-9_\[\], |]*>|\{[a-z_]+\}")


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _help(path: tuple[str, ...]) -> str:
    command: Any = typer.main.get_command(app)
    ctx = command.make_context("toolkit", [], resilient_parsing=True)
    for name in path:
        command = command.commands[name]
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    return str(command.get_help(ctx))


ALL = list(_commands(typer.main.get_command(app)))


def test_every_command_is_walked() -> None:
    # The walk must reach nested groups, or the test below checks little.
    assert ("connect",) in ALL
    assert ("tickets", "login") in ALL
    assert ("keys", "init") in ALL


@pytest.mark.parametrize("path", ALL, ids=lambda path: " ".join(path) or "toolkit")
def test_help_shows_no_python_types(path: tuple[str, ...]) -> None:
    text = _help(path)
    assert not _PYTHON_TYPE.findall(text), text
