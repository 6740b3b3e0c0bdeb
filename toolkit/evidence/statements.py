"""What the customer's agent signs: the consent receipt and the operations digest.

Both are SSHSIG signatures (sha256) by the agent's host key over a *statement*:
a fixed first line, then the fields as canonical JSON (sorted keys, no spaces,
ASCII only), then a newline. The statement travels as text inside a transcript
event, beside the base64 of the signature blob, so a verifier reads the fields
from what was signed, never from copies of them, and an outsider can check one
with ``ssh-keygen -Y check-novalidate`` (docs/transcript-format.md, "The
agent's evidence").

Operation records: each request the agent answers (not the session's own
``hello``, ``end`` and ``cancel``) becomes one record, ``{"kind", "n",
"fields"}``, where ``kind`` is ``operation`` or ``refusal``, ``n`` counts from
1 in the order the agent recorded them, and ``fields`` are exactly the event's
fields in the customer's copy (``n`` included). The digest chains their hashes:
``H0 = sha256("toolkit operations\\n" + agent_session)``, ``Hn = sha256(H(n-1) ||
record_hash(record n))``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolkit.errors import SignatureError
from toolkit.identity import sshsig
from toolkit.identity.keys import fingerprint
from toolkit.unique_json import unique_names

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer

NAMESPACE_RECEIPT = "toolkit-receipt"
NAMESPACE_DIGEST = "toolkit-operations"
RECEIPT_TITLE = "toolkit consent receipt"
DIGEST_TITLE = "toolkit operations digest"
_RECORD_TITLE = b"toolkit operation record\n"
_CHAIN_TITLE = b"toolkit operations\n"
HASH = "sha256"
#: A statement is a few KB; a digest's list of record hashes is 67 bytes a record.
MAX_STATEMENT = 16 << 20
#: The session's own requests: answered, recorded by the agent, never records.
UNRECORDED_OPS = frozenset({"hello", "end", "cancel"})
RECORD_KINDS = frozenset({"operation", "refusal"})


class EvidenceError(ValueError):
    """A statement or signature that is not what the agent signs; the message says why."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII: one encoding for one value, in any language."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")


def statement(title: str, fields: dict[str, Any]) -> bytes:
    return title.encode("ascii") + b"\n" + canonical_json(fields) + b"\n"


def record_hash(record: dict[str, Any]) -> bytes:
    """SHA-256 of one operation record (``{"kind", "n", "fields"}``)."""
    return hashlib.sha256(_RECORD_TITLE + canonical_json(record)).digest()


def chain_start(agent_session: str) -> bytes:
    return hashlib.sha256(_CHAIN_TITLE + agent_session.encode("utf-8")).digest()


def chain(agent_session: str, hashes: list[bytes]) -> bytes:
    """The running hash over ``hashes``, in order."""
    h = chain_start(agent_session)
    for r in hashes:
        h = hashlib.sha256(h + r).digest()
    return h


@dataclass
class OperationLog:
    """The agent's running digest of its own operation records (one per session)."""

    agent_session: str
    hashes: list[bytes] = field(default_factory=list)
    _running: bytes = b""

    def __post_init__(self) -> None:
        self._running = chain_start(self.agent_session)

    def add(self, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Record the next operation; returns its record (``fields`` must hold its ``n``)."""
        if kind not in RECORD_KINDS:
            raise ValueError(f"not an operation record: {kind}")
        n = len(self.hashes) + 1
        if fields.get("n") != n:
            raise ValueError(f"record {n} carries n={fields.get('n')!r}")
        record = {"kind": kind, "n": n, "fields": fields}
        r = record_hash(record)
        self.hashes.append(r)
        self._running = hashlib.sha256(self._running + r).digest()
        return record

    @property
    def next_n(self) -> int:
        return len(self.hashes) + 1

    @property
    def sha256(self) -> str:
        return self._running.hex()


def sign(signer: Signer, title: str, fields: dict[str, Any], namespace: str) -> dict[str, str]:
    """An event's fields: the statement as text and the base64 SSHSIG blob over it."""
    text = statement(title, fields)
    sig = sshsig.sign(signer, text, namespace, HASH)
    return {"statement": text.decode("ascii"), "sig": base64.b64encode(sig.to_bytes()).decode()}


@dataclass(frozen=True)
class Opened:
    """A statement whose signature verifies: its fields and the key that signed it."""

    fields: dict[str, Any]
    key: bytes  # SSH wire public key blob
    fingerprint: str


def open_signed(event: dict[str, Any], title: str, namespace: str) -> Opened:
    """Check an event's ``statement`` and ``sig``; the signed fields, or EvidenceError."""
    text, sig_b64 = event.get("statement"), event.get("sig")
    if not isinstance(text, str) or not isinstance(sig_b64, str):
        raise EvidenceError("it has no statement and signature")
    if len(text) > MAX_STATEMENT:
        raise EvidenceError("its statement is larger than any the agent signs")
    try:
        raw = text.encode("ascii")
    except UnicodeEncodeError:
        raise EvidenceError("its statement is not ASCII, as every signed one is") from None
    head, sep, body = raw.partition(b"\n")
    if head != title.encode("ascii") or not sep or not body.endswith(b"\n"):
        raise EvidenceError(f"its statement does not start with {title!r}")
    try:
        fields = json.loads(body[:-1], object_pairs_hook=unique_names)
    except ValueError:
        raise EvidenceError("its statement's fields are not JSON") from None
    if not isinstance(fields, dict) or canonical_json(fields) != body[:-1]:
        raise EvidenceError("its statement's fields are not in the canonical form signed")
    try:
        blob = base64.b64decode(sig_b64, validate=True)
        sig = sshsig.SSHSig.from_bytes(blob)
        if sig.hash_algorithm != HASH:
            raise EvidenceError(f"it is signed with {sig.hash_algorithm}, not {HASH}")
        key = sshsig.verify(sig, raw, namespace)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceError(f"its signature is not an SSH signature ({exc})") from None
    except SignatureError as exc:
        raise EvidenceError(f"its signature does not verify ({exc.message})") from None
    return Opened(fields, key, fingerprint(key))


__all__ = [
    "DIGEST_TITLE",
    "NAMESPACE_DIGEST",
    "NAMESPACE_RECEIPT",
    "RECEIPT_TITLE",
    "RECORD_KINDS",
    "UNRECORDED_OPS",
    "EvidenceError",
    "Opened",
    "OperationLog",
    "canonical_json",
    "chain",
    "open_signed",
    "record_hash",
    "sign",
    "statement",
]
