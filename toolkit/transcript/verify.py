"""Verifying a transcript: the supervisor's verdict.

``examine(path, trust)`` always returns a :class:`Report` whose ``verdict``
is one of SEALED, UNSEALED, TAMPERED or UNTRUSTED and, when not SEALED, a
:class:`Failure` that names the checkpoint, byte range and line that fail
first. ``verify(path, trust)`` returns the report only when it is SEALED and
raises otherwise, so there is no result to forget to check. A file that is
not a transcript at all raises TranscriptFormatError.

One pass over the file does all the work. A second thread reads the file in
large chunks (and, for format 1, hashes all of it with SHA-512 for its final
SSHSIG); this thread keeps the running SHA-256, finds checkpoint and event
lines with one search, and parses the event lines as it finds them. In format
2 that running SHA-256, carried to the last byte, is also what the final
SSHSIG signs: every byte is hashed once. Hashing and reading let go of the
GIL, so a large transcript takes about as long as ``ssh-keygen -Y verify``
needs to read and hash it. Only when something fails does a slower pass find
the first bad line.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import enum
import functools
import hashlib
import importlib
import io
import json
import os
import queue
import re
import shlex
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import SignatureError, TranscriptFormatError, TranscriptVerificationError
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners, UntrustedSigner
from toolkit.identity.keys import blob_of, fingerprint, load_public
from toolkit.inputs import UnreadableInput, open_regular, read_regular
from toolkit.transcript.models import (
    AGENT_PRINCIPAL_PREFIX,
    CHECKPOINT,
    CODES,
    LOOKUP,
    NAMESPACE_CHECKPOINT,
    NAMESPACE_SEAL,
    Checkpoint,
    Event,
    Header,
    counted_as,
)

_CHUNK = 8 << 20
_SMALL_CHUNK = 64 << 10  # the least a chunk's buffer is, for a file that grows meanwhile
_quote = json.encoder.encode_basestring
_MAX_HEADER = 1 << 20
_MAX_LINE = 16 << 20
# Inside a JSON string every '"' is escaped, so these byte sequences can only
# occur where a line's code field is "c" or "e".
_CHECKPOINT_MARK = b', "c", "'
_EVENT_MARK = b', "e", "'
_ANY_MARK = re.compile(rb', "[ce]", "')
_json_decoder = json.JSONDecoder()
_JSON_SPACE = " \t\n\r"  # what json.loads skips around a document
# Lines at least this long on average are counted by stepping over them.
_STEP_MIN_LINE = 1024
_PIECE = 1 << 20
_BUFFERS = 4  # chunks read ahead of the scan, at most
_SWITCH_INTERVAL = 0.0005  # seconds
_MAYBE_CHECKPOINT = re.compile(rb'"c"|\\u')
#: Lines parsed, at most, to say where a failure lies (the verdict does not wait on it).
_LOOK_LINES = 100_000
#: A .sig file is a few hundred bytes; anything far larger is not one.
MAX_SIG_FILE = 64 << 10
#: Longer than any session: a duration beyond it is shown as unknown.
MAX_DURATION = 100 * 365 * 86400.0


class Verdict(enum.StrEnum):
    SEALED = "SEALED"
    UNSEALED = "UNSEALED"
    TAMPERED = "TAMPERED"
    UNTRUSTED = "UNTRUSTED"


@dataclass(frozen=True)
class Failure:
    reason: str
    checkpoint: int | None = None
    byte_range: tuple[int, int] | None = None
    line: int | None = None
    lines: tuple[int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "checkpoint": self.checkpoint,
            "bytes": list(self.byte_range) if self.byte_range else None,
            "line": self.line,
            "lines": list(self.lines) if self.lines else None,
        }


@dataclass(frozen=True)
class Report:
    path: Path
    verdict: Verdict
    header: Header
    size: int
    checkpoints: int  # valid checkpoints
    valid_bytes: int  # length of the prefix that signatures cover and verify
    failure: Failure | None = None
    signer: str | None = None  # fingerprint of the key that signed
    trusted_as: str | None = None  # allowed_signers principal, when trusted
    duration: float | None = None
    #: Counted as docs/transcript-format.md ("Operations") says, by models.counted_as.
    operations: int = 0
    refusals: int = 0
    lookups: int = 0  # listings made for Tab completion, not counted as operations
    end_reason: str | None = None
    #: The time (seconds from the start) of the last valid checkpoint: how much of the
    #: session the verified part covers, when it holds no end (a crash, a tampered file).
    covered_seconds: float | None = None
    notes: tuple[str, ...] = ()
    #: With ``examine(..., keep_operations=True)``: the fields of every operation and
    #: refusal event the valid checkpoints cover, in order (for the ticket's comment).
    operation_events: tuple[dict[str, Any], ...] = field(default=(), repr=False)
    #: What the assessors (ASSESSORS: the agent's receipts, witnesses) found, as rows
    #: for a renderer (label, text), in order; and the same as JSON, under their keys.
    rows: tuple[tuple[str, str], ...] = ()
    facts: dict[str, Any] = field(default_factory=dict)
    #: The first and last witnessed times, when a trusted witness stamped the file.
    witnessed: tuple[datetime, datetime] | None = None

    @property
    def prefix_only(self) -> bool:
        """Whether what the report shows is only the verified prefix of the file.

        The counts, the end and the duration are always read from the part the
        valid checkpoints cover; for TAMPERED and UNSEALED that is not the session
        as it was sealed (or the session went on past it).
        """
        return self.verdict in (Verdict.TAMPERED, Verdict.UNSEALED)

    @property
    def started(self) -> datetime:
        return datetime.fromtimestamp(self.header.timestamp, UTC)

    @property
    def ended(self) -> datetime | None:
        if self.duration is None:
            return None
        try:
            return datetime.fromtimestamp(self.header.timestamp + self.duration, UTC)
        except (OverflowError, ValueError, OSError):  # past year 9999
            return None

    def ssh_keygen_command(self, allowed_signers: str) -> str:
        """The stock OpenSSH check of this file, quoted for a POSIX shell.

        The principal comes from the file, so it is quoted like everything
        else: a supervisor may paste this line into a shell.
        """
        q = shlex.quote
        return (
            f"ssh-keygen -Y verify -f {q(allowed_signers)} -I {q(self.header.signed_by.email)} "
            f"-n {NAMESPACE_SEAL} -s {q(f'{self.path}.sig')} < {q(str(self.path))}"
        )

    def to_json(self) -> dict[str, Any]:
        h = self.header
        return {
            "path": str(self.path),
            "verdict": self.verdict.value,
            "format": h.format,
            "session": h.session_id,
            "ticket": h.ticket,
            "technician": {
                "name": h.technician.name,
                "email": h.technician.email,
                "fingerprint": h.technician.fingerprint,
            },
            "signer_principal": h.signed_by.email,
            "agent_host_key": h.agent_host_key,
            "customer_host": h.customer_host,
            "scope": list(h.scope),
            "started": self.started.isoformat(),
            "ended": self.ended.isoformat() if self.ended else None,
            "duration": self.duration,
            "operations": self.operations,
            "refusals": self.refusals,
            "lookups": self.lookups,
            "prefix_only": self.prefix_only,
            "covered_seconds": self.covered_seconds,
            "end_reason": self.end_reason,
            "checkpoints": self.checkpoints,
            "valid_bytes": self.valid_bytes,
            "size": self.size,
            "signer": self.signer,
            "trusted_as": self.trusted_as,
            "failure": self.failure.to_json() if self.failure else None,
            "notes": list(self.notes),
            "witnessed": [t.isoformat() for t in self.witnessed] if self.witnessed else None,
            **self.facts,
        }


class TranscriptNotSealed(TranscriptVerificationError):
    def __init__(self, report: Report) -> None:
        failure = report.failure.reason if report.failure else "not sealed"
        super().__init__(f"{report.path}: {report.verdict.value}: {failure}")
        self.report = report


@dataclass
class _Found:
    line: int  # 1-based line number
    start: int  # byte offset of the line
    raw: bytes
    prefix_sha256: str = ""
    # What _check_checkpoint made of it during the scan: the signing key, or
    # the error to raise when examine() reaches this checkpoint.
    outcome: bytes | Exception = b""


@dataclass(slots=True)
class _EventLine:
    """A line with an event mark, parsed as the scan finds it."""

    line: int  # 1-based line number
    end: int  # byte offset just past the line
    kind: str | None = None  # its type; None when it is not a well-formed event
    counted: str | None = None  # how it counts (models.counted_as)
    fields: dict[str, Any] | None = None  # all of its fields, kept for session_end only
    error: Exception | None = None  # parsing failed in a way only the stats may report


@dataclass
class _Scan:
    header: Header
    header_end: int
    size: int = 0
    lines: int = 1  # complete lines, header included
    tail: int = 0  # bytes after the last newline (a crash mid-write), or past an overlong line
    checkpoints: list[_Found] = field(default_factory=list)
    events: list[_EventLine] = field(default_factory=list)
    digest: bytes = b""  # of the whole file, with the hash the format's seal signs
    overlong_line: int | None = None
    keep: frozenset[str] = frozenset({"session_end"})  # event types whose fields are kept


def _read_and_hash(
    f: io.BufferedReader,
    first: bytes,
    chunks: queue.Queue[tuple[bytearray, int] | BaseException | None],
    free: queue.Queue[bytearray | None],
    digest: list[bytes],
    sha512: Any,
    chunk: int = _CHUNK,
) -> None:
    """Read the rest of the file in chunks and hand each on; hash it all into ``sha512``.

    ``sha512`` is a hashlib object (format 1's seal) or None (format 2, whose
    seal the scan's SHA-256 serves). Reading and hashing let go of the GIL, so
    this thread runs beside the scan. Chunks are read into a few buffers that
    the scan hands back when it is done with them, not into fresh memory each
    time.
    """
    try:
        made = 0
        while True:
            buf: bytearray | None
            if made < _BUFFERS and free.empty():
                buf = bytearray(chunk)
                made += 1
            else:
                buf = free.get()
            if buf is None:  # the scan stopped early
                return
            if not (n := f.readinto(buf)):
                break
            chunks.put((buf, n))
            if sha512 is not None:
                sha512.update(memoryview(buf)[:n])
        digest.append(sha512.digest() if sha512 is not None else b"")
        chunks.put(None)
    except BaseException as exc:  # handed to the scan, which raises it
        chunks.put(exc)


def _scan(path: Path, keep: frozenset[str] = frozenset({"session_end"})) -> _Scan:
    try:
        # A regular file only: a FIFO would wait for a writer, a device never end.
        f = open_regular(path, what="the transcript")
    except UnreadableInput as exc:
        raise TranscriptFormatError(exc.message) from None
    with f:
        first = f.readline(_MAX_HEADER)
        if not first.endswith(b"\n"):
            raise TranscriptFormatError(
                f"This is not a toolkit transcript: {path} has no header line."
            )
        scan = _Scan(Header.from_line(first), len(first), keep=keep)
        chunks: queue.Queue[tuple[bytearray, int] | BaseException | None] = queue.Queue()
        free: queue.Queue[bytearray | None] = queue.Queue()
        digest: list[bytes] = []
        sha512 = hashlib.sha512(first) if scan.header.format == 1 else None
        # Format 2: the running SHA-256 below takes every byte, tails included.
        whole_file = sha512 is None
        # A small file gets a small buffer: zeroing 8 MiB costs more than scanning it.
        size = min(_CHUNK, max(_SMALL_CHUNK, os.fstat(f.fileno()).st_size - len(first) + 1))
        reader = threading.Thread(
            target=_read_and_hash,
            args=(f, first, chunks, free, digest, sha512, size),
            daemon=True,
        )
        reader.start()
        switch_interval = _prompt_handoffs()
        try:
            sha256 = hashlib.sha256(first)
            offset = len(first)  # the first byte not scanned yet
            partial: list[bytes | bytearray] = []  # the line the chunks so far end inside
            partial_len = 0
            overlong = False
            while (item := chunks.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                chunk, n = item
                if overlong:
                    scan.tail += n
                    if whole_file:
                        sha256.update(memoryview(chunk)[:n])
                    free.put(chunk)
                    continue
                lo = 0
                if partial:
                    lo = chunk.find(b"\n", 0, n) + 1 or n
                    partial.append(chunk[:lo])
                    partial_len += lo
                    if chunk[lo - 1] == 10:  # that line is complete
                        line = b"".join(partial)
                        _scan_lines(scan, line, 0, len(line), offset, sha256)
                        offset += len(line)
                        partial, partial_len = [], 0
                hi = chunk.rfind(b"\n", lo, n) + 1
                if hi > lo:
                    _scan_lines(scan, chunk, lo, hi, offset, sha256)
                    offset += hi - lo
                    lo = hi
                if lo < n:
                    partial.append(chunk[lo:n])
                    partial_len += n - lo
                free.put(chunk)
                if partial_len > _MAX_LINE:
                    # No event line is this long: the rest is an uncovered tail,
                    # hashed but not held in memory.
                    scan.overlong_line = scan.lines + 1
                    if whole_file:
                        for piece in partial:
                            sha256.update(piece)
                    scan.tail, partial, partial_len = partial_len, [], 0
                    overlong = True
            scan.tail += partial_len
            if whole_file:
                for piece in partial:
                    sha256.update(piece)
            scan.size = offset + scan.tail
        finally:
            free.put(None)  # the reader may wait for a buffer
            reader.join()
            _restore_switch_interval(switch_interval)
        scan.digest = sha256.digest() if whole_file else digest[0]
    return scan


def _duration(value: object) -> float | None:
    """A session_end's duration: a finite number of seconds, else unknown."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an integer too large for a float
        return None
    return seconds if 0 <= seconds < MAX_DURATION else None  # NaN and inf fail this


def _prompt_handoffs() -> tuple[float, float]:
    """Make the interpreter hand the GIL to a waiting thread sooner; return (before, now).

    The reader thread needs the GIL for a moment after each read and each
    hash of a chunk, while this thread runs Python code most of the time.
    With the default switch interval (5 ms) the reader can wait that long
    for it every time, and on a session with many events this waiting, not
    the work, made the scan up to twice as slow.
    """
    before = sys.getswitchinterval()
    now = min(before, _SWITCH_INTERVAL)
    sys.setswitchinterval(now)
    return before, now


def _restore_switch_interval(interval: tuple[float, float]) -> None:
    before, now = interval
    if sys.getswitchinterval() == now:  # unless someone else changed it meanwhile
        sys.setswitchinterval(before)


def _scan_lines(
    scan: _Scan, buf: bytes | bytearray, lo: int, hi: int, offset: int, sha256: Any
) -> None:
    """Scan ``buf[lo:hi]``, whole lines that start at file offset ``offset``.

    In pieces of about ``_PIECE`` bytes: hashing a piece lets go of the GIL,
    so the reader thread never waits long for it.
    """
    while lo < hi:
        cut = buf.find(b"\n", lo + _PIECE, hi) + 1 or hi
        _scan_piece(scan, buf, lo, cut, offset, sha256)
        offset += cut - lo
        lo = cut


def _scan_piece(
    scan: _Scan, buf: bytes | bytearray, lo: int, hi: int, offset: int, sha256: Any
) -> None:
    """Feed whole lines ``buf[lo:hi]`` to ``sha256`` and record the marked ones.

    Records every line that holds a checkpoint mark (with the SHA-256 of all
    bytes before it) and every line that holds an event mark; a line holding
    both (only a damaged line can) is recorded as both. One regular
    expression finds either mark, so each byte is searched once; newlines are
    counted only between the lines it finds.
    """
    view = memoryview(buf)
    base = offset - lo  # the file offset of buf[0]
    hashed = counted = lo
    lines = scan.lines
    search = _ANY_MARK.search
    found = search(buf, lo, hi)
    while found is not None:
        mark = found.start()
        start = max(lo, buf.rfind(b"\n", lo, mark) + 1)
        end = buf.index(b"\n", mark, hi) + 1
        lines += _newlines(buf, counted, start)
        counted = start
        raw = buf[start:end]
        if _CHECKPOINT_MARK in raw:
            sha256.update(view[hashed:start])
            checkpoint = _Found(lines + 1, base + start, bytes(raw), sha256.hexdigest())
            scan.checkpoints.append(checkpoint)
            checkpoint.outcome = _outcome(checkpoint, len(scan.checkpoints), scan.header)
            sha256.update(view[start:end])
            hashed = end
        if _EVENT_MARK in raw:
            scan.events.append(_parse_event(raw, lines + 1, base + end, scan.keep))
        found = search(buf, end, hi)
    sha256.update(view[hashed:hi])
    scan.lines = lines + _newlines(buf, counted, hi)


def _newlines(buf: bytes | bytearray, lo: int, hi: int) -> int:
    """How many newlines ``buf[lo:hi]`` holds.

    Stepping from newline to newline with ``find`` (memchr) is much faster
    than ``count`` over long lines, such as terminal output; once the lines
    turn out to be short, ``count`` does the rest.
    """
    n = 0
    start = lo
    find = buf.find
    while (i := find(b"\n", lo, hi)) >= 0:
        n += 1
        lo = i + 1
        if not n % 16 and lo - start < n * _STEP_MIN_LINE:
            return n + buf.count(b"\n", lo, hi)
    return n


def _parse_event(raw: bytes | bytearray, line: int, end: int, keep: frozenset[str]) -> _EventLine:
    """Parse an event line while the scan has it at hand.

    Whether the stats count it is decided later, when the checkpoints are
    verified; so an unexpected error is kept for then, not raised now.
    """
    try:
        fields = _event_fields(raw)
    except Exception as exc:  # raised only if the stats reach this line
        return _EventLine(line, end, error=exc.with_traceback(None))
    if fields is None:
        return _EventLine(line, end)
    kind = fields["type"]
    return _EventLine(line, end, kind, counted_as(fields), fields if kind in keep else None)


def _event_fields(raw: bytes | bytearray) -> dict[str, Any] | None:
    """``Event.from_line(raw).fields()``, or None where that raises ValueError.

    The same steps and checks in the same order, without building an Event
    or going through json.loads's layers twice: on a session with many
    operations, parsing event lines is most of the scan's own work.
    tests/unit/transcript/test_scan.py holds the two to agreeing.
    """
    # What json.detect_encoding says of a line that starts with "[" and no NUL.
    encoding = "utf-8" if raw[0] == 0x5B and raw[1] else json.detect_encoding(raw)
    try:
        event = _json_document(raw.decode(encoding, "surrogatepass"))
    except (ValueError, RecursionError):  # UnicodeDecodeError too; arrays nested too deep
        return None
    match event:  # json gives lists, never tuples, for arrays
        case [int() | float() as when, str() as code, str() as data] if type(when) is not bool:
            try:
                if float(when) < 0 or code not in CODES:
                    return None
            except OverflowError:  # an integer too large for a float: as Event.from_line
                return None
            try:
                fields = _json_document(data)
            except (ValueError, RecursionError):
                return None
            if isinstance(fields, dict) and isinstance(fields.get("type"), str):
                return fields
    return None


def _json_document(text: str) -> Any:
    """``json.loads(text)`` for a str, without its Python layers: the same value or ValueError."""
    value, end = _json_decoder.raw_decode(text, len(text) - len(text.lstrip(_JSON_SPACE)))
    if len(text.rstrip(_JSON_SPACE)) != end:
        raise ValueError("extra data after the JSON document")
    return value


def _locate(path: Path, start: int, end: int, first_line: int) -> int | None:
    """The first line in [start, end) that is not a well-formed event, if any.

    Looked for among the first ``_LOOK_LINES`` lines only: the range is the
    file's, and anyone can write a file of millions of lines there.
    """
    with path.open("rb") as f:
        f.seek(start)
        number = first_line
        while f.tell() < end and number - first_line < _LOOK_LINES:
            line = f.readline(_MAX_LINE)
            try:
                event = Event.from_line(line)
                if event.code == CHECKPOINT:  # its data must be a checkpoint too
                    Checkpoint.from_data(event.data)
            except (ValueError, UnicodeDecodeError, RecursionError):
                return number
            number += 1
    return None


def _hidden_checkpoint(path: Path, start: int, end: int) -> int | None:
    """The line (counted from 0 at ``start``) of a checkpoint the fast scan did not see.

    A crash leaves ordinary events after the last checkpoint; a checkpoint
    there means a line was rewritten so that the scan would miss it.
    """
    if end - start > _MAX_LINE:
        return None
    with path.open("rb") as f:
        f.seek(start)
        data = f.read(end - start)
    whole = data.rfind(b"\n") + 1  # whole lines only
    # Its code is "c" as written, or spelled with a \u escape: no other line parses so.
    # Only such lines are parsed, and not millions of them: anyone can write a file.
    looked, pos = 0, 0
    for found in _MAYBE_CHECKPOINT.finditer(data, 0, whole):
        if found.start() < pos:
            continue  # on a line already looked at
        line_start = data.rfind(b"\n", 0, found.start()) + 1
        pos = data.index(b"\n", found.start()) + 1
        looked += 1
        if looked > _LOOK_LINES:
            return None
        try:
            if Event.from_line(data[line_start : pos - 1]).code == CHECKPOINT:
                return data.count(b"\n", 0, line_start)
        except (ValueError, UnicodeDecodeError):
            continue
    return None


def _check_checkpoint(found: _Found, seq: int, header: Header) -> tuple[Checkpoint, bytes]:
    """Parse and verify one checkpoint line; raise ValueError or SignatureError."""
    event = Event.from_line(found.raw)
    if event.code != CHECKPOINT:
        raise ValueError("line is not a checkpoint")
    cp = Checkpoint.from_data(event.data)
    if cp.seq != seq:
        raise ValueError(f"checkpoint number {cp.seq} where {seq} was expected")
    if cp.offset != found.start:
        raise ValueError(f"checkpoint claims offset {cp.offset}, but it starts at {found.start}")
    if cp.events != found.line - 2:
        raise ValueError(f"checkpoint claims {cp.events} events, but {found.line - 2} precede it")
    if cp.sha256 != found.prefix_sha256:
        raise ValueError("the bytes before this checkpoint do not match its SHA-256")
    try:
        blob = base64.b64decode(cp.sig, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("checkpoint signature is not base64") from None
    # Every byte of the line must be covered: the time field is in the signed
    # statement, and the rest must be exactly what the recorder writes.
    time_field = found.raw[1 : found.raw.index(b",")].decode("ascii")
    canonical = f'[{time_field}, "{CHECKPOINT}", {_quote(cp.to_data())}]\n'.encode()
    if found.raw != canonical or base64.b64encode(blob).decode() != cp.sig:
        raise ValueError("checkpoint line is not in canonical form")
    statement = cp.statement(header.session_id, time_field)
    sig = sshsig.SSHSig.from_bytes(blob)
    if sig.hash_algorithm != header.hash_algorithm:
        raise ValueError(_downgrade("checkpoint", sig.hash_algorithm, header))
    key = sshsig.verify(sig, statement, NAMESPACE_CHECKPOINT)
    return cp, key


def _downgrade(what: str, used: str, header: Header) -> str:
    return (
        f"the {what} is signed with {used}, but a format {header.format} transcript is "
        f"signed with {header.hash_algorithm}: its format or its signature was changed"
    )


def _outcome(found: _Found, seq: int, header: Header) -> bytes | Exception:
    """Verify a checkpoint as the scan finds it, while the reader thread still hashes.

    examine() goes through the outcomes in order and stops at the first
    failure, as if it verified each checkpoint only then.
    """
    try:
        return _check_checkpoint(found, seq, header)[1]
    except Exception as exc:
        return exc.with_traceback(None)


#: Event types whose fields the scan keeps: what assessors read, and the session's end.
_KEEP = frozenset(
    {
        "session_end",
        "consent",
        "session_start",
        "operation",
        "refusal",
        "approval",
        "receipt",
        "operations_digest",
        "technician_checkpoint",
        "timestamp",
        "witness",
    }
)
#: What Report.operation_events lists, with keep_operations.
_OPERATION_TYPES = frozenset({"operation", "refusal", "approval"})


@dataclass(frozen=True)
class KeptEvent:
    """A structured event the valid checkpoints cover, of a type in _KEEP."""

    line: int
    end: int  # byte offset just past its line
    type: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class Examined:
    """What an assessor gets besides the report: the verified part of the file."""

    path: Path
    events: tuple[KeptEvent, ...]
    #: The valid checkpoints, in order, and each one's line time field as written.
    checkpoints: tuple[Checkpoint, ...]
    checkpoint_times: tuple[str, ...]
    #: The whole file's hash with the format's seal hash (SHA-256 for format 2).
    file_digest: bytes
    trust: AllowedSigners | None


#: Checks run after the signatures, in order, each returning the report as it should
#: stand (new rows and facts; TAMPERED with a Failure when the evidence contradicts the
#: file). Loaded by name so that `toolkit verify` imports only what a file needs.
Assessor = Callable[[Report, Examined], Report]
ASSESSORS = ("toolkit.evidence.assess:assess", "toolkit.witness.assess:assess")


@functools.lru_cache(maxsize=16)  # every checkpoint of a file names the same key
def _plain_fingerprint(blob: bytes) -> str:
    return fingerprint(blob_of(load_public(blob)))


def examine(path: Path, trust: AllowedSigners | None, *, keep_operations: bool = False) -> Report:
    """Check a transcript and its ``.sig``; return the verdict and where it fails."""
    scan = _scan(path, _KEEP)
    report = _judge(path, scan, trust)
    if not keep_operations:
        report = dataclasses.replace(report, operation_events=())
    examined = _examined(path, scan, report, trust)
    for name in ASSESSORS:
        report = _assessor(name)(report, examined)
    return report


@functools.cache
def _assessor(name: str) -> Assessor:
    module, _, attr = name.partition(":")
    found: Assessor = getattr(importlib.import_module(module), attr)
    return found


def _examined(path: Path, scan: _Scan, report: Report, trust: AllowedSigners | None) -> Examined:
    kept = tuple(
        KeptEvent(e.line, e.end, e.kind, e.fields)
        for e in scan.events
        if e.end <= report.valid_bytes and e.kind is not None and e.fields is not None
    )
    checkpoints: list[Checkpoint] = []
    times: list[str] = []
    for found in scan.checkpoints[: report.checkpoints]:
        event = Event.from_line(found.raw)
        checkpoints.append(Checkpoint.from_data(event.data))
        times.append(_time_field(found.raw))
    return Examined(path, kept, tuple(checkpoints), tuple(times), scan.digest, trust)


def _time_field(raw: bytes) -> str:
    """A checkpoint line's time field exactly as written (what its statement signs)."""
    return raw[1 : raw.index(b",")].decode("ascii")


def _judge(path: Path, scan: _Scan, trust: AllowedSigners | None) -> Report:
    """The verdict from the signatures alone (before the assessors)."""
    header = scan.header
    base: dict[str, Any] = {"path": path, "header": header, "size": scan.size}
    if scan.overlong_line is not None:
        base["notes"] = (
            f"line {scan.overlong_line} is longer than any line toolkit writes; "
            "nothing after it was checked",
        )

    # 1. Checkpoints, in order: each covers every byte before its own line,
    # the header included.
    signer_key: bytes | None = None
    valid = 0
    valid_end = 0
    for seq, found in enumerate(scan.checkpoints, 1):
        try:
            if isinstance(found.outcome, Exception):
                raise found.outcome
            key = found.outcome
            if signer_key is not None and key != signer_key:
                raise ValueError("signed by a different key than the checkpoints before it")
            if _plain_fingerprint(key) != header.signed_by.fingerprint:
                raise ValueError("signed by a key other than the one the header names")
        except (ValueError, SignatureError, UnicodeDecodeError) as exc:
            reason = exc.message if isinstance(exc, SignatureError) else str(exc)
            prev_line = scan.checkpoints[seq - 2].line if seq > 1 else 0
            end = found.start + len(found.raw)
            bad = _locate(path, max(valid_end, scan.header_end), end, max(prev_line + 1, 2))
            # What the valid prefix shows, and only that (Report.prefix_only).
            stats, _ = _stats(scan, valid_end, seq - 1)
            return Report(
                **base,
                **stats,
                verdict=Verdict.TAMPERED,
                checkpoints=valid,
                valid_bytes=valid_end,
                signer=_plain_fingerprint(signer_key) if signer_key else None,
                failure=Failure(
                    reason=f"checkpoint {seq} (line {found.line}) fails: {reason}",
                    checkpoint=seq,
                    byte_range=(valid_end, end),
                    line=bad,
                    lines=(prev_line + 1, found.line),
                ),
            )
        signer_key = key
        valid = seq
        valid_end = found.start + len(found.raw)
    base.update(
        checkpoints=valid,
        valid_bytes=valid_end,
        signer=_plain_fingerprint(signer_key) if signer_key else None,
    )

    stats, end_line = _stats(scan, valid_end, valid)
    base.update(stats)

    # 2. Is the file complete: session_end, then the last checkpoint, then nothing?
    last = scan.checkpoints[-1] if scan.checkpoints else None
    ended = last is not None and end_line == last.line - 1
    complete = ended and last is not None and last.line == scan.lines and not scan.tail
    uncovered = (valid_end, scan.size) if scan.size > valid_end else None

    def unsealed(reason: str) -> Report:
        hidden = _hidden_checkpoint(path, valid_end if valid else scan.header_end, scan.size)
        if hidden is not None:
            # All found checkpoints are valid here: the hidden one is the next.
            first = last.line + 1 if last else 2
            return tampered(
                f"{prefix}; checkpoint {valid + 1} (line {first + hidden}) "
                "is not in the form toolkit writes",
                checkpoint=valid + 1,
                lines=(first, first + hidden),
            )
        return Report(
            **base,
            verdict=Verdict.UNSEALED,
            failure=Failure(
                reason=reason,
                checkpoint=valid or None,
                byte_range=uncovered,
                line=(last.line + 1 if last else 2) if uncovered else None,
            ),
        )

    def tampered(
        reason: str, checkpoint: int | None = None, lines: tuple[int, int] | None = None
    ) -> Report:
        """A TAMPERED report; ``checkpoint`` names the one at fault (default: the last valid)."""
        return Report(
            **base,
            verdict=Verdict.TAMPERED,
            failure=Failure(
                reason=reason,
                checkpoint=checkpoint or valid or None,
                byte_range=uncovered,
                lines=lines,
            ),
        )

    prefix = (
        f"valid up to checkpoint {valid} ({valid_end} of {scan.size} bytes)"
        if valid
        else "no valid checkpoint"
    )

    if ended and not complete:
        return tampered(
            f"{prefix}; {scan.size - valid_end} bytes were added after the session's seal"
        )

    # 3. The final SSHSIG over the whole file.
    sig_path = path.with_name(path.name + ".sig")
    try:
        sig_text = read_regular(sig_path, what="the signature", limit=MAX_SIG_FILE)
    except UnreadableInput as exc:
        if exc.missing:
            why = "it has no final signature"
            if not complete:
                why = "it was cut short (crash or truncation)"
            return unsealed(f"{prefix}; {why}: {sig_path.name} is missing")
        return unsealed(f"{prefix}; {exc.message[:-1]}")
    try:
        sig = sshsig.SSHSig.from_bytes(sshsig.dearmor(sig_text))
    except SignatureError as exc:
        return tampered(
            f"{prefix}; the final signature {sig_path.name} is not an SSH signature ({exc.message})"
        )
    if sig.hash_algorithm != header.hash_algorithm:
        # Never what toolkit writes: a seal made for another format (a downgrade).
        return tampered(f"{prefix}; {_downgrade('final signature', sig.hash_algorithm, header)}")
    try:
        seal_key = sshsig.verify_digest(sig, scan.digest, NAMESPACE_SEAL)
    except SignatureError as exc:
        if not complete:
            return unsealed(
                f"{prefix}; the file ends before its seal (a crash or a truncation), "
                f"so {sig_path.name} does not match it ({exc.message})"
            )
        return tampered(
            f"{prefix}, but the final signature does not match the file: the file changed "
            f"after sealing, or {sig_path.name} belongs to another file ({exc.message})"
        )
    if signer_key is not None and seal_key != signer_key:
        return tampered("the final signature is by a different key than the checkpoints")
    if not complete:
        return tampered("the final signature verifies, but the file has no proper end")

    # 4. Trust: is this key allowed to sign transcripts as this technician?
    email = header.signed_by.email
    signer = header.signer
    if signer is not None and not signer.email.startswith(AGENT_PRINCIPAL_PREFIX):
        # Only a customer's copy is sealed by a key other than the technician's,
        # and agents seal as agent@HOST: anything else would let any trusted key
        # seal a session in a colleague's name.
        return Report(
            **base,
            verdict=Verdict.UNTRUSTED,
            failure=Failure(
                reason=f"it names {header.technician.email} as the technician but is sealed "
                f"by {signer.email}; only an agent's copy ({AGENT_PRINCIPAL_PREFIX}HOST) may "
                "be sealed by a key other than the technician's"
            ),
        )
    if trust is None:
        return Report(
            **base,
            verdict=Verdict.UNTRUSTED,
            failure=Failure(reason="no allowed_signers file to check the signer against"),
        )
    try:
        entry = trust.check(email, seal_key, NAMESPACE_SEAL)
        trust.check(email, seal_key, NAMESPACE_CHECKPOINT)
    except UntrustedSigner as exc:
        return Report(**base, verdict=Verdict.UNTRUSTED, failure=Failure(reason=exc.message))
    return Report(**base, verdict=Verdict.SEALED, trusted_as=entry.principals)


def _stats(scan: _Scan, valid_end: int, valid: int) -> tuple[dict[str, Any], int | None]:
    """The report's counts, end and times, from the structured events that the first
    ``valid`` checkpoints cover (they end at byte ``valid_end``); and the line of the
    session_end among them, if any."""
    counts = {"operation": 0, "refusal": 0, LOOKUP: 0}
    end_reason: str | None = None
    duration: float | None = None
    end_line = None
    listed: list[dict[str, Any]] = []
    for event in scan.events:
        if event.end > valid_end:
            break
        if event.error is not None:
            raise event.error
        kind = event.kind
        if kind is None:
            continue
        if event.counted is not None:
            counts[event.counted] += 1
        if event.fields is not None and kind in _OPERATION_TYPES:
            listed.append(event.fields)
        elif event.fields is not None and kind == "session_end":
            end_line = event.line
            end_reason = str(event.fields.get("reason"))
            duration = _duration(event.fields.get("duration"))
    covered = _checkpoint_time(scan.checkpoints[valid - 1].raw) if valid else None
    return {
        "operations": counts["operation"],
        "refusals": counts["refusal"],
        "lookups": counts[LOOKUP],
        "end_reason": end_reason,
        "duration": duration,
        "covered_seconds": covered,
        "operation_events": tuple(listed),
    }, end_line


def _checkpoint_time(raw: bytes) -> float | None:
    """The time field of a (verified) checkpoint line: seconds from the session's start."""
    try:
        return _duration(Event.from_line(raw).time)
    except ValueError:
        return None


def verify(path: Path, trust: AllowedSigners | None) -> Report:
    """The report of a SEALED transcript; raises TranscriptNotSealed otherwise."""
    report = examine(path, trust)
    if report.verdict is not Verdict.SEALED:
        raise TranscriptNotSealed(report)
    return report


def read_events(path: Path) -> list[Event]:
    """Every event line of a transcript (for tests and tools; loads the whole file)."""
    with path.open("rb") as f:
        f.readline()
        return [Event.from_line(line) for line in f]


__all__ = [
    "ASSESSORS",
    "Assessor",
    "Examined",
    "Failure",
    "KeptEvent",
    "Report",
    "TranscriptNotSealed",
    "Verdict",
    "examine",
    "read_events",
    "verify",
]
