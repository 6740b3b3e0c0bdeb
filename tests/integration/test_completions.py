"""Shipped shell completions are current and actually complete."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TOOLKIT = Path(sys.executable).with_name("toolkit")


def _toolkit(**env: str) -> str:
    done = subprocess.run(
        [TOOLKIT], env={**os.environ, **env}, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_committed_scripts_are_current(shell: str) -> None:
    committed = (ROOT / "completions" / f"toolkit.{shell}").read_text()
    assert committed == _toolkit(_TOOLKIT_COMPLETE=f"source_{shell}"), (
        "completions/ is stale: run scripts/completions.sh"
    )


def test_bash_completes_commands_and_subcommands() -> None:
    done = _toolkit(COMP_WORDS="toolkit ke", COMP_CWORD="1", _TOOLKIT_COMPLETE="complete_bash")
    assert done.split() == ["keys"]
    words = _toolkit(
        COMP_WORDS="toolkit keys ", COMP_CWORD="2", _TOOLKIT_COMPLETE="complete_bash"
    ).split()
    assert {"init", "show", "allowed-signers"} <= set(words)


def test_bash_completes_the_local_stores_ticket_ids(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    made = subprocess.run(
        [TOOLKIT, "tickets", "new", "--subject", "Printer offline", "--json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    ticket = json.loads(made.stdout)["ticket"]
    for command in ("show", "download"):
        words = _toolkit(
            COMP_WORDS=f"toolkit tickets {command} {ticket[:2]}",
            COMP_CWORD="3",
            _TOOLKIT_COMPLETE="complete_bash",
            **env,
        ).split()
        assert ticket in words, (command, words)
        none = _toolkit(
            COMP_WORDS=f"toolkit tickets {command} no-such-",
            COMP_CWORD="3",
            _TOOLKIT_COMPLETE="complete_bash",
            **env,
        ).split()
        assert ticket not in none and not any(Path(w).exists() for w in none), none
