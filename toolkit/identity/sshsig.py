"""OpenSSH's SSHSIG signatures (PROTOCOL.sshsig), on ``cryptography``.

Output is byte-identical to ``ssh-keygen -Y sign`` for the same key and
message: Ed25519 is deterministic, the hash is SHA-512 (or SHA-256, as with
``-O hashalg=sha256``) and the armour wraps at 70 columns with LF line ends,
as ssh-keygen writes it. Signing goes through
a :class:`~toolkit.identity.signer.Signer`, so a key held by ssh-agent works
the same as a loaded one.

Verification raises :class:`SignatureError` or returns the signer's public key
blob; there is no boolean to forget to check. Trust (who may sign for which
namespace) is the allowed_signers module's job, not this one's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.errors import SignatureError
from toolkit.identity._wire import Reader, string, uint32
from toolkit.identity.keys import verify_ssh_signature

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer

MAGIC = b"SSHSIG"
VERSION = 1
HASH_ALGORITHMS = {"sha512": hashlib.sha512, "sha256": hashlib.sha256}
DEFAULT_HASH = "sha512"
_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_END = "-----END SSH SIGNATURE-----"
_WRAP = 70


@dataclass(frozen=True)
class SSHSig:
    """A parsed SSHSIG blob."""

    public_key: bytes  # SSH wire public key or certificate of the signer
    namespace: str
    hash_algorithm: str
    signature: bytes  # SSH wire signature: string algorithm, string sig

    def to_bytes(self) -> bytes:
        return (
            MAGIC
            + uint32(VERSION)
            + string(self.public_key)
            + string(self.namespace.encode())
            + string(b"")
            + string(self.hash_algorithm.encode())
            + string(self.signature)
        )

    @classmethod
    def from_bytes(cls, blob: bytes) -> SSHSig:
        r = Reader(blob, "SSH signature")
        if r.raw(len(MAGIC)) != MAGIC:
            raise SignatureError("This is not an SSH signature (the SSHSIG preamble is missing).")
        version = r.uint32()
        if version != VERSION:
            raise SignatureError(f"Unsupported SSH signature version {version}.")
        public_key = r.string()
        namespace = r.text()
        r.string()  # reserved
        hash_algorithm = r.text()
        signature = r.string()
        r.done()
        if hash_algorithm not in HASH_ALGORITHMS:
            raise SignatureError(f"Unsupported SSH signature hash {hash_algorithm!r}.")
        return cls(public_key, namespace, hash_algorithm, signature)

    def armor(self) -> str:
        return armor(self.to_bytes())


def armor(blob: bytes) -> str:
    b64 = base64.b64encode(blob).decode("ascii")
    lines = [b64[i : i + _WRAP] for i in range(0, len(b64), _WRAP)]
    return "\n".join([_BEGIN, *lines, _END]) + "\n"


def dearmor(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise SignatureError("The signature file is not ASCII armour.") from None
    body = text.strip()
    if not body.startswith(_BEGIN) or not body.endswith(_END):
        raise SignatureError("The signature file has no SSH SIGNATURE armour.")
    b64 = "".join(body[len(_BEGIN) : -len(_END)].split())
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("The signature armour holds invalid base64.") from None


def signed_data(namespace: str, hash_algorithm: str, digest: bytes) -> bytes:
    """The exact bytes that the key signs, per PROTOCOL.sshsig."""
    if not namespace:
        raise SignatureError("An SSH signature needs a namespace.")
    return (
        MAGIC
        + string(namespace.encode())
        + string(b"")
        + string(hash_algorithm.encode())
        + string(digest)
    )


def sign_digest(
    signer: Signer, digest: bytes, namespace: str, hash_algorithm: str = DEFAULT_HASH
) -> SSHSig:
    """Sign a message already hashed with ``hash_algorithm``."""
    sig = signer.sign_data(signed_data(namespace, hash_algorithm, digest))
    return SSHSig(signer.public_blob, namespace, hash_algorithm, sig)


def sign(
    signer: Signer, message: bytes, namespace: str, hash_algorithm: str = DEFAULT_HASH
) -> SSHSig:
    """``ssh-keygen -Y sign -n NAMESPACE [-O hashalg=sha256]`` of ``message``."""
    return sign_digest(
        signer, HASH_ALGORITHMS[hash_algorithm](message).digest(), namespace, hash_algorithm
    )


def verify_digest(sig: SSHSig, digest: bytes, namespace: str) -> bytes:
    """Check ``sig`` over a message with this digest; return the signer's key blob.

    Raises SignatureError on a wrong namespace or a signature that does not
    verify. The caller decides whether that key is trusted.
    """
    if sig.namespace != namespace:
        raise SignatureError(
            f"The signature was made for namespace {sig.namespace!r}, not {namespace!r}: "
            "it belongs to a different kind of document."
        )
    verify_ssh_signature(
        sig.public_key, sig.signature, signed_data(namespace, sig.hash_algorithm, digest)
    )
    return sig.public_key


def verify(sig: SSHSig, message: bytes, namespace: str) -> bytes:
    digest = HASH_ALGORITHMS[sig.hash_algorithm](message).digest()
    return verify_digest(sig, digest, namespace)


__all__ = [
    "DEFAULT_HASH",
    "HASH_ALGORITHMS",
    "SSHSig",
    "armor",
    "dearmor",
    "sign",
    "sign_digest",
    "signed_data",
    "verify",
    "verify_digest",
]
