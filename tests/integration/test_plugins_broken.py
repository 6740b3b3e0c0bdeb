"""A third party's broken plugins do not break toolkit: each is named, the rest load.

tests/assets/plugins/broken-plugin is a real distribution (a wheel built by
pip, with entry points in its metadata) installed into a directory of this
test's own, which only the ``toolkit`` processes started here have on their
PYTHONPATH: the shared venv stays as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.cli import run as toolkit

ASSET = Path(__file__).parent.parent / "assets" / "plugins" / "broken-plugin"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The broken distribution, installed by pip (offline) into a directory of its own."""
    root = tmp_path_factory.mktemp("broken-plugin")
    source = root / "source"
    shutil.copytree(ASSET, source, ignore=shutil.ignore_patterns("__pycache__"))
    target = root / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run(
        [
            *pip,
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    assert (target / "toolkit_broken_plugin-1.0.dist-info" / "entry_points.txt").is_file()
    return target


def _toolkit(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """toolkit as its own process, with the broken distribution installed."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
        check=False,
    )


def test_list_shows_the_good_ones_and_names_each_broken_one(site: Path) -> None:
    done = _toolkit(site, "plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    plugins = {p["name"]: p for p in listed["plugins"]}
    assert list(plugins) == sorted(plugins)
    assert {"builtin", "ticket-backends", "good", "duplicate", "tickets-legacy"} <= set(plugins)
    good = plugins["good"]
    assert good["distribution"] == "toolkit-broken-plugin 1.0"
    assert good["entry_point"] == "toolkit_broken.good:plugin"
    assert [(p["kind"], p["name"], p["runs_here"]) for p in good["procedures"]] == [
        ("diagnostic", "kernel", True),
        ("fix", "flag-file", True),
        ("diagnostic", "windows-version", False),
    ]  # "greeting" is refused: the plugin "duplicate" gives one too
    assert [p["name"] for p in plugins["duplicate"]["procedures"]] == ["uptime-only"]
    assert "uses the old form" in plugins["tickets-legacy"]["deprecated"]
    broken = {(b["name"], b["reason"]) for b in listed["broken"]}
    assert broken == {
        (
            "bad-declaration",
            "a bad declaration: procedure 'run-anything': apply: "
            "a command's first word is literal.",
        ),
        ("duplicate", "diagnostic 'greeting' is also given by good; refused in both."),
        ("good", "diagnostic 'greeting' is also given by duplicate; refused in both."),
        (
            "fails-to-import",
            "it failed to import (ModuleNotFoundError: No module named "
            "'toolkit_broken_missing_dependency').",
        ),
        ("not-a-plugin", "its object is a dict, not a toolkit.plugins.Plugin."),
    }
    assert all("(toolkit-broken-plugin 1.0)" in b["origin"] for b in listed["broken"])
    assert "Not loaded: bad-declaration, fails-to-import, not-a-plugin" in done.stderr
    assert "Refused, as more than one plugin gives it: diagnostic greeting." in done.stderr


def test_list_for_people_escapes_what_a_plugin_says(site: Path) -> None:
    done = _toolkit(site, "plugins", "list")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    assert "An old-form backend \\x1b[31min red" in done.stdout
    assert "[not on this machine: windows]" in done.stdout
    lines = done.stdout.splitlines()
    broken = lines[lines.index("broken:") + 1 :]
    assert [line.split()[0] for line in broken] == [
        "bad-declaration",
        "duplicate",
        "fails-to-import",
        "good",
        "not-a-plugin",
    ]


def test_show_prints_every_step_parameter_and_file(site: Path) -> None:
    done = _toolkit(site, "plugins", "show", "flag-file", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["apply"] == [["install", "-m", "{mode}", "/dev/null", "/tmp/{flag}.flag"]]
    assert shown["rollback"] == [["rm", "-f", "/tmp/{flag}.flag"]]
    assert shown["reads"] == ["/tmp/{flag}.flag"]
    assert [(p["name"], p["type"], p["default"]) for p in shown["parameters"]] == [
        ("flag", "string", "x"),
        ("mode", "integer", None),
    ]
    assert shown["from"] == {
        "plugin": "good",
        "plugin_version": "2.1",
        "distribution": "toolkit-broken-plugin 1.0",
        "entry_point": "toolkit_broken.good:plugin",
    }
    assert len(shown["sha256"]) == 64
    text = _toolkit(site, "plugins", "show", "flag-file")
    assert text.returncode == 0, text.stderr
    assert f"  sha256     {shown['sha256']}" in text.stdout
    assert "apply (fixes, approved by the customer):\n  install -m {mode} /dev/null" in text.stdout
    assert "  mode  integer 0..777  pattern [0-7]{3}  required" in text.stdout
    other = _toolkit(site, "plugins", "show", "windows-version")
    assert "windows (does not run on this machine)" in other.stdout


GOOD = ("flag-file", "kernel", "uptime-only", "windows-version")


def test_show_refuses_unknown_and_refused_names(site: Path) -> None:
    unknown = _toolkit(site, "plugins", "show", "nope")
    assert unknown.returncode == 2
    assert "No procedure named 'nope' is installed." in unknown.stderr
    installed = unknown.stderr.split("Installed: ", 1)[1]
    # The test distribution's good names, beside what the venv has (the Linux plugin).
    assert all(f"{name}," in installed or f"{name}." in installed for name in GOOD), installed
    refused = _toolkit(site, "plugins", "show", "greeting")
    assert refused.returncode == 2
    assert "'greeting' is not available: diagnostic 'greeting' is also given by" in refused.stderr
    wrong_kind = _toolkit(site, "plugins", "show", "kernel", "--kind", "fix")
    assert wrong_kind.returncode == 2
    assert "No fix named 'kernel'" in wrong_kind.stderr


def test_ticket_backends_and_other_commands_still_work(site: Path) -> None:
    done = _toolkit(site, "tickets", "backends", "--json")
    assert done.returncode == 0, done.stderr
    names = [row["name"] for row in json.loads(done.stdout)]
    assert names == ["jira", "legacy", "local", "redmine", "rt", "servicenow", "zendesk"]
    assert "tickets.legacy uses the old form" in done.stderr
    for name in ("bad-declaration", "fails-to-import", "not-a-plugin"):
        assert f"plugin {name} did not load: " in done.stderr
    assert "plugin good did not load" not in done.stderr  # it loaded, less one name
    assert _toolkit(site, "tickets", "list").returncode == 0


def test_without_third_party_plugins_nothing_is_broken(capsys: pytest.CaptureFixture[str]) -> None:
    assert toolkit(["plugins", "list", "--json"]) == 0
    captured = capsys.readouterr()
    listed = json.loads(captured.out)
    assert listed["broken"] == []
    builtin = next(p for p in listed["plugins"] if p["name"] == "builtin")
    assert builtin["ticket_backends"][0]["name"] == "local"
    assert "Not loaded" not in captured.err
    assert toolkit(["plugins", "show", "nope"]) == 2
