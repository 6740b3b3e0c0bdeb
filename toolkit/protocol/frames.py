"""Framing: how bytes on the session channel become messages and data, both ways.

::

    frame   = uint32 length, uint8 kind, body[length - 1]
    kind 1  = message: a compact UTF-8 JSON object
    kind 2  = data:    uint32 request id, uint8 stream, bytes

docs/protocol.md, "Frames", is the specification.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from toolkit.errors import ToolkitError

SUBSYSTEM = "toolkit-session-v1"
MAX_FRAME = (1 << 20) + 64  # 1 MiB of data plus its small header
MAX_MESSAGE = 64 * 1024  # a JSON message is small; content travels in data frames
DATA_CHUNK = 1 << 20
KIND_MESSAGE = 1
KIND_DATA = 2
KIND_BAD = 0  # FrameDecoder's report of a frame it skipped
STDOUT, STDERR, CONTENT = 1, 2, 3
#: Events of a running ``shell`` request: JSON objects, one per line (docs/protocol.md).
SHELL_EVENTS = 4
#: Notices of any request while it waits on the customer (docs/protocol.md): JSON lines.
NOTICES = 5
STREAMS = frozenset({STDOUT, STDERR, CONTENT, SHELL_EVENTS, NOTICES})
#: A notice's text is cut to this many characters; a request sends at most two notices.
MAX_NOTICE_TEXT = 200
#: A request carries at most this many notices (asking, answered); more are ignored.
MAX_NOTICES = 2


class ProtocolError(ToolkitError):
    """A peer sent something this protocol does not allow."""


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


__all__ = [
    "CONTENT",
    "DATA_CHUNK",
    "KIND_BAD",
    "KIND_DATA",
    "KIND_MESSAGE",
    "MAX_FRAME",
    "MAX_MESSAGE",
    "MAX_NOTICES",
    "MAX_NOTICE_TEXT",
    "NOTICES",
    "SHELL_EVENTS",
    "STDERR",
    "STDOUT",
    "STREAMS",
    "SUBSYSTEM",
    "Body",
    "Data",
    "FrameDecoder",
    "ProtocolError",
    "data_frames",
    "message_frame",
    "notice_frame",
    "parse_data",
]
