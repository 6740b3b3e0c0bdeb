"""Where ticket-system secrets live: the environment, the keyring, the encrypted file."""

from __future__ import annotations

import json
from pathlib import Path

import keyring
import pytest
from keyring.backends import fail

from tests.keyring_backend import FileKeyring
from toolkit.errors import TicketBackendError, UsageError
from toolkit.secrets import Secret
from toolkit.tickets import credentials

URL = "https://redmine.example.com"
PASSPHRASE = "correct horse battery"


class Recorder:
    """A passphrase source that records each ask (``confirm`` or not)."""

    def __init__(self, value: str) -> None:
        self.value = value
        self.asked: list[bool] = []

    def __call__(self, *, confirm: bool = False) -> str:
        self.asked.append(confirm)
        return self.value


def passphrase(value: str = PASSPHRASE) -> Recorder:
    return Recorder(value)


def never(*, confirm: bool = False) -> str:
    raise AssertionError("the passphrase was asked for")


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FileKeyring:
    monkeypatch.setenv("TOOLKIT_TEST_KEYRING", str(tmp_path / "keyring.json"))
    backend = FileKeyring()
    keyring.set_keyring(backend)
    return backend


def test_token_variable_names() -> None:
    assert credentials.token_env("redmine") == "TOOLKIT_TICKETS_REDMINE_TOKEN"
    assert credentials.token_env("my-desk") == "TOOLKIT_TICKETS_MY_DESK_TOKEN"


def test_without_a_keyring_the_secret_is_sealed_in_the_file() -> None:
    where = credentials.store("redmine", URL, Secret("k-123"), passphrase())
    path = credentials.file_path()
    assert where.startswith(f"in {path}, encrypted with your passphrase")
    assert "k-123" not in path.read_text() and path.stat().st_mode & 0o777 == 0o600
    found = credentials.load("redmine", URL, passphrase())
    assert found is not None and found.reveal() == "k-123"
    assert credentials.load("redmine", "https://other.example.com", never) is None
    with pytest.raises(TicketBackendError, match="Wrong passphrase"):
        credentials.load("redmine", URL, passphrase("another passphrase"))


def test_a_new_file_asks_twice_and_wants_eight_characters() -> None:
    with pytest.raises(UsageError, match="at least 8"):
        credentials.store("redmine", URL, Secret("k"), passphrase("short"))
    assert not credentials.file_path().exists()
    first = passphrase()
    credentials.store("redmine", URL, Secret("k"), first)
    assert first.asked == [True]
    second = passphrase()
    credentials.store("rt", URL, Secret("t"), second)
    assert second.asked == [False]  # the file's passphrase, not a new one


def test_another_passphrase_cannot_add_to_the_file() -> None:
    credentials.store("redmine", URL, Secret("k"), passphrase())
    before = credentials.file_path().read_bytes()
    with pytest.raises(TicketBackendError, match="Wrong passphrase"):
        credentials.store("rt", URL, Secret("t"), passphrase("another passphrase"))
    assert credentials.file_path().read_bytes() == before


def test_an_entry_moved_to_another_name_does_not_open() -> None:
    credentials.store("redmine", URL, Secret("k"), passphrase())
    path = credentials.file_path()
    stored = json.loads(path.read_text())
    entry = stored["entries"].pop(f"tickets/redmine/{URL}")
    stored["entries"][f"tickets/redmine/{URL}/evil"] = entry
    path.write_text(json.dumps(stored))
    with pytest.raises(TicketBackendError, match="Wrong passphrase"):
        credentials.load("redmine", URL + "/evil", passphrase())


def test_a_damaged_file_says_so() -> None:
    path = credentials.file_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(TicketBackendError, match="is damaged"):
        credentials.load("redmine", URL, never)


def test_the_environment_wins_and_nothing_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    credentials.store("redmine", URL, Secret("stored"), passphrase())
    monkeypatch.setenv("TOOLKIT_TICKETS_REDMINE_TOKEN", "from-env")
    found = credentials.load("redmine", URL, never)
    assert found is not None and found.reveal() == "from-env"


def test_a_keyring_takes_it_and_an_older_file_copy_goes(file_keyring: FileKeyring) -> None:
    keyring.set_keyring(fail.Keyring())
    credentials.store("redmine", URL, Secret("old"), passphrase())
    keyring.set_keyring(file_keyring)
    where = credentials.store("redmine", URL, Secret("new"), never)
    assert where == "in the OS keyring (FileKeyring)"
    assert file_keyring.get_password("toolkit", f"tickets/redmine/{URL}") == "new"
    assert json.loads(credentials.file_path().read_text())["entries"] == {}
    found = credentials.load("redmine", URL, never)
    assert found is not None and found.reveal() == "new"


def test_no_passphrase_source_and_no_variable_is_a_clear_error() -> None:
    credentials.store("redmine", URL, Secret("k"), passphrase())
    with pytest.raises(TicketBackendError, match="needs a passphrase and there is no terminal"):
        credentials.load("redmine", URL)


def test_an_emptied_file_is_a_new_file_asked_twice_with_a_new_salt(
    file_keyring: FileKeyring,
) -> None:
    keyring.set_keyring(fail.Keyring())
    credentials.store("redmine", URL, Secret("k-1"), passphrase())
    salt = json.loads(credentials.file_path().read_text())["kdf"]["salt"]
    keyring.set_keyring(file_keyring)  # the keyring takes it: the file copy goes
    credentials.store("redmine", URL, Secret("k-2"), never)
    assert json.loads(credentials.file_path().read_text())["entries"] == {}
    keyring.set_keyring(fail.Keyring())
    short = passphrase("short")
    with pytest.raises(UsageError, match="at least 8 characters"):
        credentials.store("rt", URL, Secret("k-3"), short)
    assert short.asked == [True]  # asked as a new passphrase, not taken unchecked
    again = passphrase("another good passphrase")
    credentials.store("rt", URL, Secret("k-3"), again)
    assert again.asked == [True]
    assert json.loads(credentials.file_path().read_text())["kdf"]["salt"] != salt


@pytest.mark.parametrize(
    "kdf",
    [
        {"n": 2},  # weak: would be kept for every new entry
        {"n": 2**30},  # would exhaust memory
        {"n": 2**15 + 1},
        {"n": True},
        {"r": 1},
        {"p": 4},
        {"name": "pbkdf2"},
    ],
)
def test_key_derivation_settings_other_than_toolkits_are_refused(kdf: dict[str, object]) -> None:
    credentials.store("redmine", URL, Secret("k-1"), passphrase())
    path = credentials.file_path()
    stored = json.loads(path.read_text())
    stored["kdf"].update(kdf)
    path.write_text(json.dumps(stored))
    for call in (
        lambda: credentials.load("redmine", URL, passphrase()),
        lambda: credentials.store("rt", URL, Secret("k-2"), passphrase()),
    ):
        with pytest.raises(TicketBackendError, match="key derivation settings are not toolkit's"):
            call()
