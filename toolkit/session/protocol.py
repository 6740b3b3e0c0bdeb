"""The session wire protocol: framed, versioned requests and responses.

One SSH subsystem channel (``toolkit-session-v1``) carries frames both ways::

    frame   = uint32 length, uint8 kind, body[length - 1]
    kind 1  = message: a compact UTF-8 JSON object
    kind 2  = data:    uint32 request id, uint8 stream, bytes

Requests are ``{"v": 1, "id": N, "op": ..., ...}``; the agent answers each
with zero or more data frames (stdout, stderr, file content) and exactly one
response ``{"v": 1, "id": N, "ok": true|false, ...}``. Anything unknown,
malformed or oversized gets an error response (or, when no id can be read, a
response with id 0) and the channel keeps serving. docs/protocol.md is the
specification.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from toolkit.errors import ToolkitError
from toolkit.unique_json import DuplicateName, unique_names

SUBSYSTEM = "toolkit-session-v1"
VERSION = 1
MAX_FRAME = (1 << 20) + 64  # 1 MiB of data plus its small header
MAX_MESSAGE = 64 * 1024  # a JSON message is small; content travels in data frames
DATA_CHUNK = 1 << 20
KIND_MESSAGE = 1
KIND_DATA = 2
KIND_BAD = 0  # FrameDecoder's report of a frame it skipped
STDOUT, STDERR, CONTENT = 1, 2, 3
#: Events of a running ``shell`` request: JSON objects, one per line (docs/protocol.md).
SHELL_EVENTS = 4
#: Why a shell ended that the session's end cut off: both copies record it so.
SESSION_ENDED = "the session ended"
#: Notices of any request while it waits on the customer (docs/protocol.md): JSON lines.
NOTICES = 5
STREAMS = frozenset({STDOUT, STDERR, CONTENT, SHELL_EVENTS, NOTICES})
#: A notice's text is cut to this many characters; a request sends at most two notices.
MAX_NOTICE_TEXT = 200
#: A request carries at most this many notices (asking, answered); more are ignored.
MAX_NOTICES = 2

OPERATIONS: dict[str, dict[str, type]] = {
    "run": {"argv": list},
    "read": {"path": str},
    "list": {"path": str},
    "stat": {"path": str},
    "diag": {"name": str},
    "fix": {"name": str},
    "hello": {"session": str},
    "end": {"reason": str},
    "cancel": {"target": int},
    "shell": {},
}
#: Fields a request may leave out; at most one of each set below is given.
OPTIONAL: dict[str, dict[str, type]] = {
    "read": {"head": int, "tail": int},  # only the first or the last N lines
    "list": {"purpose": str},  # a display mark: LIST_PURPOSES
    # declared procedures (docs/protocol.md, "diag, fix"): parameter values, a brought one
    "diag": {"params": dict, "declaration": dict},
    "fix": {"step": str, "params": dict, "declaration": dict},
}
#: ``fix``'s ``step``: check, apply (when absent), verify or rollback.
FIX_STEPS = frozenset({"check", "apply", "verify", "rollback"})
MAX_PARAMS = 16
MAX_LINES = 1_000_000  # --head/--tail N: 1 .. MAX_LINES
#: ``list``'s ``purpose``: its one value marks a look-up for Tab completion.
LIST_PURPOSES = frozenset({"completion"})
MAX_ARGV = 256
MAX_ID = 0xFFFFFFFF  # request ids travel in data frames as a uint32
MAX_ARG = 4096


class ProtocolError(ToolkitError):
    """A peer sent something this protocol does not allow."""


@dataclass(frozen=True)
class Request:
    id: int
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> bytes:
        return message_frame({"v": VERSION, "id": self.id, "op": self.op, **self.args})


@dataclass(frozen=True)
class Response:
    id: int
    ok: bool
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # a short code: refused, failed, malformed, unknown, ...
    message: str | None = None  # a sentence for the technician
    #: What the customer answered when the request asked them (a fix): the agent's report,
    #: which the technician checks and records (toolkit.session.technician).
    approval: Any = None

    def to_frame(self) -> bytes:
        body: dict[str, Any] = {"v": VERSION, "id": self.id, "ok": self.ok}
        if self.ok:
            body["result"] = self.result
        else:
            body["error"] = {"code": self.error or "failed", "message": self.message or ""}
        if self.approval is not None:
            body["approval"] = self.approval
        return message_frame(body)


@dataclass(frozen=True)
class Data:
    id: int
    stream: int
    data: bytes


def message_frame(body: dict[str, Any]) -> bytes:
    # ASCII with \u escapes: any str (even a lone surrogate) can be sent, the peer judges it.
    payload = json.dumps(body, separators=(",", ":")).encode()
    if len(payload) > MAX_MESSAGE:
        raise ProtocolError("message too large")
    return struct.pack(">IB", len(payload) + 1, KIND_MESSAGE) + payload


def data_frames(request_id: int, stream: int, data: bytes) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), DATA_CHUNK):
        chunk = view[start : start + DATA_CHUNK]
        yield struct.pack(">IBIB", len(chunk) + 6, KIND_DATA, request_id, stream) + chunk


#: An approval report's fields (docs/transcript-format.md, "Approvals"), both sides.
APPROVAL_FIELDS = frozenset(
    {
        "answer",
        "by",
        "at",
        "request",
        "asked_for",
        "procedure",
        "summary",
        "commands",
        "commands_sha256",
        "out_of_scope",
    }
)
#: An approval sent with a response carries its commands only up to this many steps and
#: this size of compact JSON (a ``run`` may be 256 arguments of 4096 characters);
#: beyond either, ``commands`` is null and ``commands_sha256`` alone travels.
MAX_APPROVAL_STEPS = 64
MAX_APPROVAL_COMMANDS = 32 * 1024


def commands_sha256(commands: Any) -> str:
    """The SHA-256 of an approval's commands as compact ASCII JSON (docs/protocol.md)."""
    return hashlib.sha256(json.dumps(commands, separators=(",", ":")).encode()).hexdigest()


def notice_frame(request_id: int, notice: dict[str, Any]) -> bytes:
    """One notice (a small JSON object) on request ``request_id``'s NOTICES stream."""
    line = json.dumps(notice, separators=(",", ":")).encode() + b"\n"
    return next(data_frames(request_id, NOTICES, line))


#: A frame's body as the decoder hands it out: a view into the bytes fed, or a copy.
Body = bytes | memoryview


class FrameDecoder:
    """Incremental decoder: ``feed`` bytes, get ``(kind, body)`` frames.

    A bad frame (length 0, over ``max_frame``, unknown kind) comes out as
    ``(KIND_BAD, reason)`` and its declared bytes are skipped, so one hostile
    frame costs its sender the bytes it announced and the stream stays in sync.
    Whole frames in what was fed come out as views into those (immutable)
    bytes, so bulk output is copied once, by :func:`parse_data`.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame
        self._skip = 0  # bytes of an oversized frame still to discard

    def feed(self, data: bytes) -> Iterator[tuple[int, Body]]:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if self._buf:  # a frame straddles chunks
            self._buf += data
            if len(self._buf) >= 4:
                (length,) = struct.unpack_from(">I", self._buf)
                if 0 < length <= self._max and len(self._buf) < 4 + length:
                    # Still incomplete: wait without copying what came so far, so a
                    # frame sent a byte at a time costs its size, not its size squared.
                    return iter(())
            data = bytes(self._buf)  # complete (or bad): join once
            self._buf.clear()
        view = memoryview(data)
        frames: list[tuple[int, Body]] = []
        pos, end = 0, len(view)
        while end - pos >= 4:
            (length,) = struct.unpack_from(">I", view, pos)
            if length == 0 or length > self._max:
                dropped = min(length, end - pos - 4)
                pos += 4 + dropped
                self._skip = length - dropped
                frames.append(
                    (KIND_BAD, f"frame of {length} bytes is outside 1..{self._max}".encode())
                )
                continue
            if end - pos < 4 + length:
                break
            kind = view[pos + 4]
            if kind in (KIND_MESSAGE, KIND_DATA):
                frames.append((kind, view[pos + 5 : pos + 4 + length]))
            else:
                frames.append((KIND_BAD, f"unknown frame kind {kind}".encode()))
            pos += 4 + length
        self._buf += view[pos:]  # the start of a frame still to come
        return iter(frames)


def parse_data(body: Body) -> Data:
    if len(body) < 5:
        raise ProtocolError("data frame too short")
    request_id, stream = struct.unpack_from(">IB", body)
    if stream not in STREAMS:
        raise ProtocolError(f"unknown data stream {stream}")
    return Data(request_id, stream, bytes(body[5:]))


def _decode(body: Body) -> str:
    # json.loads(bytes) would also take UTF-16/32 and a BOM, and let UTF-8-encoded
    # surrogates through: the protocol says UTF-8, so decode strictly first.
    try:
        return bytes(body).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("message is not JSON: not valid UTF-8") from None


def _load(body: Body) -> dict[str, Any]:
    if len(body) > MAX_MESSAGE:
        raise ProtocolError("message too large")
    text = _decode(body)
    try:
        value = json.loads(text, object_pairs_hook=unique_names)
    except DuplicateName as exc:
        # Two readers of one message could each take a different value: refuse it.
        raise ProtocolError(f"message has the key {exc.name[:64]!r} twice") from None
    except (ValueError, RecursionError):
        raise ProtocolError("message is not JSON") from None
    if not isinstance(value, dict):
        raise ProtocolError("message is not a JSON object")
    if value.get("v") != VERSION:
        raise ProtocolError(f"unsupported protocol version {value.get('v')!r}")
    request_id = value.get("id")
    if not isinstance(request_id, int) or isinstance(request_id, bool) or request_id < 0:
        raise ProtocolError("message id is not a non-negative integer")
    return value


def _valid_request_id(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID


class _Members(list[tuple[str, Any]]):
    """A JSON object's members in order, duplicates kept."""


def request_id_of(body: Body) -> int:
    """Best effort: the id of a request that failed to parse, else 0 (also when it has two)."""
    try:
        value = json.loads(_decode(body), object_pairs_hook=_Members)
    except (ProtocolError, ValueError, RecursionError):
        return 0
    ids = [v for k, v in value if k == "id"] if isinstance(value, _Members) else []
    return ids[0] if len(ids) == 1 and _valid_request_id(ids[0]) else 0


_A = {int: "an integer", str: "a string", dict: "an object"}


def parse_request(body: Body) -> Request:
    value = _load(body)
    if not _valid_request_id(value["id"]):
        # 0 answers no request, and data frames carry the id as a uint32.
        raise ProtocolError(f"a request id must be 1..{MAX_ID}")
    op = value.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise ProtocolError(f"unknown operation {op!r}"[:200])
    schema = OPERATIONS[op]
    optional = OPTIONAL.get(op, {})
    args = {k: v for k, v in value.items() if k not in ("v", "id", "op")}
    if not set(schema) <= set(args) <= set(schema) | set(optional):
        takes = ", ".join(sorted(schema)) or "no fields"
        if optional:
            some = "any of" if op in ("diag", "fix") else "one of"
            takes += f" (and optionally {some} {', '.join(sorted(optional))})"
        raise ProtocolError(f"{op} takes exactly: {takes}")
    for name, kind in schema.items():
        if not isinstance(args[name], kind):
            raise ProtocolError(f"{op}: {name} must be a {kind.__name__}")
    for name, kind in optional.items():
        if name in args and (not isinstance(args[name], kind) or isinstance(args[name], bool)):
            raise ProtocolError(f"{op}: {name} must be {_A[kind]}")
    if op in ("diag", "fix"):
        _check_procedure_args(op, args)
    if "purpose" in args and args["purpose"] not in LIST_PURPOSES:
        raise ProtocolError(f"list: purpose must be one of: {', '.join(sorted(LIST_PURPOSES))}")
    if op == "read":
        lines = [name for name in optional if name in args]
        if len(lines) > 1:
            raise ProtocolError("read: give head or tail, not both")
        if lines and not 1 <= args[lines[0]] <= MAX_LINES:
            raise ProtocolError(f"read: {lines[0]} must be 1..{MAX_LINES} lines")
    if op == "cancel" and not _valid_request_id(args["target"]):
        raise ProtocolError(f"cancel: target must be a request id 1..{MAX_ID}")
    if op == "run":
        argv = args["argv"]
        if not argv or len(argv) > MAX_ARGV:
            raise ProtocolError(f"run: argv must have 1..{MAX_ARGV} items")
        if not all(isinstance(a, str) and len(a) <= MAX_ARG for a in argv):
            raise ProtocolError(f"run: argv items must be strings of at most {MAX_ARG} chars")
    return Request(value["id"], op, args)


def _check_procedure_args(op: str, args: dict[str, Any]) -> None:
    """``step`` one of FIX_STEPS; ``params`` at most MAX_PARAMS strings by name."""
    if "step" in args and args["step"] not in FIX_STEPS:
        raise ProtocolError(f"fix: step must be one of: {', '.join(sorted(FIX_STEPS))}")
    params = args.get("params", {})
    if len(params) > MAX_PARAMS or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= MAX_ARG
        for k, v in params.items()
    ):
        raise ProtocolError(f"{op}: params must be at most {MAX_PARAMS} strings by name")


def parse_response(body: Body) -> Response:
    value = _load(body)
    ok = value.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError("response without ok")
    approval = value.get("approval")  # checked where it is recorded
    if ok:
        result = value.get("result", {})
        if not isinstance(result, dict):
            raise ProtocolError("response result is not an object")
        return Response(value["id"], True, result, approval=approval)
    error = value.get("error")
    if not isinstance(error, dict):
        raise ProtocolError("error response without an error object")
    return Response(
        value["id"],
        False,
        error=str(error.get("code")),
        message=str(error.get("message")),
        approval=approval,
    )


__all__ = [
    "APPROVAL_FIELDS",
    "CONTENT",
    "FIX_STEPS",
    "KIND_BAD",
    "KIND_DATA",
    "KIND_MESSAGE",
    "MAX_APPROVAL_COMMANDS",
    "MAX_APPROVAL_STEPS",
    "MAX_FRAME",
    "MAX_ID",
    "MAX_LINES",
    "MAX_MESSAGE",
    "MAX_NOTICES",
    "MAX_NOTICE_TEXT",
    "NOTICES",
    "OPERATIONS",
    "OPTIONAL",
    "SESSION_ENDED",
    "SHELL_EVENTS",
    "STDERR",
    "STDOUT",
    "SUBSYSTEM",
    "Body",
    "Data",
    "FrameDecoder",
    "ProtocolError",
    "Request",
    "Response",
    "commands_sha256",
    "data_frames",
    "message_frame",
    "notice_frame",
    "parse_data",
    "parse_request",
    "parse_response",
    "request_id_of",
]
