"""The agent's Ed25519 host key: ephemeral for ``toolkit share``, kept on disk for ``serve``.

A share makes a new key each time (``HostKey()``): the technician
checks it through the code. A service keeps one (:func:`load_or_create`), so
that an inventory can pin its fingerprint and a grant can name it. The file
is an OpenSSH private key, mode 0600, like ``ssh-keygen`` writes one; a file
there that is not such a key, or that others may read, is refused and never
replaced: a key silently made anew would break every pin, and one others can
read may have been copied.
"""

from __future__ import annotations

import os
import stat
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from toolkit import paths
from toolkit.errors import UsageError
from toolkit.identity.keys import fingerprint, public_line
from toolkit.identity.signer import KeySigner
from toolkit.inputs import UnreadableInput, open_regular
from toolkit.text import printable

if TYPE_CHECKING:
    import asyncssh

#: An OpenSSH Ed25519 private key file is about 400 bytes; anything much larger is not one.
MAX_HOST_KEY_FILE = 16 << 10
COMMENT = "toolkit agent host key"


def default_path() -> Path:
    """``<data dir>/agent/host_key``: where ``toolkit serve`` keeps its key."""
    return paths.data_dir() / "agent" / "host_key"


class HostKey:
    """The agent's Ed25519 host key, for asyncssh and for sealing its transcripts."""

    def __init__(
        self, private: ed25519.Ed25519PrivateKey | None = None, path: Path | None = None
    ) -> None:
        """``private`` kept at ``path``; none: a new key for this process only (share)."""
        self._private = private or ed25519.Ed25519PrivateKey.generate()
        self.path = path  # where it is kept; None for an ephemeral key
        self.signer = KeySigner(self._private)
        self.blob = self.signer.public_blob
        self.fingerprint = fingerprint(self.blob)

    @property
    def public_line(self) -> str:
        """``ssh-ed25519 AAAA...``: what an inventory or an allowed_signers file holds."""
        return public_line(self.blob)

    def openssh(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )

    @cached_property
    def ssh_key(self) -> asyncssh.SSHKey:
        import asyncssh

        return asyncssh.import_private_key(self.openssh())

    def __repr__(self) -> str:  # never show key material
        return f"HostKey({self.fingerprint})"


def load_or_create(path: Path | None = None) -> HostKey:
    """The key kept at ``path`` (default :func:`default_path`); made there if none exists.

    UsageError, in one sentence, for a file that is not an unencrypted OpenSSH
    Ed25519 private key, that group or others may read or write, or that is
    not a regular file. Two services starting at once end up with the same key.
    """
    path = path or default_path()
    try:
        return _load(path)
    except UnreadableInput as exc:
        if not exc.missing:
            raise
    paths.ensure_private_dir(path.parent)
    key = HostKey(ed25519.Ed25519PrivateKey.generate(), path)
    if paths.atomic_write(path, key.openssh(), 0o600, replace=False):  # never over a key
        return key
    return _load(path)  # another process made it first: theirs is the key


def _load(path: Path) -> HostKey:
    shown = printable(str(path), 200)
    with open_regular(path, what="the agent's host key", limit=MAX_HOST_KEY_FILE) as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & 0o077:
            raise UsageError(
                f"The agent's host key {shown} has mode {stat.S_IMODE(mode):04o}, so others "
                f"may have read it; make sure they did not, then run: chmod 600 {shown}"
            )
        data = f.read(MAX_HOST_KEY_FILE + 1)
    try:
        key = serialization.load_ssh_private_key(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise UsageError(
            f"{shown} is not an unencrypted OpenSSH Ed25519 private key, so the agent "
            "cannot use it as its host key; move it away (it is never overwritten) or "
            "name another file."
        )
    return HostKey(key, path)


__all__ = ["HostKey", "default_path", "load_or_create"]
