"""Issue 15, first use: `toolkit keys init` asks, ticket credentials anywhere, tickets read well.

Driven as a person would: the CLI in process for output, as a subprocess for
exit codes, in tmux for prompts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import new_signer, record_sample
from tests.integration.share_process import Person
from tests.integration.terminal import Tmux
from toolkit.cli import run as toolkit
from toolkit.tickets.local import LocalTickets
from toolkit.tickets.outbox import Outbox


def _toolkit(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """toolkit as its own process, without a terminal, in this test's dirs."""
    return subprocess.run(
        [sys.executable, "-m", "toolkit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


# -- tickets list / show ------------------------------------------------------------------


def _attached_session(tmp_path: Path, ticket: str, name: str = "s") -> Path:
    """A sealed sample session attached to local ``ticket`` the way connect does it."""
    signer = new_signer()
    cast = record_sample(tmp_path / f"{name}.cast", signer)
    entry = Outbox().enqueue("local", ticket, cast, signer, None)
    assert Outbox().deliver(entry, LocalTickets()) is not None
    return cast


def test_list_has_a_header_and_each_tickets_subject(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert toolkit(["tickets", "new", "--subject", "Printer jams on tray 2"]) == 0
    made = capsys.readouterr().out.strip()
    _attached_session(tmp_path, made)
    _attached_session(tmp_path, "T-9", "other")  # a ticket named by connect --ticket: no subject
    assert toolkit(["tickets", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TICKET", "SUBJECT", "FILES", "LAST", "ATTACHED"]
    assert lines[1].startswith(made) and "Printer jams on tray 2" in lines[1]
    assert lines[1].split()[-2] == "4"  # transcript, seal, manifest and its signature
    assert lines[2].split()[:4] == ["T-9", "-", "4", lines[2].split()[3]]
    # The columns line up under the header.
    assert lines[1].index("Printer") == lines[0].index("SUBJECT")
    assert toolkit(["tickets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(t["ticket"], t["subject"], t["attachments"]) for t in listed] == [
        (made, "Printer jams on tray 2", 4),
        ("T-9", None, 4),
    ]
    assert all(t["last_attached"] for t in listed)


def test_list_with_no_tickets_says_so_without_a_header() -> None:
    done = _toolkit("tickets", "list")
    assert done.returncode == 0 and done.stdout == "No tickets yet.\n"


def test_show_prints_the_stored_summary_once_with_its_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cast = _attached_session(tmp_path, "T-7")
    done = _toolkit("tickets", "show", "T-7")
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    stored = LocalTickets().ticket("T-7").attachments[0].comment
    # The whole summary, once: not its first line once per attached file.
    assert shown.count("toolkit session transcript") == 1
    for line in stored.splitlines():
        assert line.strip() in shown
    assert "Verified right before upload: SEALED" in shown
    assert "attached " in shown and ", 4 files:" in shown
    for name in (cast.name, cast.name + ".sig", "s.SHA256SUMS", "s.SHA256SUMS.sig"):
        assert f"  {name} " in shown
    # A second session on the same ticket: a second group with its own summary.
    _attached_session(tmp_path, "T-7", "second")
    shown = _toolkit("tickets", "show", "T-7").stdout
    assert shown.count("toolkit session transcript") == 2
    assert shown.count(", 4 files:") == 2


def test_show_makes_a_hostile_summary_printable(tmp_path: Path) -> None:
    src = tmp_path / "x.cast"
    src.write_bytes(b"data")
    LocalTickets().attach("T-3", [src], "line one\x1b]0;pwned\x07\nline two")
    shown = _toolkit("tickets", "show", "T-3").stdout
    assert "\x1b" not in shown and "\x07" not in shown
    assert "line one\\x1b]0;pwned\\x07" in shown and "    line two" in shown


# -- keys init, as gh auth login asks ---------------------------------------------------------

PASSPHRASE = "correct horse battery"


@dataclass(frozen=True)
class Newcomer(Person):
    """A technician on a machine without a keyring who has never run toolkit."""

    def env(self) -> dict[str, str]:
        env = super().env()
        del env["TOOLKIT_KEY_PASSPHRASE"]  # nothing set up: toolkit has to ask
        return env


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (Debian package tmux)")
    terminals = Tmux(tmp_path)
    try:
        yield terminals
    finally:
        terminals.kill()


@pytest.fixture
def newcomer(tmp_path: Path) -> Newcomer:
    # The same dirs as this test's own (conftest's isolated), so the test reads what it made.
    made = Newcomer.make(tmp_path)
    return Newcomer(made.root)


def _shown_identity() -> dict[str, str]:
    done = _toolkit("keys", "show", "--json")
    assert done.returncode == 0, done.stderr
    view: dict[str, str] = json.loads(done.stdout)
    return view


def test_init_with_no_flags_asks_name_email_and_checks_the_passphrase_first(
    tmux: Tmux, newcomer: Newcomer
) -> None:
    tmux.start("init", newcomer, "keys", "init", width=80, height=24)
    tmux.wait_for("init", "Your name, as customers will see it")
    tmux.type("init", "Alice Tech")
    tmux.wait_for("init", "Your email")
    tmux.type("init", "alice at example")
    screen = tmux.wait_for("init", "Try again.")
    assert "Give an email address like alice@example.com." in screen
    tmux.wait_for("init", "Your email", count=2)
    tmux.type("init", "alice@example.com")
    screen = tmux.wait_for("init", "Key passphrase")
    assert "No usable OS keyring here" in screen
    # Too short: said at once, and asked anew, not "again".
    tmux.type("init", "short")
    screen = tmux.wait_for("init", "at least 8 characters; try again.")
    assert "Same passphrase again" not in screen
    tmux.wait_for("init", "Key passphrase", count=2)
    tmux.type("init", PASSPHRASE)
    tmux.wait_for("init", "Same passphrase again")
    tmux.type("init", "correct horse battery staple")
    tmux.wait_for("init", "The two passphrases differ; try again.")
    tmux.wait_for("init", "Key passphrase", count=3)
    tmux.type("init", PASSPHRASE)
    tmux.wait_for("init", "Same passphrase again", count=2)
    tmux.type("init", PASSPHRASE)
    screen = tmux.wait_for("init", "[exit 0]")
    assert "Created a signing key for Alice Tech <alice@example.com>." in screen
    assert PASSPHRASE not in screen and "short" not in screen.split("Key passphrase")[1][:20]
    view = _shown_identity()
    assert (view["name"], view["email"], view["store"]) == (
        "Alice Tech",
        "alice@example.com",
        "encrypted-file",
    )
    assert view["fingerprint"] in screen
    # The file opens with the passphrase typed, and only with it.
    ok = _toolkit("keys", "show", "--key", view["key_file"], TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert ok.returncode == 0, ok.stderr
    bad = _toolkit("keys", "show", "--key", view["key_file"], TOOLKIT_KEY_PASSPHRASE="short")
    assert bad.returncode == 1 and bad.stderr.startswith("Wrong passphrase")


def test_init_asks_only_for_what_the_flags_leave_out(tmux: Tmux, newcomer: Newcomer) -> None:
    tmux.start("init", newcomer, "keys", "init", "--name", "Bob Field", "--no-passphrase")
    screen = tmux.wait_for("init", "Your email")
    assert "Your name," not in screen
    tmux.type("init", "bob@example.com")
    screen = tmux.wait_for("init", "[exit 0]")
    assert "Key passphrase" not in screen  # --no-passphrase: nothing to ask
    view = _shown_identity()
    assert (view["name"], view["email"], view["store"]) == ("Bob Field", "bob@example.com", "file")


def test_init_refuses_at_once_when_a_key_exists(tmux: Tmux, newcomer: Newcomer) -> None:
    made = _toolkit("keys", "init", "--name", "A", "--email", "a@example.com", "--no-passphrase")
    assert made.returncode == 0, made.stderr
    tmux.start("init", newcomer, "keys", "init")
    screen = tmux.wait_for("init", "[exit 1]")
    assert "A technician key already exists" in screen and "--force" in screen
    assert "Your name," not in screen  # nobody typed anything for nothing


def test_init_without_flags_or_terminal_is_a_usage_error() -> None:
    done = _toolkit("keys", "init", stdin="")
    assert done.returncode == 2
    assert done.stderr.startswith(
        "toolkit keys init needs --name and --email when there is no terminal to ask."
    )
    assert "Traceback" not in done.stderr and done.stdout == ""
    one = _toolkit("keys", "init", "--email", "a@example.com", stdin="")
    assert one.returncode == 2 and "needs --name when" in one.stderr
    assert _toolkit("keys", "show").returncode == 1  # nothing was made


def test_init_with_flags_and_a_short_passphrase_from_the_environment_is_refused() -> None:
    args = ("keys", "init", "--name", "A", "--email", "a@example.com")
    done = _toolkit(*args, stdin="", TOOLKIT_KEY_PASSPHRASE="short")
    assert done.returncode == 2 and "at least 8 characters" in done.stderr
    done = _toolkit(*args, stdin="", TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("SHA256:")
