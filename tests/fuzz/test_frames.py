"""Fuzzing the session protocol's frame decoder and message parsers.

Whatever a peer sends, as whole frames or cut anywhere:
- the decoder yields what a whole-stream reading of docs/protocol.md yields
  (``reference_frames``), however the bytes are split across feeds, and the
  bodies it handed out earlier stay as they were;
- it never holds more than one frame of its limit between feeds;
- a bad frame (length 0, over the limit, unknown kind) comes out as one
  KIND_BAD, and every good frame around it comes out intact: the stream stays
  in sync;
- the parsers raise nothing but ProtocolError, and what they accept is within
  the protocol's limits.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import budget
from toolkit import protocol as p

# Small limits make "over the limit" cheap to send whole; MAX_FRAME is the real one.
LIMITS = [6, 64, 300, p.MAX_FRAME]


def reference_frames(stream: bytes, max_frame: int) -> list[tuple[int, bytes]]:
    """The frames in ``stream`` read in one go, as docs/protocol.md describes them."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while len(stream) - pos >= 4:
        (length,) = struct.unpack_from(">I", stream, pos)
        if length == 0 or length > max_frame:
            reason = f"frame of {length} bytes is outside 1..{max_frame}"
            frames.append((p.KIND_BAD, reason.encode()))
            pos += 4 + length  # its declared bytes are skipped, even those still to come
            continue
        if len(stream) - pos < 4 + length:
            break
        kind = stream[pos + 4]
        if kind in (p.KIND_MESSAGE, p.KIND_DATA):
            frames.append((kind, stream[pos + 5 : pos + 4 + length]))
        else:
            frames.append((p.KIND_BAD, f"unknown frame kind {kind}".encode()))
        pos += 4 + length
    return frames


def frame(kind: int, body: bytes) -> bytes:
    return struct.pack(">IB", len(body) + 1, kind) + body


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.sampled_from([0, 1, p.MAX_ID, p.MAX_ID + 1, -1, 2**64, 1.0, 1e308])
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
)
KEYS = ["v", "id", "op", "ok", "result", "error", "code", "message", *p.OPERATIONS["run"]]
KEYS += sorted({name for schema in p.OPERATIONS.values() for name in schema} | set(p.OPERATIONS))
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=12,
)


@st.composite
def protocol_objects(draw: st.DrawFn) -> dict[str, Any]:
    """JSON objects close to real messages, so the parsers get past their first checks."""
    op = draw(st.sampled_from(sorted(p.OPERATIONS)))
    body: dict[str, Any] = {"v": p.VERSION, "id": draw(st.integers(0, p.MAX_ID + 1))}
    if draw(st.booleans()):
        body["op"] = op
        for name, kind in p.OPERATIONS[op].items():
            value = draw(
                st.lists(st.text(max_size=8), min_size=0, max_size=3)
                if kind is list
                else st.integers(-1, p.MAX_ID + 1)
                if kind is int
                else st.text(max_size=16)
            )
            body[name] = draw(st.just(value) | json_values)
    else:
        body["ok"] = draw(st.booleans() | json_values)
        body["result"] = draw(st.dictionaries(st.text(max_size=5), json_values, max_size=3))
        body["error"] = draw(
            st.fixed_dictionaries({"code": json_values, "message": json_values}) | json_values
        )
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=2)):  # drop or replace a field
        if draw(st.booleans()):
            body.pop(key, None)
        else:
            body[key] = draw(json_values)
    return body


def encoded(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(encoded),
    protocol_objects().map(encoded),
    # Other encodings and a BOM: the protocol says UTF-8, json.loads(bytes) would guess.
    st.tuples(protocol_objects(), st.sampled_from(["utf-16", "utf-32", "utf-8-sig"])).map(
        lambda t: json.dumps(t[0]).encode(t[1])
    ),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),  # nesting past the recursion limit
    st.integers(1, 100_000).map(lambda n: b'{"v":1,"id":' + b"9" * n + b"}"),
    st.integers(p.MAX_MESSAGE - 64, p.MAX_MESSAGE + 64).map(
        lambda n: b'{"v":1,"id":1,"op":"end","reason":"' + b"x" * n + b'"}'
    ),
)


@st.composite
def pieces(draw: st.DrawFn, max_frame: int, garbage: bool) -> tuple[bytes, list[tuple[int, bytes]]]:
    """One piece of a stream and what the decoder must make of it.

    Without ``garbage`` every piece is a whole frame (good or bad), so the
    expected frames are known piece by piece.
    """
    room = min(max_frame - 1, 400)
    choices = ["message", "data", "unknown kind", "zero length", "oversized"]
    what = draw(st.sampled_from([*choices, "garbage"] if garbage else choices))
    if what == "message":
        body = draw(bodies.map(lambda b: b[:room]) | st.binary(max_size=room))
        return frame(p.KIND_MESSAGE, body), [(p.KIND_MESSAGE, body)]
    if what == "data":
        body = draw(st.binary(max_size=room))
        return frame(p.KIND_DATA, body), [(p.KIND_DATA, body)]
    if what == "unknown kind":
        kind = draw(st.integers(0, 255).filter(lambda k: k not in (p.KIND_MESSAGE, p.KIND_DATA)))
        return frame(kind, draw(st.binary(max_size=room))), [(p.KIND_BAD, b"")]
    if what == "oversized" and max_frame < 1000:
        length = draw(st.integers(max_frame + 1, max_frame + 300))
        return struct.pack(">I", length) + draw(st.binary(min_size=length, max_size=length)), [
            (p.KIND_BAD, b"")
        ]
    if what == "garbage":
        return draw(st.binary(min_size=1, max_size=40)), []
    return b"\0\0\0\0", [(p.KIND_BAD, b"")]  # length 0


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(stream) + 1) for c in cuts})
    return [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]


def decode_in_chunks(chunks: list[bytes], max_frame: int) -> list[tuple[int, bytes]]:
    """Feed ``chunks`` one by one; check the buffer bound after each feed."""
    decoder = p.FrameDecoder(max_frame)
    bodies: list[tuple[int, p.Body]] = []
    for chunk in chunks:
        bodies += decoder.feed(chunk)
        # Between feeds: at most the start of one frame within the limit.
        assert len(decoder._buf) < 4 + max_frame
    # Bodies handed out earlier are views: later feeds must not have changed them.
    return [(kind, bytes(body)) for kind, body in bodies]


@budget()
@given(data=st.data(), max_frame=st.sampled_from(LIMITS), garbage=st.booleans())
def test_any_split_decodes_as_the_whole_stream(
    data: st.DataObject, max_frame: int, garbage: bool
) -> None:
    parts = data.draw(st.lists(pieces(max_frame, garbage), max_size=8), label="pieces")
    stream = b"".join(piece for piece, _ in parts)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
    expected = reference_frames(stream, max_frame)
    assert decode_in_chunks([stream], max_frame) == expected
    assert decode_in_chunks(split(stream, cuts), max_frame) == expected


@budget()
@given(data=st.data(), max_frame=st.sampled_from(LIMITS), byte_at_a_time=st.booleans())
def test_bad_frames_are_reported_and_the_stream_stays_in_sync(
    data: st.DataObject, max_frame: int, byte_at_a_time: bool
) -> None:
    parts = data.draw(st.lists(pieces(max_frame, garbage=False), max_size=8), label="pieces")
    stream = b"".join(piece for piece, _ in parts)
    expected = [frame for _, frames in parts for frame in frames]
    if byte_at_a_time and len(stream) < 3000:
        chunks = [stream[i : i + 1] for i in range(len(stream))]
    else:
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=12), label="cuts")
        chunks = split(stream, cuts)
    got = decode_in_chunks(chunks, max_frame)
    assert [kind for kind, _ in got] == [kind for kind, _ in expected]
    for (kind, body), (_, want) in zip(got, expected, strict=True):
        if kind != p.KIND_BAD:
            assert body == want


@budget()
@given(body=bodies)
def test_parsers_raise_only_protocol_errors(body: bytes) -> None:
    rid = p.request_id_of(body)  # never raises
    assert isinstance(rid, int) and 0 <= rid <= p.MAX_ID
    for view in (body, memoryview(body)):
        try:
            request = p.parse_request(view)
        except p.ProtocolError:
            pass
        else:
            assert 1 <= request.id <= p.MAX_ID and rid == request.id
            assert set(request.args) == set(p.OPERATIONS[request.op])
            # What the agent accepted, sent again, is the same request.
            [(kind, again)] = p.FrameDecoder().feed(request.to_frame())
            assert kind == p.KIND_MESSAGE and p.parse_request(again) == request
        try:
            response = p.parse_response(view)
        except p.ProtocolError:
            pass
        else:
            assert response.id >= 0 and isinstance(response.ok, bool)
        try:
            chunk = p.parse_data(view)
        except p.ProtocolError:
            pass
        else:
            assert chunk.stream in p.STREAMS and chunk.data == bytes(body[5:])


requests = st.builds(
    p.Request,
    id=st.integers(1, p.MAX_ID),
    op=st.just("run"),
    args=st.fixed_dictionaries(
        {"argv": st.lists(st.text(max_size=p.MAX_ARG // 64), min_size=1, max_size=8)}
    ),
) | st.builds(
    p.Request,
    id=st.integers(1, p.MAX_ID),
    op=st.sampled_from(["read", "list", "stat"]),
    args=st.fixed_dictionaries({"path": st.text(max_size=200)}),
)


@budget()
@given(request=requests, chunks=st.lists(st.binary(max_size=300), max_size=3))
def test_every_valid_request_survives_the_wire(request: p.Request, chunks: list[bytes]) -> None:
    """Any str (even a lone surrogate) goes out escaped and comes back the same."""
    sent = request.to_frame()
    data = b"".join(f for chunk in chunks for f in p.data_frames(request.id, p.STDOUT, chunk))
    decoded = decode_in_chunks([sent + data], p.MAX_FRAME)
    assert p.parse_request(decoded[0][1]) == request
    assert [p.parse_data(body).data for _, body in decoded[1:]] == [c for c in chunks if c]
