"""The technician's own identity: made once by ``toolkit keys init``, used to sign.

The private key lives in the OS keyring when there is a usable one. Where
there is none (headless Linux, CI) it falls back to an OpenSSH private key file
in the data dir, encrypted with a passphrase; an unencrypted file only when the
caller says so explicitly. The profile (name, email, public key, store) is a
small JSON file next to it, never holding secrets.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from toolkit import paths
from toolkit.errors import IdentityError, UsageError
from toolkit.identity.keys import blob_from_line, blob_of, fingerprint, load_public, public_line
from toolkit.identity.signer import (
    MAX_KEY_FILE,
    KeySigner,
    PassphraseSource,
    Signer,
    agent_signer,
    key_file_signer,
    parse_private_key,
)
from toolkit.inputs import UnreadableInput, read_regular, read_text

KEYRING_SERVICE = "toolkit"
KEYRING_USER = "technician-key"
STORE_KEYRING = "keyring"
STORE_ENCRYPTED = "encrypted-file"
STORE_PLAIN = "file"
STORE_KEY_FILE = "key-file"
STORE_AGENT = "ssh-agent"
MIN_PASSPHRASE = 8


@dataclass(frozen=True)
class Profile:
    name: str
    email: str
    public_key: str  # OpenSSH public key line
    store: str
    key_file: str | None = None
    keyring_backend: str | None = None


@dataclass(frozen=True)
class Identity:
    """Who signs, and the signer that does it."""

    name: str
    email: str
    signer: Signer
    store: str

    @property
    def public_blob(self) -> bytes:
        return self.signer.public_blob

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.signer.public_blob)


def profile_path() -> Path:
    return paths.data_dir() / "identity.json"


def key_path() -> Path:
    return paths.data_dir() / "identity_ed25519"


def read_profile() -> Profile:
    path = profile_path()
    try:
        raw: dict[str, Any] = json.loads(read_text(path, what="the technician profile"))
        profile = Profile(**raw)
        blob_from_line(profile.public_key)
    except UnreadableInput as exc:
        if not exc.missing:
            raise IdentityError(exc.message) from None
        raise IdentityError(
            "No technician key yet.",
            hint='Create one with `toolkit keys init --name "Your Name" --email you@example.com`, '
            "or pass --key PATH or --agent.",
        ) from None
    except (OSError, ValueError, TypeError) as exc:
        raise IdentityError(
            f"The identity profile {path} is unreadable ({exc}).",
            hint="Move it aside and run `toolkit keys init` again.",
        ) from None
    return profile


def usable_keyring() -> Any | None:
    """The keyring backend to use, or None where none is usable."""
    import keyring
    from keyring.backends import chainer, fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return None
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return None
    if type(backend).__module__.startswith("keyring.backends.null"):
        return None
    return backend


def _stored_in(path: Path) -> str | None:
    """Where the identity at ``path`` keeps its key, if there is a readable one."""
    try:
        return str(json.loads(path.read_text())["store"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _forget_keyring_key() -> None:
    """Best effort: delete the replaced key from the keyring (it may be locked or gone)."""
    import keyring.errors

    backend = usable_keyring()
    if backend is None:
        return
    with contextlib.suppress(keyring.errors.KeyringError):
        backend.delete_password(KEYRING_SERVICE, KEYRING_USER)


def _write_private(path: Path, data: bytes) -> None:
    paths.ensure_private_dir(path.parent)
    paths.atomic_write(path, data, 0o600)


def _label(value: str, what: str) -> str:
    # The customer's agent takes only names and emails it can show safely: refuse here
    # what every consent would refuse later.
    from toolkit.consent._messages import MAX_EMAIL, MAX_NAME, MessageError, check_label

    email = what == "email"
    try:
        check_label(value, what, MAX_EMAIL if email else MAX_NAME, email=email)
    except MessageError as exc:
        raise UsageError(f"{str(exc).capitalize()}, which customers' agents refuse.") from None
    return value


def check_name(name: str) -> str:
    """The technician's name as customers will see it, stripped; UsageError if unusable."""
    name = name.strip()
    if not name:
        raise UsageError("Give a name, as customers will see it (like Alice Tech).")
    return _label(name, "name")


def check_email(email: str) -> str:
    """The technician's email (the allowed_signers principal), stripped; UsageError if unusable."""
    email = email.strip()
    if "@" not in email or any(c.isspace() for c in email):
        raise UsageError("Give an email address like alice@example.com.")
    return _label(email, "email")


def check_free(*, force: bool) -> None:
    """IdentityError if a technician key exists and ``force`` does not allow replacing it."""
    if profile_path().exists() and not force:
        raise IdentityError(
            f"A technician key already exists ({profile_path()}).",
            hint="Use it, or pass --force to replace it (signatures by the old key stay valid).",
        )


def init(
    name: str,
    email: str,
    passphrase: PassphraseSource,
    *,
    no_passphrase: bool = False,
    use_keyring: bool = True,
    force: bool = False,
) -> Profile:
    """Make a new Ed25519 identity and store it; return its profile."""
    name, email = check_name(name), check_email(email)
    check_free(force=force)
    replaced = _stored_in(profile_path())
    key = ed25519.Ed25519PrivateKey.generate()
    line = public_line(blob_of(key.public_key()), email)
    backend = usable_keyring() if use_keyring else None
    store: str | None = None
    if backend is not None:
        import keyring.errors

        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        try:
            backend.set_password(KEYRING_SERVICE, KEYRING_USER, pem.decode("ascii"))
            store = STORE_KEYRING
        except keyring.errors.KeyringError:
            store = None  # present but unusable (no D-Bus session, say): use a file
    key_file: str | None = None
    if store is None:
        if no_passphrase:
            encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
            store = STORE_PLAIN
        else:
            secret = passphrase()
            if len(secret) < MIN_PASSPHRASE:
                raise UsageError(f"The passphrase must have at least {MIN_PASSPHRASE} characters.")
            encryption = serialization.BestAvailableEncryption(secret.encode())
            store = STORE_ENCRYPTED
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption
        )
        _write_private(key_path(), data)
        key_file = str(key_path())
    elif key_path().exists():
        key_path().unlink()  # an older file key must not linger once replaced
    if store != STORE_KEYRING and replaced == STORE_KEYRING:
        _forget_keyring_key()  # nor an older keyring key
    profile = Profile(
        name=name.strip(),
        email=email,
        public_key=line,
        store=store,
        key_file=key_file,
        keyring_backend=type(backend).__name__ if store == STORE_KEYRING else None,
    )
    _write_private(profile_path(), (json.dumps(asdict(profile), indent=2) + "\n").encode())
    return profile


def load(passphrase: PassphraseSource) -> Identity:
    """The identity made by ``toolkit keys init``, ready to sign."""
    profile = read_profile()
    if profile.store == STORE_KEYRING:
        import keyring
        import keyring.errors

        try:
            pem = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except keyring.errors.KeyringLocked:
            raise IdentityError(
                "The OS keyring is locked, so the technician key cannot be used.",
                hint="Unlock your keyring (log in to the desktop session) and try again.",
            ) from None
        except keyring.errors.KeyringError as exc:
            raise IdentityError(
                f"The OS keyring failed ({exc}).",
                hint="Check that your keyring service runs, or use --key PATH.",
            ) from None
        if pem is None:
            raise IdentityError(
                "The technician key is missing from the OS keyring.",
                hint="Run `toolkit keys init --force` to make a new one.",
            )
        key = parse_private_key(pem.encode(), passphrase, "the keyring entry")
    else:
        path = Path(profile.key_file or key_path())
        try:
            data = read_regular(path, what="the technician key file", limit=MAX_KEY_FILE)
        except UnreadableInput as exc:
            raise IdentityError(
                exc.message, hint="Run `toolkit keys init --force` to make a new one."
            ) from None
        key = parse_private_key(data, passphrase, f"the technician key {path}")
    signer = KeySigner(key)
    if signer.public_blob != blob_from_line(profile.public_key):
        raise IdentityError("The stored private key does not match the identity profile.")
    return Identity(profile.name, profile.email, signer, profile.store)


def _comment_identity(comment: str) -> tuple[str, str]:
    """Name and email for a key that has no profile: from its comment, else the login."""
    if "@" in comment and " " not in comment:
        return comment.split("@", 1)[0], comment
    import getpass
    import socket

    user = getpass.getuser()
    return comment or user, f"{user}@{socket.gethostname()}"


def resolve(
    passphrase: PassphraseSource,
    key: Path | None = None,
    agent: str | None = None,
) -> Identity:
    """The identity a signing command uses: ``--key``, ``--agent`` or the stored one.

    With ``--key`` or ``--agent`` the name and email come from the profile when
    it is for the same key, else from the key's comment.
    """
    if key is not None and agent is not None:
        raise UsageError("Use either --key or --agent, not both.")
    if key is None and agent is None:
        return load(passphrase)
    profile: Profile | None = None
    with contextlib.suppress(IdentityError):
        profile = read_profile()
    comment = ""
    signer: Signer
    if key is not None:
        signer = key_file_signer(key, passphrase)
        store = STORE_KEY_FILE
        pub = key.with_name(key.name + ".pub")
        with contextlib.suppress(UnreadableInput, UnicodeDecodeError):  # the comment is optional
            parts = read_text(pub, what="the public key", limit=MAX_KEY_FILE).split(None, 2)
            comment = parts[2].strip() if len(parts) > 2 else ""
    else:
        agent_key = agent_signer(agent or None)
        signer, comment = agent_key, agent_key.comment
        store = STORE_AGENT
    plain = blob_of(load_public(signer.public_blob))
    if profile is not None and blob_from_line(profile.public_key) == plain:
        return Identity(profile.name, profile.email, signer, store)
    name, email = _comment_identity(comment)
    return Identity(name, email, signer, store)


__all__ = [
    "MIN_PASSPHRASE",
    "Identity",
    "Profile",
    "check_email",
    "check_free",
    "check_name",
    "init",
    "load",
    "read_profile",
    "resolve",
    "usable_keyring",
]
