"""SSH public keys and signatures: parse, fingerprint, verify, and sign with a loaded key.

Keys travel as SSH wire blobs (what OpenSSH base64-encodes in a public key
line). Ed25519 is what toolkit makes; ECDSA and RSA (SHA-2 only) keys from
``--key`` files and allowed_signers work too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from toolkit.errors import SignatureError
from toolkit.identity._wire import Reader, string

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

CERT_SUFFIX = "-cert-v01@openssh.com"
_EC_HASH: dict[str, hashes.HashAlgorithm] = {
    "nistp256": hashes.SHA256(),
    "nistp384": hashes.SHA384(),
    "nistp521": hashes.SHA512(),
}
_CURVE_NAMES = {"secp256r1": "nistp256", "secp384r1": "nistp384", "secp521r1": "nistp521"}
_RSA_HASH: dict[str, hashes.HashAlgorithm] = {
    "rsa-sha2-256": hashes.SHA256(),
    "rsa-sha2-512": hashes.SHA512(),
}


def key_type(blob: bytes) -> str:
    return Reader(blob, "public key").text()


def is_certificate(blob: bytes) -> bool:
    return key_type(blob).endswith(CERT_SUFFIX)


def fingerprint(blob: bytes) -> str:
    """SHA256 fingerprint exactly as ``ssh-keygen -l`` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def public_line(blob: bytes, comment: str = "") -> str:
    """The OpenSSH public key line: ``type base64 [comment]``."""
    line = f"{key_type(blob)} {base64.b64encode(blob).decode()}"
    return f"{line} {comment}" if comment else line


def blob_from_line(line: str) -> bytes:
    """Parse ``type base64 [comment]`` into a key blob, checking the type matches."""
    parts = line.split()
    if len(parts) < 2:
        raise SignatureError("A public key line needs a key type and base64 data.")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("A public key line holds invalid base64.") from None
    if key_type(blob) != parts[0]:
        raise SignatureError("A public key line's type does not match its data.")
    load_public(blob)
    return blob


def blob_of(key: PublicKey) -> bytes:
    line = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def load_identity(blob: bytes) -> PublicKey | serialization.SSHCertificate:
    """A key blob as a cryptography key, or a certificate."""
    line = f"{key_type(blob)} ".encode() + base64.b64encode(blob)
    try:
        ident = serialization.load_ssh_public_identity(line)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SignatureError(f"Unsupported or malformed public key ({exc}).") from None
    if isinstance(ident, serialization.SSHCertificate):
        return ident
    if not isinstance(ident, PublicKey):
        raise SignatureError("Unsupported public key type.")
    return ident


def load_public(blob: bytes) -> PublicKey:
    """The signing key inside a blob; for a certificate, the certified key."""
    ident = load_identity(blob)
    if isinstance(ident, serialization.SSHCertificate):
        inner = ident.public_key()
        if not isinstance(inner, PublicKey):
            raise SignatureError("Unsupported certified key type.")
        return inner
    return ident


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big") if value else b""
    return string(raw)


def sign_with(key: PrivateKey, data: bytes) -> bytes:
    """An SSH wire signature blob over ``data`` by a loaded private key."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return string(b"ssh-ed25519") + string(key.sign(data))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        name = _CURVE_NAMES[key.curve.name]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(_EC_HASH[name])))
        return string(f"ecdsa-sha2-{name}".encode()) + string(_mpint(r) + _mpint(s))
    sig = key.sign(data, padding.PKCS1v15(), hashes.SHA512())
    return string(b"rsa-sha2-512") + string(sig)


def verify_ssh_signature(key_blob: bytes, sig_blob: bytes, data: bytes) -> None:
    """Raise SignatureError unless ``sig_blob`` is a valid signature over ``data``."""
    key = load_public(key_blob)
    r = Reader(sig_blob, "signature")
    algorithm = r.text()
    raw = r.string()
    r.done()
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            if algorithm != "ssh-ed25519":
                raise SignatureError(f"An Ed25519 key cannot make a {algorithm} signature.")
            key.verify(raw, data)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            curve = _CURVE_NAMES.get(key.curve.name, "")
            if algorithm != f"ecdsa-sha2-{curve}":
                raise SignatureError(f"An ECDSA {curve} key cannot make a {algorithm} signature.")
            rs = Reader(raw, "ECDSA signature")
            der = encode_dss_signature(
                int.from_bytes(rs.string(), "big"), int.from_bytes(rs.string(), "big")
            )
            rs.done()
            key.verify(der, data, ec.ECDSA(_EC_HASH[curve]))
        else:
            if algorithm not in _RSA_HASH:
                raise SignatureError(f"RSA signatures must use SHA-2, not {algorithm}.")
            key.verify(raw, data, padding.PKCS1v15(), _RSA_HASH[algorithm])
    except InvalidSignature:
        raise SignatureError("The signature does not match the signed data.") from None


__all__ = [
    "CERT_SUFFIX",
    "PrivateKey",
    "PublicKey",
    "blob_from_line",
    "blob_of",
    "fingerprint",
    "is_certificate",
    "key_type",
    "load_identity",
    "load_public",
    "public_line",
    "sign_with",
    "verify_ssh_signature",
]
