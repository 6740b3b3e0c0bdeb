"""The technician's status line fits the terminal, parts dropped whole (issue 15, round 2)."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from toolkit.cli import shell as shell_module
from toolkit.cli.prompt import status_line
from toolkit.consent import Scope

ALL = frozenset({Scope.DIAGNOSTICS, Scope.FIXES, Scope.SHELL})
KEYS = "Tab, Ctrl-C cancels, Ctrl-D ends"


class Shell:
    closed = False


def session(host: str = "customer-laptop", shell: Shell | None = None) -> Any:
    consent = SimpleNamespace(ticket="T-1", granted=ALL)
    return SimpleNamespace(info={"host": host}, consent=consent, shell=shell)


def plain(width: int, **kwargs: Any) -> str:
    from prompt_toolkit.formatted_text import to_plain_text

    return to_plain_text(status_line(session(**kwargs), time.monotonic() - 12, width))


def words_of(line: str) -> set[str]:
    return {w.strip(",:") for w in line.split()}


def test_wide_enough_everything_shows() -> None:
    line = plain(200)
    assert line == (
        f" ticket T-1 | host customer-laptop | scope diagnostics, fixes, shell | 00:12 | {KEYS} "
    )


@pytest.mark.parametrize("width", [80, 60, 40, 24])
def test_narrow_lines_fit_and_keep_only_whole_parts(width: int) -> None:
    full = plain(200)
    line = plain(width)
    assert len(line) < width, line
    assert line.startswith(" ticket T-1"), line
    assert words_of(line) <= words_of(full), line  # nothing cut mid-word
    if width == 80:  # what gives way first: the keys' hint is shortened, the host goes
        assert line == " ticket T-1 | scope diagnostics, fixes, shell | 00:12 | Ctrl-D ends ", line


def test_a_detached_shell_says_how_to_go_back_at_80_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shell = Shell()
    attachments: Any = shell_module._attachments  # as ~^Z leaves it
    monkeypatch.setitem(attachments, shell, object())
    line = plain(80, shell=shell)
    assert len(line) < 80, line
    assert "shell detached: type shell to go back" in line, line
    assert "(shell returns)" not in line
    assert plain(200, shell=shell).count("shell detached: type shell to go back") == 1
