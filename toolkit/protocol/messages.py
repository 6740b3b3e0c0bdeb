"""Messages: requests and responses with ids, parsed strictly from a frame's body.

Requests are ``{"v": 1, "id": N, "op": ..., ...}``; the agent answers each
with zero or more data frames (stdout, stderr, file content) and exactly one
response ``{"v": 1, "id": N, "ok": true|false, ...}``. Anything unknown,
malformed or oversized gets an error response (or, when no id can be read, a
response with id 0) and the channel keeps serving. docs/protocol.md,
"Messages", is the specification.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from toolkit.protocol.frames import MAX_MESSAGE, Body, ProtocolError, message_frame
from toolkit.protocol.operations import (
    FIX_STEPS,
    LIST_PURPOSES,
    MAX_ARG,
    MAX_ARGV,
    MAX_LINES,
    MAX_PARAMS,
    OPERATIONS,
    OPTIONAL,
    Op,
)
from toolkit.unique_json import DuplicateName, unique_names

VERSION = 1
MAX_ID = 0xFFFFFFFF  # request ids travel in data frames as a uint32


@dataclass(frozen=True)
class Request:
    id: int
    op: str  # an Op when parsed; a test may send any string
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
    named = value.get("op")
    if not isinstance(named, str) or named not in OPERATIONS:
        raise ProtocolError(f"unknown operation {named!r}"[:200])
    op = Op(named)
    schema = OPERATIONS[op]
    optional = OPTIONAL.get(op, {})
    args = {k: v for k, v in value.items() if k not in ("v", "id", "op")}
    if not set(schema) <= set(args) <= set(schema) | set(optional):
        takes = ", ".join(sorted(schema)) or "no fields"
        if optional:
            some = "any of" if op in (Op.DIAG, Op.FIX) else "one of"
            takes += f" (and optionally {some} {', '.join(sorted(optional))})"
        raise ProtocolError(f"{op} takes exactly: {takes}")
    for name, kind in schema.items():
        if not isinstance(args[name], kind):
            raise ProtocolError(f"{op}: {name} must be a {kind.__name__}")
    for name, kind in optional.items():
        if name in args and (not isinstance(args[name], kind) or isinstance(args[name], bool)):
            raise ProtocolError(f"{op}: {name} must be {_A[kind]}")
    if op in (Op.DIAG, Op.FIX):
        _check_procedure_args(op, args)
    if "purpose" in args and args["purpose"] not in LIST_PURPOSES:
        raise ProtocolError(f"list: purpose must be one of: {', '.join(sorted(LIST_PURPOSES))}")
    if op is Op.READ:
        lines = [name for name in optional if name in args]
        if len(lines) > 1:
            raise ProtocolError("read: give head or tail, not both")
        if lines and not 1 <= args[lines[0]] <= MAX_LINES:
            raise ProtocolError(f"read: {lines[0]} must be 1..{MAX_LINES} lines")
    if op is Op.CANCEL and not _valid_request_id(args["target"]):
        raise ProtocolError(f"cancel: target must be a request id 1..{MAX_ID}")
    if op is Op.RUN:
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
    "MAX_ID",
    "VERSION",
    "Request",
    "Response",
    "parse_request",
    "parse_response",
    "request_id_of",
]
