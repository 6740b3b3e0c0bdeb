"""Issue 15, first use: `toolkit keys init` asks, ticket credentials anywhere, tickets read well.

Driven as a person would: the CLI in process for output, as a subprocess for
exit codes, in tmux for prompts.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import new_signer, record_sample
from tests.integration.share_process import Person
from tests.integration.terminal import Tmux
from tests.integration.tickets.fakes import SECRET, USER, Fake, serving
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


# -- ticket credentials without a desktop keyring ------------------------------------------------

JIRA_TOKEN_ENV = "TOOLKIT_TICKETS_JIRA_TOKEN"


@pytest.fixture
def jira() -> Iterator[Fake]:
    """Jira Cloud as its API documentation describes it, on 127.0.0.1."""
    with serving("jira") as fake:
        yield fake


@contextmanager
def web_site(root: Path, *, catch_all: bool) -> Iterator[str]:
    """A plain web site on 127.0.0.1 (not a ticket system); ``catch_all``: one page for all."""
    root.mkdir(exist_ok=True)
    (root / "index.html").write_text("<html><body>Welcome</body></html>")

    class Page(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            if catch_all:
                self.path = "/index.html"
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _login_jira(url: str, secret: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    args = ["tickets", "login", "jira", "--url", url, "--user", USER, "-o", "project=SUP"]
    if secret is not None:
        args.append("--secret-stdin")
    return _toolkit(*args, "--default", stdin=f"{secret}\n" if secret else "", **env)


def _config() -> Path:
    return Path(os.environ["XDG_CONFIG_HOME"]) / "toolkit" / "tickets.toml"


def _credentials_file() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "toolkit" / "ticket-credentials.json"


def _everything_written(tmp_path: Path) -> str:
    """Every file toolkit may have written in this test's dirs, as text."""
    found = []
    for sub in ("config", "data", "state", "home"):
        for path in (tmp_path / sub).rglob("*"):
            if path.is_file():
                found.append(path.read_bytes().decode("latin-1"))
    return "\n".join(found)


def test_login_without_a_keyring_keeps_the_key_in_an_encrypted_file(
    jira: Fake, tmp_path: Path
) -> None:
    # conftest's isolated: PYTHON_KEYRING_BACKEND is keyring's "fail" backend, no keyring.
    done = _login_jira(jira.url, SECRET, TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert done.returncode == 0, done.stderr
    assert f"jira at {jira.url} took the API token (account {USER})." in done.stderr
    stored = _credentials_file()
    assert f"its API token is in {stored}, encrypted with your passphrase" in done.stderr
    assert stored.stat().st_mode & 0o777 == 0o600
    assert SECRET not in _everything_written(tmp_path)  # in no file in the clear
    assert list(json.loads(stored.read_text())["entries"]) == [f"tickets/jira/{jira.url}"]
    # Later commands open it with the same passphrase...
    made = _toolkit("tickets", "new", "--subject", "VPN drops", TOOLKIT_KEY_PASSPHRASE=PASSPHRASE)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() in jira.records
    # ...and say what is wrong without it, or with another.
    nothing = _toolkit("tickets", "show", made.stdout.strip())
    assert nothing.returncode == 5
    assert nothing.stderr.startswith(
        "The ticket credentials file needs a passphrase and there is no terminal to ask for it."
    )
    assert "TOOLKIT_KEY_PASSPHRASE" in nothing.stderr
    wrong = _toolkit("tickets", "show", made.stdout.strip(), TOOLKIT_KEY_PASSPHRASE="not it at all")
    assert wrong.returncode == 5
    assert wrong.stderr.startswith(f"Wrong passphrase for the ticket credentials file {stored}.")
    # A second login to the same file must use the same passphrase: nothing changes otherwise.
    before = stored.read_bytes()
    again = _login_jira(jira.url, SECRET, TOOLKIT_KEY_PASSPHRASE="not it at all")
    assert again.returncode == 5
    assert again.stderr.splitlines()[1].startswith("Wrong passphrase for the ticket credentials")
    assert stored.read_bytes() == before


def test_login_without_a_terminal_names_both_ways_to_give_the_token(jira: Fake) -> None:
    done = _login_jira(jira.url, None)
    assert done.returncode == 2
    assert done.stderr.startswith("No terminal to ask for the API token.")
    assert "--secret-stdin" in done.stderr and JIRA_TOKEN_ENV in done.stderr
    assert not _config().exists()


def test_login_without_a_keyring_or_passphrase_source_saves_nothing(
    jira: Fake, tmp_path: Path
) -> None:
    done = _login_jira(jira.url, SECRET)
    assert done.returncode == 5
    assert "needs a passphrase and there is no terminal" in done.stderr
    assert not _config().exists() and not _credentials_file().exists()
    short = _login_jira(jira.url, SECRET, TOOLKIT_KEY_PASSPHRASE="short")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    assert not _config().exists() and not _credentials_file().exists()


def test_a_token_from_the_environment_is_checked_used_and_never_written(
    jira: Fake, tmp_path: Path
) -> None:
    done = _login_jira(jira.url, None, **{JIRA_TOKEN_ENV: SECRET})
    assert done.returncode == 0, done.stderr
    assert f"took the API token (account {USER})" in done.stderr
    assert f"its API token comes from {JIRA_TOKEN_ENV} and was not stored." in done.stderr
    assert not _credentials_file().exists()
    made = _toolkit("tickets", "new", "--subject", "CI run", **{JIRA_TOKEN_ENV: SECRET})
    assert made.returncode == 0, made.stderr
    assert SECRET not in _everything_written(tmp_path)
    # Without the variable there is no token anywhere: say where toolkit looked.
    bare = _toolkit("tickets", "show", made.stdout.strip())
    assert bare.returncode == 5
    assert bare.stderr.startswith(
        f"No API token for jira at {jira.url}: none in {JIRA_TOKEN_ENV}, the OS keyring or "
        "the credentials file."
    )
    # A wrong token in the environment is refused by the system, and never shown.
    wrong = _toolkit("tickets", "show", made.stdout.strip(), **{JIRA_TOKEN_ENV: "wrong-token"})
    assert wrong.returncode == 5 and "HTTP 401" in wrong.stderr
    assert "wrong-token" not in wrong.stderr


def test_login_checks_the_url_and_key_before_saving(jira: Fake, tmp_path: Path) -> None:
    env = {"TOOLKIT_KEY_PASSPHRASE": PASSPHRASE}
    wrong_key = _login_jira(jira.url, "not-the-token", **env)
    assert wrong_key.returncode == 5
    first = wrong_key.stderr.splitlines()[0]
    assert first == f"jira at {jira.url} refused the API token (HTTP 401); nothing was saved."
    assert "not-the-token" not in wrong_key.stderr and "Traceback" not in wrong_key.stderr
    assert "--user" in wrong_key.stderr  # jira's token goes with an account's email
    # Nothing listens there.
    with serving("jira") as gone:
        dead = gone.url
    unreachable = _login_jira(dead, SECRET, **env)
    assert unreachable.returncode == 5
    # The reason as docs/tickets.md shows it: no "[Errno 111]".
    assert unreachable.stderr.startswith(f"jira at {dead} cannot be reached (Connection refused)")
    assert "; nothing was saved." in unreachable.stderr.splitlines()[0]
    # Something answers, but not Jira: a web site with no such page, or one page for all.
    with web_site(tmp_path / "www", catch_all=False) as site:
        not_jira = _login_jira(site, SECRET, **env)
    assert not_jira.returncode == 5
    assert not_jira.stderr.startswith(f"{site} does not answer as jira does (HTTP 404);")
    assert "Check --url" in not_jira.stderr
    with web_site(tmp_path / "www", catch_all=True) as site:
        not_jira = _login_jira(site, SECRET, **env)
    assert not_jira.returncode == 5
    assert not_jira.stderr.startswith(
        f"{site} does not answer as jira does (its answer is not the API's); nothing was saved."
    )
    assert not _config().exists() and not _credentials_file().exists()
    # The one call is a read: login changed nothing on the system.
    assert jira.records == {} and jira.uploads == {}
    assert _login_jira(jira.url, SECRET, **env).returncode == 0
    assert jira.records == {}


def test_login_asks_for_the_token_and_a_new_passphrase_on_a_terminal(
    tmux: Tmux, newcomer: Newcomer, jira: Fake
) -> None:
    args = ["tickets", "login", "jira", "--url", jira.url, "--user", USER, "-o", "project=SUP"]
    tmux.start("login", newcomer, *args, width=80, height=24)
    tmux.wait_for("login", "API token")
    tmux.type("login", SECRET)
    tmux.wait_for("login", "Passphrase of the ticket credentials file")
    tmux.type("login", "short")
    tmux.wait_for("login", "at least 8 characters; try again.")
    tmux.type("login", PASSPHRASE)
    tmux.wait_for("login", "Same passphrase again")
    tmux.type("login", PASSPHRASE)
    screen = tmux.wait_for("login", "[exit 0]")
    assert SECRET not in screen and PASSPHRASE not in screen
    assert (
        f"took the API token (account {USER})" in screen
        and "encrypted with your passphrase" in screen
    )
    # Using it later asks for the passphrase once, not twice.
    made = _toolkit(
        "tickets", "new", "--subject", "x", "-b", "jira", TOOLKIT_KEY_PASSPHRASE=PASSPHRASE
    )
    assert made.returncode == 0, made.stderr
    tmux.start("show", newcomer, "tickets", "show", made.stdout.strip(), "-b", "jira")
    tmux.wait_for("show", "Passphrase of the ticket credentials file")
    tmux.type("show", PASSPHRASE)
    screen = tmux.wait_for("show", "[exit 0]")
    assert f"ticket {made.stdout.strip()}: x" in screen
    assert "Same passphrase again" not in screen
