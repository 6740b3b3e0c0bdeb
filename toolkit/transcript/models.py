"""The transcript's lines as immutable models that check themselves.

A transcript is an asciicast v2 file: a JSON header object on the first line,
then one ``[t, code, "data"]`` array per line. docs/transcript-format.md is
the specification; this module is its executable half.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from toolkit.errors import TranscriptFormatError
from toolkit.protocol import Op
from toolkit.text import printable
from toolkit.unique_json import DuplicateName, unique_names

#: The format the recorder writes. Format 1 hashed the file twice (SHA-256 for
#: checkpoints, SHA-512 for the seal); format 2 signs with SHA-256 throughout, so
#: every byte is hashed once (docs/transcript-format.md).
FORMAT_VERSION = 2
FORMATS = (1, 2)
#: The hash algorithm of each format's SSHSIG signatures, checkpoints and seal alike.
FORMAT_HASH = {1: "sha512", 2: "sha256"}
HEADER_KEY = "toolkit"
# Namespace A signs each checkpoint statement, namespace B the whole file.
# They differ so that a signature of one kind can never stand in for the other.
NAMESPACE_CHECKPOINT = "toolkit-transcript-checkpoint"
NAMESPACE_SEAL = "toolkit-transcript"
NAMESPACES = (NAMESPACE_CHECKPOINT, NAMESPACE_SEAL)
#: The only principals that may seal a transcript naming another technician:
#: agents sealing the customer's own copy (``agent@HOST``).
AGENT_PRINCIPAL_PREFIX = "agent@"

OUTPUT, INPUT, RESIZE, MARKER, EVENT, CHECKPOINT = "o", "i", "r", "m", "e", "c"
CODES = frozenset({OUTPUT, INPUT, RESIZE, MARKER, EVENT, CHECKPOINT})
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Technician:
    name: str
    email: str
    fingerprint: str


@dataclass(frozen=True)
class Header:
    """The first line: asciicast v2 fields plus toolkit's session metadata."""

    technician: Technician
    ticket: str
    timestamp: int
    session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    agent_host_key: str | None = None
    customer_host: str | None = None
    scope: tuple[str, ...] = ()
    tool_version: str = ""
    width: int = 80
    height: int = 24
    format: int = FORMAT_VERSION
    # Who signs, when not the technician: the customer's own copy is sealed by
    # the agent's host key, named here with a principal like agent@HOST.
    signer: Technician | None = None

    @property
    def signed_by(self) -> Technician:
        return self.signer or self.technician

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError("terminal size must be positive")
        if self.format not in FORMATS:
            raise ValueError(f"unknown transcript format {self.format!r}")
        uuid.UUID(self.session_id)

    @property
    def hash_algorithm(self) -> str:
        """The SSHSIG hash of this format's checkpoints and seal."""
        return FORMAT_HASH[self.format]

    def to_json(self) -> dict[str, Any]:
        meta = {
            "format": self.format,
            "session": self.session_id,
            "ticket": self.ticket,
            "technician": asdict(self.technician),
            "agent_host_key": self.agent_host_key,
            "customer_host": self.customer_host,
            "scope": list(self.scope),
            "tool_version": self.tool_version,
            "namespaces": {"checkpoint": NAMESPACE_CHECKPOINT, "seal": NAMESPACE_SEAL},
        }
        if self.signer is not None:
            meta["signer"] = asdict(self.signer)
        return {
            "version": 2,
            "width": self.width,
            "height": self.height,
            "timestamp": self.timestamp,
            "env": {"TERM": "xterm-256color", "SHELL": "/bin/sh"},
            HEADER_KEY: meta,
        }

    def to_line(self) -> bytes:
        text = json.dumps(self.to_json(), separators=(",", ":"), ensure_ascii=False)
        return text.encode("utf-8") + b"\n"

    @classmethod
    def from_line(cls, line: bytes) -> Header:
        def bad(why: str) -> TranscriptFormatError:
            return TranscriptFormatError(
                f"This is not a toolkit transcript: {why}.",
                hint="toolkit verify reads the .cast files that toolkit sessions write.",
            )

        try:
            raw = json.loads(line, object_pairs_hook=unique_names)
        except DuplicateName as exc:
            twice = repr(exc.name)[:80]
            raise bad(
                f"the header names {twice} twice, which readers may take differently"
            ) from None
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise bad("the first line is not a JSON header") from None
        if not isinstance(raw, dict) or raw.get("version") != 2:
            raise bad("the first line is not an asciicast v2 header")
        meta = raw.get(HEADER_KEY)
        if not isinstance(meta, dict):
            raise bad(f"the header has no {HEADER_KEY!r} metadata")
        format_ = meta.get("format")
        if isinstance(format_, bool) or format_ not in FORMATS:
            raise bad(f"unsupported transcript format {printable(repr(format_), 40)}")
        namespaces = meta.get("namespaces")
        if namespaces != {"checkpoint": NAMESPACE_CHECKPOINT, "seal": NAMESPACE_SEAL}:
            raise bad("the header names unknown signature namespaces")
        try:
            tech = meta["technician"]
            signer = meta.get("signer")
            header = cls(
                technician=Technician(
                    str(tech["name"]), str(tech["email"]), str(tech["fingerprint"])
                ),
                ticket=str(meta["ticket"]),
                timestamp=_timestamp(raw["timestamp"]),
                session_id=str(meta["session"]),
                agent_host_key=meta.get("agent_host_key"),
                customer_host=meta.get("customer_host"),
                scope=tuple(str(s) for s in meta.get("scope") or ()),
                tool_version=str(meta.get("tool_version", "")),
                width=int(raw["width"]),
                height=int(raw["height"]),
                format=int(format_),
                signer=Technician(
                    str(signer["name"]), str(signer["email"]), str(signer["fingerprint"])
                )
                if signer is not None
                else None,
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise bad(f"the header metadata is incomplete ({exc})") from None
        return header


def _loads(text: str | bytes) -> Any:
    """``json.loads`` of JSON proper: NaN and Infinity (which Python reads, and no toolkit
    writes) and arrays or objects nested too deep are a ValueError like any bad JSON."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def _not_json(name: str) -> Any:
    # A NaN time would pass every range check and come out of --json as invalid JSON.
    raise ValueError(f"{name} is not JSON")


#: The header's timestamp is a time from 1970 up to the end of year 9999.
MAX_TIMESTAMP = 253402300799


def _timestamp(value: object) -> int:
    """The header's start time: whole seconds since 1970, no later than year 9999."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("the timestamp is not a number")
    if not 0 <= value <= MAX_TIMESTAMP:  # NaN fails this too
        raise ValueError("the timestamp is not a time between 1970 and 9999")
    return int(value)


@dataclass(frozen=True)
class Event:
    """One ``[t, code, data]`` line."""

    time: float
    code: str
    data: str

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"unknown event code {self.code!r}")
        if self.time < 0:
            raise ValueError("event time is negative")

    @classmethod
    def from_line(cls, line: bytes) -> Event:
        raw = _loads(line)
        if (
            not isinstance(raw, list)
            or len(raw) != 3
            or not isinstance(raw[0], int | float)
            or isinstance(raw[0], bool)
            or not isinstance(raw[1], str)
            or not isinstance(raw[2], str)
        ):
            raise ValueError("not a [time, code, data] array")
        try:
            when = float(raw[0])
        except OverflowError:
            raise ValueError("event time out of range") from None
        return cls(when, raw[1], raw[2])

    def fields(self) -> dict[str, Any]:
        """The JSON object of an ``e`` event."""
        value = _loads(self.data)
        if not isinstance(value, dict) or not isinstance(value.get("type"), str):
            raise ValueError("an e event must hold a JSON object with a type")
        return value


def valid_event_type(name: str) -> bool:
    return bool(_EVENT_TYPE.match(name))


#: Requests that carry the session itself, not work on the customer's machine: the
#: greeting, the technician's end, a cancel (the request it stops is counted).
SESSION_OPS = frozenset({Op.HELLO, Op.END, Op.CANCEL})
#: What :func:`counted_as` makes of an event; None for everything else.
OPERATION, REFUSAL, LOOKUP = "operation", "refusal", "lookup"


def counted_as(fields: dict[str, Any]) -> str | None:
    """How an ``e`` event counts: an operation, a refusal, a completion look-up, or not at all.

    The one rule (docs/transcript-format.md, "Operations") that ``toolkit verify``,
    the ticket's comment and ``toolkit show`` count by, so that the technician's
    copy and the customer's copy of one session give the same numbers: an
    ``operation`` or ``refusal`` event counts, unless its ``op`` is one of
    :data:`SESSION_OPS`; a listing made for Tab completion (``purpose:
    "completion"``) that the agent answered is a look-up, counted apart. A refused
    one stays a refusal: the technician alone chooses the mark, and refusals are
    how a probe of what the policy denies shows.
    """
    kind, op = fields.get("type"), fields.get("op")
    if kind not in (OPERATION, REFUSAL) or (isinstance(op, str) and op in SESSION_OPS):
        return None
    if kind == OPERATION and fields.get("purpose") == "completion":
        return LOOKUP
    return str(kind)


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement over every byte before its own line."""

    seq: int
    offset: int
    events: int
    sha256: str
    sig: str  # base64 of the SSHSIG blob (namespace A) over statement()

    def __post_init__(self) -> None:
        if self.seq < 1 or self.offset < 0 or self.events < 0:
            raise ValueError("checkpoint numbers out of range")
        if not _HEX64.match(self.sha256):
            raise ValueError("checkpoint sha256 is not 64 hex digits")

    def statement(self, session_id: str, time: str) -> bytes:
        return checkpoint_statement(
            session_id, time, self.seq, self.offset, self.events, self.sha256
        )

    def to_data(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_data(cls, data: str) -> Checkpoint:
        raw = json.loads(data)
        if not isinstance(raw, dict) or set(raw) != {"seq", "offset", "events", "sha256", "sig"}:
            raise ValueError("checkpoint fields are not seq, offset, events, sha256, sig")
        ints = (raw["seq"], raw["offset"], raw["events"])
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ints):
            raise ValueError("checkpoint numbers are not integers")
        if not isinstance(raw["sha256"], str) or not isinstance(raw["sig"], str):
            raise ValueError("checkpoint hash and signature are not strings")
        return cls(**raw)


def checkpoint_statement(
    session_id: str, time: str, seq: int, offset: int, events: int, sha256: str
) -> bytes:
    """The text a checkpoint signs (namespace A); see docs/transcript-format.md.

    ``time`` is the checkpoint line's own time field exactly as written, so
    that every byte of a checkpoint line is covered by its signature.
    """
    return (
        "toolkit transcript checkpoint\n"
        f"session {session_id}\ntime {time}\nseq {seq}\noffset {offset}\nevents {events}\n"
        f"sha256 {sha256}\n"
    ).encode()


__all__ = [
    "AGENT_PRINCIPAL_PREFIX",
    "CHECKPOINT",
    "CODES",
    "EVENT",
    "FORMATS",
    "FORMAT_HASH",
    "FORMAT_VERSION",
    "INPUT",
    "LOOKUP",
    "MARKER",
    "NAMESPACES",
    "NAMESPACE_CHECKPOINT",
    "NAMESPACE_SEAL",
    "OPERATION",
    "OUTPUT",
    "REFUSAL",
    "RESIZE",
    "SESSION_OPS",
    "Checkpoint",
    "Event",
    "Header",
    "Technician",
    "checkpoint_statement",
    "counted_as",
    "valid_event_type",
]
