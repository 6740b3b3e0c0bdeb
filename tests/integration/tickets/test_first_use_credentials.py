"""Issue 15: ticket credentials on a machine without a desktop keyring, against the real systems.

Redmine and Request Tracker 5 (Debian's packages, see conftest.py). Every
toolkit here runs as its own process, with keyring's "fail" backend (no
keyring at all, as on a headless server), as a technician on such a machine would.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.tickets.systems import System

PASSPHRASE = "correct horse battery"


@pytest.fixture(params=["redmine", "rt"])
def system(request: pytest.FixtureRequest) -> System:
    found: System = request.getfixturevalue(request.param)
    return found


def toolkit(*args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **env}
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=180,
        check=False,
    )


def login(
    system: System, secret: str | None, url: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    args = ["tickets", "login", system.name, "--url", url or system.url, "--default"]
    if system.name == "redmine":
        args += ["--option", "project=support"]
    if secret is not None:
        args.append("--secret-stdin")
    return toolkit(*args, stdin=f"{secret}\n" if secret is not None else "", **env)


def _config() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "toolkit" / "tickets.toml"


def _credentials() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "toolkit" / "ticket-credentials.json"


def test_login_checks_then_keeps_the_key_in_the_encrypted_file(system: System) -> None:
    done = login(system, system.credential, TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    checked = "(user admin)." if system.name == "redmine" else "API token (RT 5."
    assert checked in done.stderr
    assert "encrypted with your passphrase (no usable OS keyring was found)" in done.stderr
    assert system.credential not in _credentials().read_text()
    assert system.credential not in _config().read_text()
    made = toolkit("tickets", "new", "--subject", "Printer jams", TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert made.returncode == 0, made.stderr
    shown = toolkit("tickets", "show", made.stdout.strip(), TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert shown.returncode == 0, shown.stderr
    assert f"ticket {made.stdout.strip()}: Printer jams" in shown.stdout


def test_a_wrong_key_or_url_is_one_sentence_and_nothing_is_saved(
    system: System, redmine: System, rt: System
) -> None:
    env = {"TOOLKIT_KEY_PASSPHRASE": PASSPHRASE}
    wrong = login(system, "0" * 40, **env)
    assert wrong.returncode == 5
    what = "API key" if system.name == "redmine" else "API token"
    assert wrong.stderr.splitlines()[0] == (
        f"{system.name} at {system.url} refused the {what} (HTTP 401); nothing was saved."
    )
    assert "0" * 40 not in wrong.stderr
    # The other system's address: something answers, but not this system's API.
    other = rt if system.name == "redmine" else redmine
    elsewhere = login(system, system.credential, url=other.url, **env)
    assert elsewhere.returncode == 5, elsewhere.stderr
    first = elsewhere.stderr.splitlines()[0]
    assert first.endswith("; nothing was saved.") and "Traceback" not in elsewhere.stderr
    assert first.startswith(f"{other.url} does not answer as {system.name} does (")
    assert "Check --url" in elsewhere.stderr
    assert not _config().exists() and not _credentials().exists()


def test_a_token_in_the_environment_works_and_is_never_written(
    system: System, tmp_path: Path
) -> None:
    variable = f"TOOLKIT_TICKETS_{system.name.upper()}_TOKEN"
    done = login(system, None, **{variable: system.credential})
    assert done.returncode == 0, done.stderr
    assert f"comes from {variable} and was not stored." in done.stderr
    made = toolkit("tickets", "new", "--subject", "CI", **{variable: system.credential})
    assert made.returncode == 0, made.stderr
    assert not _credentials().exists()
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert system.credential.encode() not in path.read_bytes(), path
