"""Signers: one interface over a loaded key and a key held by ssh-agent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives import serialization

from toolkit.errors import IdentityError, SignatureError
from toolkit.identity._agent import AgentClient
from toolkit.identity.keys import (
    PrivateKey,
    blob_from_line,
    blob_of,
    fingerprint,
    load_public,
    sign_with,
)

PassphraseSource = Callable[[], str]

#: An OpenSSH key or certificate file is a few KiB at most.
MAX_KEY_FILE = 1 << 20


class Signer(Protocol):
    """Something that makes SSH signatures with one key."""

    @property
    def public_blob(self) -> bytes:
        """The SSH wire public key (or certificate) that verifies the signatures."""
        ...

    def sign_data(self, data: bytes) -> bytes:
        """An SSH wire signature blob over ``data``."""
        ...


class KeySigner:
    """Signs with a private key held in this process."""

    def __init__(self, key: PrivateKey, public_blob: bytes | None = None) -> None:
        self._key = key
        # A certificate, when one was given, replaces the bare key in SSHSIG
        # output, as ssh-keygen does with `-Y sign -f key` next to key-cert.pub.
        self._blob = public_blob or blob_of(key.public_key())

    @property
    def public_blob(self) -> bytes:
        return self._blob

    def sign_data(self, data: bytes) -> bytes:
        return sign_with(self._key, data)

    def __repr__(self) -> str:  # never show key material
        return f"KeySigner({fingerprint(self._blob)})"


class AgentSigner:
    """Signs through ssh-agent; the private key never enters this process."""

    def __init__(self, client: AgentClient, public_blob: bytes, comment: str = "") -> None:
        self._client = client
        self._blob = public_blob
        self.comment = comment

    @property
    def public_blob(self) -> bytes:
        return self._blob

    def sign_data(self, data: bytes) -> bytes:
        return self._client.sign(self._blob, data)

    def __repr__(self) -> str:
        return f"AgentSigner({fingerprint(self._blob)})"


def parse_private_key(data: bytes, passphrase: PassphraseSource, where: str) -> PrivateKey:
    """Load an OpenSSH (or PEM) private key, asking for a passphrase only if it is encrypted."""
    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    loader = loaders[0] if b"OPENSSH PRIVATE KEY" in data else loaders[1]
    try:
        key = loader(data, None)
    except TypeError:  # encrypted: needs a password
        secret = passphrase()
        try:
            key = loader(data, secret.encode())
        except (ValueError, TypeError):
            raise IdentityError(
                f"Wrong passphrase for {where}.",
                hint="Check TOOLKIT_KEY_PASSPHRASE or type the passphrase again.",
            ) from None
    except ValueError as exc:
        raise IdentityError(f"{where} is not a readable private key ({exc}).") from None
    if not isinstance(key, PrivateKey):
        raise IdentityError(f"{where} holds a key type toolkit cannot sign with.")
    return key


def key_file_signer(path: Path, passphrase: PassphraseSource) -> KeySigner:
    """A signer from an OpenSSH private key file (``--key PATH``).

    As with ``ssh-keygen -Y sign -f``, PATH may also name a certificate
    (``id_ed25519-cert.pub``): the private key next to it signs, and the
    certificate goes into the signature so that ``cert-authority`` trust works.
    """
    cert: Path | None = None
    if path.name.endswith("-cert.pub"):
        cert, path = path, path.with_name(path.name[: -len("-cert.pub")])
    from toolkit.inputs import UnreadableInput, read_regular, read_text

    try:
        data = read_regular(path, what="the key file", limit=MAX_KEY_FILE)
    except UnreadableInput as exc:
        raise IdentityError(exc.message) from None
    key = parse_private_key(data, passphrase, f"the key file {path}")
    if cert is None:
        return KeySigner(key)
    try:
        blob = blob_from_line(read_text(cert, what="the certificate", limit=MAX_KEY_FILE))
    except UnreadableInput as exc:
        raise IdentityError(exc.message) from None
    except SignatureError as exc:
        raise IdentityError(f"Cannot read the certificate {cert} ({exc}).") from None
    if blob_of(load_public(blob)) != blob_of(key.public_key()):
        raise IdentityError(f"{cert} certifies a different key than {path}.")
    return KeySigner(key, blob)


def agent_signer(selector: str | None = None, client: AgentClient | None = None) -> AgentSigner:
    """A signer for a key in ssh-agent, chosen by fingerprint or comment (``--agent``).

    Without a selector the agent must hold exactly one key.
    """
    client = client or AgentClient()
    keys = client.identities()
    if selector:
        keys = [(b, c) for b, c in keys if selector in (fingerprint(b), c)]
    if not keys:
        what = f"a key matching {selector!r}" if selector else "any key"
        raise IdentityError(
            f"ssh-agent does not hold {what}.",
            hint="List its keys with `ssh-add -l` and add yours with `ssh-add PATH`.",
        )
    if len(keys) > 1:
        raise IdentityError(
            "ssh-agent holds several keys; say which one to use.",
            hint="Pass --agent FINGERPRINT (from `ssh-add -l`) or --agent COMMENT.",
        )
    return AgentSigner(client, *keys[0])


__all__ = [
    "MAX_KEY_FILE",
    "AgentSigner",
    "KeySigner",
    "PassphraseSource",
    "Signer",
    "agent_signer",
    "key_file_signer",
    "parse_private_key",
]
