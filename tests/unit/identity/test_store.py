"""The stored identity: OS keyring, the encrypted-file fallback, and their errors."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.testing.backend import BackendBasicTests

from tests.keyring_backend import BrokenKeyring, FileKeyring, LockedKeyring
from toolkit.errors import IdentityError, UsageError
from toolkit.identity import sshsig, store
from toolkit.identity.keys import blob_from_line
from toolkit.identity.signer import PassphraseSource


def passphrase(value: str = "correct horse battery") -> PassphraseSource:
    return lambda: value


def never() -> str:
    raise AssertionError("no passphrase should be asked for")


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FileKeyring]:
    monkeypatch.setenv("TOOLKIT_TEST_KEYRING", str(tmp_path / "keyring.json"))
    backend = FileKeyring()
    keyring.set_keyring(backend)
    yield backend


class TestFileKeyringHonoursKeyringContract(BackendBasicTests):
    """keyring's own backend tests, so the double behaves like a real keyring."""

    @pytest.fixture(autouse=True)
    def _env(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TOOLKIT_TEST_KEYRING", str(tmp_path / "contract.json"))

    def init_keyring(self) -> FileKeyring:
        return FileKeyring()


def test_init_stores_the_key_in_the_keyring(file_keyring: FileKeyring) -> None:
    profile = store.init("Alice Tech", "alice@example.com", never)
    assert profile.store == store.STORE_KEYRING and profile.key_file is None
    assert not store.key_path().exists()
    secret = file_keyring.get_password(store.KEYRING_SERVICE, store.KEYRING_USER)
    assert secret is not None and "OPENSSH PRIVATE KEY" in secret
    assert "PRIVATE" not in store.profile_path().read_text()
    ident = store.load(never)
    assert ident.public_blob == blob_from_line(profile.public_key)
    sig = sshsig.sign(ident.signer, b"m", "ns")
    assert sshsig.verify(sig, b"m", "ns") == ident.public_blob


def test_no_keyring_falls_back_to_an_encrypted_file() -> None:
    profile = store.init("Alice Tech", "alice@example.com", passphrase())
    assert profile.store == store.STORE_ENCRYPTED
    path = store.key_path()
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"OPENSSH PRIVATE KEY" in path.read_bytes()
    assert b"aes256-ctr" in base64.b64decode(b"".join(path.read_bytes().splitlines()[1:-1]))
    assert store.load(passphrase()).fingerprint == store.load(passphrase()).fingerprint
    with pytest.raises(IdentityError, match="Wrong passphrase"):
        store.load(passphrase("wrong wrong wrong"))


def test_present_but_unusable_keyring_falls_back_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_TEST_KEYRING", str(tmp_path / "k.json"))
    keyring.set_keyring(BrokenKeyring())
    assert store.init("A", "a@example.com", passphrase()).store == store.STORE_ENCRYPTED


def test_unencrypted_file_only_when_asked() -> None:
    profile = store.init("A", "a@example.com", never, no_passphrase=True)
    assert profile.store == store.STORE_PLAIN
    store.load(never)


def test_short_passphrase_and_bad_email_are_refused() -> None:
    with pytest.raises(UsageError, match="at least"):
        store.init("A", "a@example.com", passphrase("short"))
    with pytest.raises(UsageError, match="email"):
        store.init("A", "not-an-email", passphrase())
    assert not store.profile_path().exists()


def test_forced_init_into_a_file_deletes_the_old_keyring_key(
    file_keyring: FileKeyring,
) -> None:
    store.init("Alice Tech", "alice@example.com", never)
    assert file_keyring.get_password(store.KEYRING_SERVICE, store.KEYRING_USER) is not None
    profile = store.init(
        "Alice Tech", "alice@example.com", never, no_passphrase=True, use_keyring=False, force=True
    )
    assert profile.store == store.STORE_PLAIN
    assert file_keyring.get_password(store.KEYRING_SERVICE, store.KEYRING_USER) is None
    assert store.load(never).public_blob == blob_from_line(profile.public_key)


def test_existing_identity_is_kept_unless_forced() -> None:
    first = store.init("A", "a@example.com", never, no_passphrase=True)
    with pytest.raises(IdentityError, match="already exists"):
        store.init("A", "a@example.com", never, no_passphrase=True)
    second = store.init("A", "a@example.com", never, no_passphrase=True, force=True)
    assert first.public_key != second.public_key


def test_no_key_yet_says_how_to_make_one() -> None:
    with pytest.raises(IdentityError, match="No technician key yet") as info:
        store.load(never)
    assert "toolkit keys init" in info.value.diagnostics()


def test_locked_keyring(file_keyring: FileKeyring, tmp_path: Path) -> None:
    store.init("A", "a@example.com", never)
    keyring.set_keyring(LockedKeyring())
    with pytest.raises(IdentityError, match="locked") as info:
        store.load(never)
    assert "Unlock" in info.value.diagnostics()


def test_key_missing_from_keyring(file_keyring: FileKeyring) -> None:
    store.init("A", "a@example.com", never)
    file_keyring.delete_password(store.KEYRING_SERVICE, store.KEYRING_USER)
    with pytest.raises(IdentityError, match="missing from the OS keyring"):
        store.load(never)


def test_resolve_key_file_takes_profile_name_when_same_key(keygen_key: Path) -> None:
    ident = store.resolve(never, key=keygen_key)
    assert ident.store == store.STORE_KEY_FILE
    assert ident.email == "alice@example.com"  # from the .pub comment
    with pytest.raises(UsageError, match="either --key or --agent"):
        store.resolve(never, key=keygen_key, agent="")


def test_encrypted_key_file_needs_its_passphrase(tmp_path: Path, ssh_keygen: str) -> None:
    path = tmp_path / "enc"
    subprocess.run(
        [
            ssh_keygen,
            "-q",
            "-t",
            "ed25519",
            "-N",
            "sesame sesame",
            "-C",
            "x@example.com",
            "-f",
            path,
        ],
        check=True,
    )
    assert store.resolve(passphrase("sesame sesame"), key=path).email == "x@example.com"
    with pytest.raises(IdentityError, match="Wrong passphrase"):
        store.resolve(passphrase("nope nope"), key=path)
    with pytest.raises(IdentityError, match="Cannot read"):
        store.resolve(never, key=tmp_path / "missing")
