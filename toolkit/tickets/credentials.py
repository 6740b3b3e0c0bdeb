"""Where ticket-system keys and passwords live: the environment, the OS keyring, or a file.

Looked up in this order:

1. ``TOOLKIT_TICKETS_<BACKEND>_TOKEN`` (``redmine`` -> ``TOOLKIT_TICKETS_REDMINE_TOKEN``):
   for CI and other throwaway machines. toolkit reads it and never writes it
   anywhere.
2. The OS keyring, under service ``toolkit``, user ``tickets/NAME/URL``.
3. Where no keyring is usable (headless Linux, CI), the same fallback as the
   technician's signing key: ``<data dir>/ticket-credentials.json``, each
   secret sealed with AES-256-GCM under a key derived by scrypt from a
   passphrase (``TOOLKIT_KEY_PASSPHRASE``, else asked on the terminal). The
   file names which backends and URLs it holds (tickets.toml does too), never
   a secret in the clear.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from pathlib import Path
from typing import Any, Protocol

from toolkit import paths
from toolkit.errors import TicketBackendError, ToolkitError, UsageError
from toolkit.secrets import Secret

KEYRING_SERVICE = "toolkit"
FILE_FORMAT = 1
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
#: The scrypt cost a file may name: ours or stronger, never weaker, never enough to exhaust memory.
_SCRYPT_N = range(15, 21)  # log2(n)
_SALT = 16
_NONCE = 12
_MAX_FILE = 1 << 20


class Passphrases(Protocol):
    """The passphrase of the credentials file; ``confirm``: a new one, asked twice."""

    def __call__(self, *, confirm: bool = False) -> str: ...


def token_env(backend: str) -> str:
    """The environment variable that carries ``backend``'s secret: TOOLKIT_TICKETS_<NAME>_TOKEN."""
    return f"TOOLKIT_TICKETS_{backend.upper().replace('-', '_')}_TOKEN"


def from_environment(backend: str) -> Secret | None:
    value = os.environ.get(token_env(backend))
    return Secret(value) if value else None


def environment_passphrase(*, confirm: bool = False) -> str:
    """The passphrase from TOOLKIT_KEY_PASSPHRASE only (no terminal to ask on)."""
    from toolkit.identity import PASSPHRASE_ENV

    value = os.environ.get(PASSPHRASE_ENV)
    if value is None:
        raise TicketBackendError(
            "The ticket credentials file needs a passphrase and there is no terminal to ask.",
            hint=f"Set {PASSPHRASE_ENV}, or run the command in a terminal.",
        )
    return value


def _entry(backend: str, url: str) -> str:
    return f"tickets/{backend}/{url.rstrip('/')}"


# -- the OS keyring -------------------------------------------------------------------


def _keyring() -> Any | None:
    from toolkit.identity.store import usable_keyring

    return usable_keyring()


def _keyring_get(backend: str, url: str) -> Secret | None:
    import keyring.errors

    found = _keyring()
    if found is None:
        return None
    try:
        value = found.get_password(KEYRING_SERVICE, _entry(backend, url))
    except keyring.errors.KeyringLocked:
        raise TicketBackendError(
            "The OS keyring is locked, so the ticket system's key cannot be read.",
            hint="Unlock your keyring (log in to the desktop session) and try again.",
        ) from None
    except keyring.errors.KeyringError as exc:
        raise TicketBackendError(
            f"The OS keyring failed ({type(exc).__name__}).",
            hint="Unlock your keyring (log in to the desktop session) and try again.",
        ) from None
    return Secret(value) if value is not None else None


def _keyring_set(backend: str, url: str, secret: Secret) -> str | None:
    """The keyring backend's name if it took the secret; None if no keyring would."""
    import keyring.errors

    found = _keyring()
    if found is None:
        return None
    try:
        found.set_password(KEYRING_SERVICE, _entry(backend, url), secret.reveal())
    except keyring.errors.KeyringError:
        return None  # present but unusable (no D-Bus session, say): use the file
    return type(found).__name__


# -- the encrypted file ----------------------------------------------------------------


def file_path() -> Path:
    return paths.data_dir() / "ticket-credentials.json"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text), validate=True)


def _damaged(path: Path, why: str) -> TicketBackendError:
    return TicketBackendError(
        f"The ticket credentials file {path} is damaged ({why}).",
        hint="Move it aside and store the keys again with `toolkit tickets login`.",
    )


def _read_file() -> dict[str, Any] | None:
    from toolkit.inputs import UnreadableInput, read_text

    path = file_path()
    try:
        raw: Any = json.loads(read_text(path, what="the ticket credentials file", limit=_MAX_FILE))
    except UnreadableInput as exc:
        if exc.missing:
            return None
        raise TicketBackendError(exc.message) from None
    except ValueError:
        raise _damaged(path, "not JSON") from None
    if (
        not isinstance(raw, dict)
        or raw.get("format") != FILE_FORMAT
        or not isinstance(raw.get("kdf"), dict)
        or not isinstance(raw.get("entries"), dict)
    ):
        raise _damaged(path, f"not a format {FILE_FORMAT} credentials file")
    if not _sound_kdf(raw["kdf"]):
        # Whoever wrote the file chose the cost: a weak one would be kept for new entries,
        # a huge one would exhaust memory.
        raise _damaged(path, "its key derivation settings are not toolkit's")
    return raw


def _sound_kdf(kdf: dict[str, Any]) -> bool:
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    return (
        kdf.get("name") == "scrypt"
        and isinstance(n, int)
        and not isinstance(n, bool)
        and any(n == 1 << bits for bits in _SCRYPT_N)
        and r == _SCRYPT["r"]
        and p == _SCRYPT["p"]
    )


def _derive(passphrase: str, kdf: dict[str, Any]) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    try:
        salt = _unb64(kdf["salt"])
        n, r, p = (int(kdf[k]) for k in ("n", "r", "p"))
        return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise _damaged(file_path(), "its key derivation settings are unusable") from None


def _open(key: bytes, name: str, sealed: object) -> str | None:
    """The secret sealed under ``name``; None if ``key`` is not the one it was sealed with."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        if not isinstance(sealed, dict):
            raise TypeError(type(sealed).__name__)
        nonce, data = _unb64(sealed["nonce"]), _unb64(sealed["ciphertext"])
    except (TypeError, KeyError, binascii.Error, ValueError):
        raise _damaged(file_path(), f"the entry {name} is unusable") from None
    try:
        return AESGCM(key).decrypt(nonce, data, name.encode()).decode("utf-8")
    except (InvalidTag, ValueError, UnicodeDecodeError):
        return None


def _wrong_passphrase() -> TicketBackendError:
    return TicketBackendError(
        f"Wrong passphrase for the ticket credentials file {file_path()}.",
        hint="It is the passphrase given when the first key was stored there "
        "(TOOLKIT_KEY_PASSPHRASE or the terminal).",
    )


def _file_get(backend: str, url: str, passphrase: Passphrases) -> Secret | None:
    stored = _read_file()
    name = _entry(backend, url)
    if stored is None or name not in stored["entries"]:
        return None
    key = _derive(passphrase(), stored["kdf"])
    value = _open(key, name, stored["entries"][name])
    if value is None:
        raise _wrong_passphrase()
    return Secret(value)


def _file_set(backend: str, url: str, secret: Secret, passphrase: Passphrases) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from toolkit.identity.store import MIN_PASSPHRASE

    stored = _read_file()
    if stored is None or not stored["entries"]:
        # A file emptied when the keyring took its last secret is a new file: a new salt
        # and a new passphrase, asked twice and long enough, never one nothing checks.
        chosen = passphrase(confirm=True)
        if len(chosen) < MIN_PASSPHRASE:
            raise UsageError(f"The passphrase must have at least {MIN_PASSPHRASE} characters.")
        kdf: dict[str, Any] = {"name": "scrypt", "salt": _b64(os.urandom(_SALT)), **_SCRYPT}
        stored = {"format": FILE_FORMAT, "kdf": kdf, "entries": {}}
        key = _derive(chosen, kdf)
    else:
        key = _derive(passphrase(), stored["kdf"])
        # Every secret in the file shares one passphrase: prove it opens what is there.
        for other, sealed in stored["entries"].items():
            if _open(key, str(other), sealed) is None:
                raise _wrong_passphrase()
            break
    name = _entry(backend, url)
    nonce = os.urandom(_NONCE)
    data = AESGCM(key).encrypt(nonce, secret.reveal().encode(), name.encode())
    stored["entries"][name] = {"nonce": _b64(nonce), "ciphertext": _b64(data)}
    _write_file(stored)


def _write_file(stored: dict[str, Any]) -> None:
    path = file_path()
    paths.ensure_private_dir(path.parent)
    paths.atomic_write(path, (json.dumps(stored, indent=2) + "\n").encode(), 0o600)


def _file_forget(backend: str, url: str) -> None:
    """Drop a stale file entry (no passphrase needed: each entry is sealed on its own)."""
    try:
        stored = _read_file()
    except ToolkitError:
        return
    if stored is not None and stored["entries"].pop(_entry(backend, url), None) is not None:
        _write_file(stored)


# -- what the rest of toolkit calls ----------------------------------------------------------


def load(backend: str, url: str, passphrase: Passphrases | None = None) -> Secret | None:
    """``backend``'s secret: the environment, else the keyring, else the encrypted file."""
    found = from_environment(backend)
    if found is not None:
        return found
    if not url:
        return None
    found = _keyring_get(backend, url)
    if found is not None:
        return found
    return _file_get(backend, url, passphrase or environment_passphrase)


def store(backend: str, url: str, secret: Secret, passphrase: Passphrases | None = None) -> str:
    """Keep ``secret`` in the keyring, or where there is none in the encrypted file.

    Returns where it went, said for a person ("in the OS keyring (SecretService)").
    """
    where = _keyring_set(backend, url, secret)
    if where is not None:
        _file_forget(backend, url)  # an older copy must not linger
        return f"in the OS keyring ({where})"
    _file_set(backend, url, secret, passphrase or environment_passphrase)
    return f"in {file_path()}, encrypted with your passphrase (no usable OS keyring was found)"


__all__ = [
    "KEYRING_SERVICE",
    "Passphrases",
    "environment_passphrase",
    "file_path",
    "from_environment",
    "load",
    "store",
    "token_env",
]
