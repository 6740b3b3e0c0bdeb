"""The shipped unit file (contrib/systemd/toolkit-serve.service) is one systemd accepts.

``systemd-analyze verify`` checks it where systemd-analyze exists; its exit
status misses unknown keys and bad values (it only warns), so any line it
says about our unit fails the test. The command line in ExecStart must be
one toolkit serve takes.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.helpers import tool
from tests.integration.share_process import TOOLKIT, Person

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "toolkit-serve.service"
INSTALLED = "/usr/local/bin/toolkit"


def analyze() -> str:
    path = tool("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return path


def exec_start(text: str) -> list[str]:
    """ExecStart's words, continuation lines joined."""
    joined = text.replace("\\\n", " ")
    (line,) = [line for line in joined.splitlines() if line.startswith("ExecStart=")]
    return shlex.split(line.removeprefix("ExecStart="))


def unit_here(tmp_path: Path, text: str | None = None) -> Path:
    """The unit with ExecStart's toolkit replaced by this checkout's (verify wants it to exist)."""
    text = text if text is not None else UNIT.read_text()
    toolkit = Path(TOOLKIT[0]).with_name("toolkit")
    assert toolkit.exists(), toolkit
    path = tmp_path / UNIT.name
    path.write_text(text.replace(INSTALLED, str(toolkit)))
    return path


def verify(unit: Path) -> list[str]:
    """What systemd-analyze verify says about ``unit`` (other units' warnings left out)."""
    done = subprocess.run(
        [analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    said = [line for line in done.stderr.splitlines() if unit.name in line]
    if done.returncode != 0:
        said.append(f"exit {done.returncode}: {done.stderr.strip()}")
    return said


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert verify(unit_here(tmp_path)) == []


def test_the_check_would_catch_a_mistake(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly")
    said = verify(unit_here(tmp_path, broken))
    assert said and "protect system" in said[0].lower()


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    unit = unit_here(tmp_path)
    done = subprocess.run(
        [analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze has no security --offline (systemd < 250)")
    level = next(line for line in done.stdout.splitlines() if "Overall exposure level" in line)
    exposure = float(level.split(":")[1].split()[0])
    assert exposure <= 2.5, level


def test_exec_start_is_a_command_line_toolkit_serve_takes(tmp_path: Path) -> None:
    words = exec_start(UNIT.read_text())
    assert words[0] == INSTALLED and words[1] == "serve"
    # The files it names do not exist here: toolkit serve says so, and that is all.
    person = Person.make(tmp_path / "service")
    done = person.toolkit(*words[1:])
    assert done.returncode == 2
    assert "Cannot read the allowed signers file /etc/toolkit/grant_issuers" in done.stderr
    assert "No such option" not in done.stderr


def test_the_environment_puts_the_key_where_the_unit_says(tmp_path: Path) -> None:
    """With the unit's Environment= (moved under tmp_path), the key lands where it says."""
    text = UNIT.read_text()
    assert "DynamicUser=" not in text  # a dynamic user's state would not keep the key
    env = {}
    for line in text.splitlines():
        if line.startswith("Environment="):
            name, _, value = line.removeprefix("Environment=").partition("=")
            env[name] = str(tmp_path) + value if value.startswith("/") else value
    person = Person.make(tmp_path / "unused")
    done = subprocess.run(
        [*TOOLKIT, "serve", "--show-host-key"],
        env={**person.env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    promised = "/var/lib/toolkit/agent/host_key"
    assert promised in text
    assert (tmp_path / promised.lstrip("/")).is_file()
    assert "StateDirectory=toolkit" in text  # /var/lib/toolkit, kept across restarts


def test_the_logrotate_snippet_in_the_docs_parses(tmp_path: Path) -> None:
    """docs/serve.md's logrotate snippet, with its path and user moved here, in debug mode."""
    logrotate = tool("logrotate")
    if logrotate is None:
        pytest.skip("logrotate is not installed (Debian package logrotate)")
    import getpass
    import grp
    import os

    docs = (ROOT / "docs" / "serve.md").read_text()
    snippet = docs.split("# /etc/logrotate.d/toolkit-serve\n", 1)[1].split("```", 1)[0]
    log = tmp_path / "serve.log"
    log.write_text("{}\n")
    group = grp.getgrgid(os.getgid()).gr_name
    config = tmp_path / "toolkit-serve"
    config.write_text(
        snippet.replace("/var/log/toolkit/serve.log", str(log)).replace(
            "toolkit toolkit", f"{getpass.getuser()} {group}"
        )
    )
    done = subprocess.run(
        [logrotate, "-d", "-s", str(tmp_path / "state"), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower(), done.stderr
