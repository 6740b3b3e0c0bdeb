"""The transcript recorder: append-only, checkpointed, sealed.

Each line goes to a small buffer, then to the file and into one running
SHA-256, so memory stays constant for a session of any length: each checkpoint
signs the hash of every byte before it, and the final SSHSIG (with hash
``sha256``) signs the hash of the whole file, the same running hash at the end
(format 2; a format 1 header, for tests and old assets, adds the SHA-512 that
format's seal signs). A checkpoint is written every
``checkpoint_events`` events or ``checkpoint_seconds`` of session time,
whichever comes first, and the file is fsynced after it: a crash loses at most
the events since the last checkpoint and leaves a verifiable prefix. Time
checkpoints need :meth:`Recorder.tick` (or :func:`keep_checkpointing`) while a
session is idle.

A write that fails (a full disk, a file size limit) stops the recorder for
good: the bytes it did write are in the file but not in the hashes, so any
later checkpoint would contradict the file. What the last checkpoint covers
stays verifiable. The failure (:class:`~toolkit.errors.TranscriptWriteError`,
kept in ``failure``) goes to ``on_failure`` when the session gave one: it is
called once, and the write that failed and every later one return quietly,
so that no caller needs to catch it. Without ``on_failure`` they raise it.
``close`` always raises it: nothing was sealed.

Secrets stay out by construction: data is ``bytes`` or plain JSON values
only, a :class:`~toolkit.secrets.Secret` or key object is refused, field names
that name secrets are refused, and values registered with ``redact`` are
replaced before anything is written.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import functools
import hashlib
import json
import os
import re
import time
from codecs import BufferedIncrementalDecoder
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from encodings.utf_8 import IncrementalDecoder as Utf8Decoder
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from toolkit.errors import TranscriptWriteError
from toolkit.identity import sshsig
from toolkit.identity.keys import blob_of, fingerprint, load_public
from toolkit.secrets import Secret
from toolkit.transcript.models import (
    CHECKPOINT,
    EVENT,
    FORMAT_VERSION,
    INPUT,
    MARKER,
    NAMESPACE_CHECKPOINT,
    NAMESPACE_SEAL,
    OUTPUT,
    RESIZE,
    Checkpoint,
    Header,
    checkpoint_statement,
    valid_event_type,
)

if TYPE_CHECKING:
    from toolkit.identity.signer import Signer

# json's C string encoder: quotes and escapes a str, keeping non-ASCII as is.
_quote: Callable[[str], str] = json.encoder.encode_basestring
# Output longer than this is quoted by orjson: the same bytes, three times json's speed.
_ORJSON_FROM = 1024
_FLUSH_BYTES = 1 << 16
# The kernel is asked to start writing the file out every this many bytes, so
# that the fsync after a checkpoint waits for the last few MiB, not for all
# that came since the one before (64 MB of bulk output at 1,000 lines).
_WRITEBACK_BYTES = 4 << 20
_MAX_CHUNK = 1 << 16  # bytes of output per event line; larger writes are split
# Field names that name secrets, after camelCase is folded to snake_case.
# `code` alone is the consent code; exit_code and the like are fine.
_SECRET_FIELD = re.compile(
    r"^(code|pin|otp)$|(^|_)(consent_code|passphrase|password|passwd|secret|private_key"
    r"|token|api_key|apikey|credentials?)$"
)
_CAMEL_HUMP = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
REDACTED = "[redacted]"


@dataclass(frozen=True)
class CheckpointMade:
    """A checkpoint just written: what a witness stamps (its ``sha256``) and where it is."""

    seq: int
    offset: int  # where its line starts: it covers bytes 0..offset-1
    events: int
    sha256: str  # of those bytes
    time: str  # its line's time field, exactly as written


class RecorderClosed(RuntimeError):
    pass


def _refuse(value: object) -> Any:
    raise TypeError(
        f"{type(value).__name__} cannot be recorded: transcripts take plain JSON values only"
    )


# Events are compact JSON, non-ASCII kept as is; one encoder serves every event.
_encode_event = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_refuse).encode


@functools.cache
def _orjson_dumps() -> Callable[[str], bytes] | None:
    # Imported at the first bulk line, not at the top: 12 ms that `toolkit verify`
    # does not need. Without it (a broken install) json writes the same bytes, slower.
    try:
        import orjson
    except ImportError:
        return None
    return orjson.dumps


def _quote_bulk(text: str) -> bytes:
    """``_quote(text)`` as UTF-8, by orjson where it is: the same bytes, three times the speed."""
    dumps = _orjson_dumps()
    if dumps is not None:
        try:
            return dumps(text)
        except TypeError:  # a lone surrogate, which only json writes (as "?", below)
            pass
    return _quote(text).encode("utf-8", "replace")


@functools.cache
def _writeback() -> Callable[[int, int, int], None] | None:
    """``start(fd, offset, length)``: Linux's sync_file_range(SYNC_FILE_RANGE_WRITE).

    It starts writing those bytes out and returns at once; it promises nothing
    (the fsync after each checkpoint does). None where there is no such call.
    """
    import sys

    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    sync_file_range_write = 2

    def start(fd: int, offset: int, length: int) -> None:
        call(fd, offset, length, sync_file_range_write)  # a failure only means no head start

    return start


@functools.lru_cache(maxsize=1024)  # sessions use a few field names, over and over
def _names_a_secret(name: str) -> bool:
    return bool(_SECRET_FIELD.search(_CAMEL_HUMP.sub("_", name).lower()))


@functools.lru_cache(maxsize=256)
def _valid_event_type(name: str) -> bool:
    return valid_event_type(name)


def _check_fields(value: Any) -> None:
    if isinstance(value, dict):
        for name, item in value.items():
            if _names_a_secret(str(name)):
                raise ValueError(f"field {name!r} names a secret; transcripts never hold secrets")
            if isinstance(item, dict | list | tuple):
                _check_fields(item)
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, dict | list | tuple):
                _check_fields(item)


def _cannot_create(path: Path, exc: OSError) -> TranscriptWriteError:
    return TranscriptWriteError(
        f"Cannot create the transcript {path}: {exc.strerror or exc}.",
        hint="Free space there (or fix its permissions) before the next session.",
    )


#: The longest time between a header's timestamp and its file's creation that event
#: times count from the timestamp (a header made longer ago counts from the file).
MAX_LEAD = 300.0


class Recorder:
    """Writes one transcript. Use :meth:`create`; end with :meth:`close`."""

    def __init__(
        self,
        path: Path,
        header: Header,
        signer: Signer,
        *,
        clock: Callable[[], float] = time.monotonic,
        checkpoint_events: int = 1000,
        checkpoint_seconds: float = 5.0,
        on_failure: Callable[[TranscriptWriteError], None] | None = None,
    ) -> None:
        key_fp = fingerprint(blob_of(load_public(signer.public_blob)))
        if header.signed_by.fingerprint != key_fp:
            raise ValueError("the header's key fingerprint is not the signer's")
        self.path = path
        self.header = header
        self._signer = signer
        self._clock = clock
        self._every_events = checkpoint_events
        self._every_seconds = checkpoint_seconds
        self._redact: list[str] = []
        #: Takes a failed write, once; the writes then return quietly (see the module doc).
        self.on_failure = on_failure
        #: Why the recorder stopped, if a write failed; it is then closed, and unsealed.
        self.failure: TranscriptWriteError | None = None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise _cannot_create(path, exc) from exc
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._sha256 = hashlib.sha256()
        self._hash = header.hash_algorithm
        # Format 1 only: its seal signed a second hash of the whole file.
        self._sha512 = hashlib.sha512() if header.format == 1 else None
        self._buf: list[bytes] = []  # lines to write, encoded
        self._lines: list[str] = []  # short lines after those, not yet encoded
        self._buf_len = 0
        self._offset = 0  # bytes written so far
        self._written_out = 0  # bytes the kernel was asked to start writing (see _writeback)
        self._events = 0  # lines after the header
        self._since_checkpoint = 0
        self._seq = 0
        self._synced_seq = 0  # the last checkpoint known to be on disk
        self._last_checkpoint = 0.0
        self._decoders: dict[str, BufferedIncrementalDecoder] = {
            OUTPUT: Utf8Decoder("replace"),
            INPUT: Utf8Decoder("replace"),
        }
        self._after_cr = False  # command output so far ends in CR (see command_output)
        self.closed = False
        #: Called after each checkpoint is on disk (witnesses, the agent's digest): each
        #: must return at once and never raise; see add_checkpoint_listener.
        self._listeners: list[Callable[[CheckpointMade], None]] = []
        # Event times count from the header's timestamp (whole seconds, made before this
        # file was), so that timestamp + t is each event's wall-clock time: what a
        # timeline shows is never early (docs/transcript-format.md, "Event lines").
        lead = time.time() - header.timestamp if clock is time.monotonic else 0.0
        self._start = clock() - (lead if 0.0 <= lead < MAX_LEAD else 0.0)
        self._write_bytes(header.to_line())
        self._sync()

    @property
    def signer(self) -> Signer:
        """The key that seals this transcript (e.g. to sign files that go with it)."""
        return self._signer

    @property
    def sha256(self) -> str:
        """The SHA-256 (hex) of every byte written so far; once sealed, of the whole file.

        The outbox takes it so as not to read a sealed transcript only to hash it.
        """
        return self._sha256.hexdigest()

    def add_checkpoint_listener(self, listener: Callable[[CheckpointMade], None]) -> None:
        """Call ``listener`` after each checkpoint reaches the disk, on this thread.

        A listener hands the checkpoint on (to a time-stamping authority, to the
        agent) and returns: it must not block, and what it raises is dropped, so
        that no witness can stop a session from being recorded.
        """
        self._listeners.append(listener)

    @classmethod
    def create(cls, path: Path, header: Header, signer: Signer, **options: Any) -> Recorder:
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise _cannot_create(path, exc) from exc
        return cls(path, header, signer, **options)

    # -- what sessions record -------------------------------------------------

    def output(self, data: bytes) -> None:
        """Terminal output as the terminal got it (a PTY's, which already ends lines in CRLF)."""
        self._after_cr = False
        self._stream(OUTPUT, data)

    def command_output(self, data: bytes) -> None:
        """Output of a command run on pipes, written as a terminal would show it.

        A pipe carries bare LF line ends, which a player (asciinema) draws as a
        staircase: each LF not after a CR is written as CRLF, as a terminal's
        ONLCR does. Only the transcript's text changes: digests of the output
        (the agent's ``stdout_sha256``) are of the bytes as the command wrote them.
        """
        if not data:
            return
        if not isinstance(data, bytes):
            data = bytes(data)
        if b"\n" in data:
            joined = self._after_cr and data.startswith(b"\n")  # its CR came in the write before
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if joined:
                data = data[1:]
        self._after_cr = data.endswith(b"\r")
        self._stream(OUTPUT, data)

    def input(self, data: bytes) -> None:
        self._stream(INPUT, data)

    def resize(self, width: int, height: int) -> None:
        if width <= 0 or height <= 0:
            raise ValueError("terminal size must be positive")
        self._line(RESIZE, f"{int(width)}x{int(height)}")

    def marker(self, label: str) -> None:
        if not isinstance(label, str):
            _refuse(label)
        self._line(MARKER, self._scrub(label))

    def event(self, type: str, **fields: Any) -> None:
        """A structured event: ``{"type": type, **fields}`` as compact JSON."""
        if not (_valid_event_type(type) if isinstance(type, str) else valid_event_type(type)):
            raise ValueError(f"event type {type!r} is not a lower-case identifier")
        _check_fields(fields)
        if self._redact:  # scrub values, not the JSON text, so the event stays valid JSON
            fields = self._scrub_values(fields)
        self._line(EVENT, _encode_event({"type": type, **fields}))

    def redact(self, secret: Secret) -> None:
        """Replace this secret's value wherever it would be written from now on."""
        if not isinstance(secret, Secret):
            raise TypeError("redact() takes a Secret")
        value = secret.reveal()
        if value:
            self._redact.append(value)

    def tick(self) -> None:
        """Write a time checkpoint if events wait and the interval has passed."""
        if self.closed or not self._since_checkpoint:
            return
        if self._clock() - self._start - self._last_checkpoint >= self._every_seconds:
            try:
                self._checkpoint(self._clock() - self._start)
            except TranscriptWriteError:
                if self.on_failure is None:
                    raise

    def close(self, reason: str) -> Path:
        """Seal: a session_end event, a last checkpoint, fsync, then ``<file>.sig``."""
        if self.closed:
            raise self.failure or RecorderClosed("transcript already sealed")
        for code, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._line(code, self._scrub(tail))
        duration = round(self._clock() - self._start, 6)
        self.event("session_end", reason=reason, duration=duration, events=self._events + 1)
        if self.failure is not None:  # those lines failed, reported to on_failure: no seal
            raise self.failure
        if self._since_checkpoint:
            self._checkpoint(self._clock() - self._start)
        self._file.close()
        self.closed = True
        whole = self._sha256 if self._sha512 is None else self._sha512
        sig = sshsig.sign_digest(self._signer, whole.digest(), NAMESPACE_SEAL, self._hash)
        sig_path = self.path.with_name(self.path.name + ".sig")
        from toolkit import paths  # here, not at the top: `toolkit verify` imports this module

        try:
            paths.atomic_write(sig_path, sig.armor().encode("ascii"), 0o644)
        except OSError as exc:
            self.failure = TranscriptWriteError(
                f"Cannot write the seal {sig_path}: {exc.strerror or exc}.",
                hint=f"The transcript {self.path} is whole and checkpointed to its end, but "
                "unsealed. Free space there before the next session.",
            )
            self._tell(self.failure)
            raise self.failure from exc
        return sig_path

    def abandon(self) -> None:
        """Stop without sealing (the process is going down): flush what is there."""
        if not self.closed:
            # Going down already: a failed write (kept in .failure) must not hide why.
            with contextlib.suppress(TranscriptWriteError):
                if self._since_checkpoint:
                    self._checkpoint(self._clock() - self._start)
            if not self.closed:
                self._file.close()
                self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.closed:
            self.close("completed" if exc is None else f"error: {type(exc).__name__}")

    # -- internals --------------------------------------------------------------

    def _scrub_values(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, dict):
            return {k: self._scrub_values(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._scrub_values(v) for v in value]
        return value

    def _scrub(self, text: str) -> str:
        for value in self._redact:
            if value in text:
                text = text.replace(value, REDACTED)
        return text

    def _stream(self, code: str, data: bytes) -> None:
        decoder = self._decoders[code]
        if type(data) is bytes and len(data) <= _MAX_CHUNK and not decoder.buffer:
            # The common case, whole characters with none pending: what the
            # incremental decoder would return, without its Python layers.
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                pass  # a character split across reads, or invalid bytes: the decoder
            else:
                if text:
                    self._line(code, self._scrub(text) if self._redact else text)
                return
        if not isinstance(data, bytes | bytearray | memoryview):
            _refuse(data)
        view = memoryview(data)
        for start in range(0, len(view), _MAX_CHUNK):
            text = decoder.decode(view[start : start + _MAX_CHUNK])
            if text:
                self._line(code, self._scrub(text) if self._redact else text)

    def _line(self, code: str, text: str) -> None:
        """One line. A short one stays str, encoded with the others when drained; bulk
        output (most of a transcript's bytes) is quoted to bytes at once, by orjson."""
        if self.closed:
            if self.failure is not None and self.on_failure is not None:
                return  # reported once, through on_failure
            raise self.failure or RecorderClosed("transcript already sealed")
        t = self._clock() - self._start
        if len(text) < _ORJSON_FROM:
            line = f'[{t:.6f}, "{code}", {_quote(text)}]\n'
            self._lines.append(line)
            self._buf_len += len(line)
        else:
            self._encode_lines()  # what came before goes first
            head = f'[{t:.6f}, "{code}", '.encode("ascii")
            data = b"".join((head, _quote_bulk(text), b"]\n"))
            self._buf.append(data)
            self._buf_len += len(data)
        self._events += 1
        self._since_checkpoint += 1
        try:
            if (
                self._since_checkpoint >= self._every_events
                or t - self._last_checkpoint >= self._every_seconds
            ):
                self._checkpoint(t)
            elif self._buf_len >= _FLUSH_BYTES:
                self._drain()
        except TranscriptWriteError:
            if self.on_failure is None:
                raise

    def _encode_lines(self) -> None:
        if self._lines:
            self._buf.append("".join(self._lines).encode("utf-8", "replace"))
            self._lines.clear()

    def _drain(self) -> None:
        self._encode_lines()
        if self._buf:
            data = self._buf[0] if len(self._buf) == 1 else b"".join(self._buf)
            self._buf.clear()
            self._buf_len = 0
            self._write_bytes(data)

    def _write_bytes(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a short write (a full disk, a signal) is legal; write the rest
                written = self._file.write(view)
                if not written:  # never from a regular file; a loop here would never end
                    raise OSError(errno.EIO, "the file took none of the bytes")
                view = view[written:]
        except OSError as exc:
            raise self._fail(exc) from exc
        self._sha256.update(data)
        if self._sha512 is not None:
            self._sha512.update(data)
        self._offset += len(data)
        if self._offset - self._written_out >= _WRITEBACK_BYTES:
            start = _writeback()
            if start is not None:
                with contextlib.suppress(OSError):
                    start(self._file.fileno(), self._written_out, self._offset - self._written_out)
            self._written_out = self._offset

    def _checkpoint(self, t: float) -> None:
        self._drain()
        self._seq += 1
        digest = self._sha256.hexdigest()
        offset = self._offset
        time_field = f"{t:.6f}"
        statement = checkpoint_statement(
            self.header.session_id, time_field, self._seq, offset, self._events, digest
        )
        sig = sshsig.sign(self._signer, statement, NAMESPACE_CHECKPOINT, self._hash)
        checkpoint = Checkpoint(
            seq=self._seq,
            offset=offset,
            events=self._events,
            sha256=digest,
            sig=base64.b64encode(sig.to_bytes()).decode("ascii"),
        )
        line = f'[{time_field}, "{CHECKPOINT}", {_quote(checkpoint.to_data())}]\n'
        self._write_bytes(line.encode("ascii"))
        self._events += 1
        self._since_checkpoint = 0
        self._last_checkpoint = t
        self._sync()
        self._synced_seq = self._seq
        made = CheckpointMade(self._seq, offset, checkpoint.events, digest, time_field)
        for listener in self._listeners:
            with contextlib.suppress(Exception):
                listener(made)

    def _sync(self) -> None:
        try:
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise self._fail(exc) from exc

    def _fail(self, exc: OSError) -> TranscriptWriteError:
        """Stop for good: from here on, every checkpoint would contradict the file."""
        if self._synced_seq:
            held = (
                f"What it holds up to checkpoint {self._synced_seq} stays verifiable, "
                f"unsealed (toolkit verify {self.path})."
            )
        else:
            held = "It holds no checkpoint yet, so nothing in it can be verified."
        self.failure = TranscriptWriteError(
            f"Cannot write the transcript {self.path}: {exc.strerror or exc}.",
            hint=f"Nothing more is recorded in it. {held} Free space there before the "
            "next session.",
        )
        self.closed = True
        self._buf.clear()
        self._lines.clear()
        with contextlib.suppress(OSError):
            self._file.close()
        self._tell(self.failure)
        return self.failure

    def _tell(self, failure: TranscriptWriteError) -> None:
        # Whatever the callback does wrong must not hide the failure from the writer.
        if self.on_failure is not None:
            with contextlib.suppress(Exception):
                self.on_failure(failure)


async def keep_checkpointing(recorder: Recorder, interval: float = 1.0) -> None:
    """Call ``tick`` until the recorder closes, so idle sessions still checkpoint."""
    import asyncio  # here, not at the top: `toolkit verify` imports this module

    while not recorder.closed:
        await asyncio.sleep(interval)
        with contextlib.suppress(TranscriptWriteError):  # kept in recorder.failure
            recorder.tick()


def new_header(
    technician_name: str,
    technician_email: str,
    signer: Signer,
    ticket: str,
    *,
    scope: Iterable[str] = (),
    agent_host_key: str | None = None,
    customer_host: str | None = None,
    width: int = 80,
    height: int = 24,
    technician_fingerprint: str | None = None,
    signer_principal: tuple[str, str] | None = None,
    format: int = FORMAT_VERSION,
) -> Header:
    """A header for a new session, with a fresh session id and the tool version.

    By default the technician signs. For the customer's copy, pass the
    technician's fingerprint and ``signer_principal=(name, principal)`` naming
    the agent key that signs instead.
    """
    from toolkit import __version__
    from toolkit.transcript.models import Technician

    signer_fp = fingerprint(blob_of(load_public(signer.public_blob)))
    other = None
    if signer_principal is not None:
        if technician_fingerprint is None:
            raise ValueError("a header signed by another key needs the technician's fingerprint")
        other = Technician(signer_principal[0], signer_principal[1], signer_fp)
    return Header(
        technician=Technician(
            technician_name, technician_email, technician_fingerprint or signer_fp
        ),
        ticket=ticket,
        timestamp=int(time.time()),
        agent_host_key=agent_host_key,
        customer_host=customer_host,
        scope=tuple(scope),
        tool_version=__version__,
        width=width,
        height=height,
        format=format,
        signer=other,
    )


__all__ = ["REDACTED", "Recorder", "RecorderClosed", "keep_checkpointing", "new_header"]
