from __future__ import annotations

import json
import struct
import tracemalloc

import pytest

from toolkit import protocol as p


def test_request_and_response_round_trip() -> None:
    request = p.Request(7, "run", {"argv": ["df", "-h"]})
    [(kind, body)] = list(p.FrameDecoder().feed(request.to_frame()))
    assert kind == p.KIND_MESSAGE and p.parse_request(body) == request
    response = p.Response(7, False, error="refused", message="not on the list")
    [(_, body)] = list(p.FrameDecoder().feed(response.to_frame()))
    assert p.parse_response(body) == response


def test_data_frames_split_and_reassemble_byte_by_byte() -> None:
    payload = bytes(range(256)) * 9000  # over two chunks
    frames = b"".join(p.data_frames(3, p.STDOUT, payload))
    decoder = p.FrameDecoder()
    got = []
    for i in range(0, len(frames), 4099):
        got += [p.parse_data(body) for _, body in decoder.feed(frames[i : i + 4099])]
    assert len(got) == 3 and all(d.id == 3 and d.stream == p.STDOUT for d in got)
    assert b"".join(d.data for d in got) == payload


def test_frame_bodies_stay_valid_after_later_feeds() -> None:
    """Bodies are views into what was fed (no copy until parse_data): the next
    feed, which completes a frame begun in this one, must not change them."""
    first = b"".join(p.data_frames(1, p.STDOUT, b"a" * 100))
    second = b"".join(p.data_frames(2, p.STDERR, b"b" * 100))
    third = p.Request(9, "end", {"reason": "x"}).to_frame()
    decoder = p.FrameDecoder()
    kept = list(decoder.feed(first + second + third[:7]))
    rest = list(decoder.feed(third[7:] + first))
    assert [p.parse_data(body) for _, body in kept] == [
        p.Data(1, p.STDOUT, b"a" * 100),
        p.Data(2, p.STDERR, b"b" * 100),
    ]
    assert p.parse_request(rest[0][1]) == p.Request(9, "end", {"reason": "x"})
    assert p.parse_data(rest[1][1]) == p.Data(1, p.STDOUT, b"a" * 100)


def test_a_frame_trickled_a_byte_at_a_time_is_not_copied_at_every_byte() -> None:
    """A peer may send a large frame in tiny pieces: each piece must cost about its
    own size, not the size of everything buffered (which would stall the loop)."""
    payload = b"x" * 300_000
    frame = b"".join(p.data_frames(1, p.STDOUT, payload))
    decoder = p.FrameDecoder()
    assert list(decoder.feed(frame[:200_000])) == []
    assert list(decoder.feed(frame[200_000:200_001])) == []  # the buffer grows once, here
    tracemalloc.start()
    try:
        for i in range(200_001, 200_100):
            assert list(decoder.feed(frame[i : i + 1])) == []
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50_000  # copying the buffered 200 KB for each byte would show here
    [(kind, body)] = list(decoder.feed(frame[200_100:]))
    assert kind == p.KIND_DATA and p.parse_data(body).data == payload


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">I", 0),
        struct.pack(">I", p.MAX_FRAME + 1),
        struct.pack(">IB", 2, 9) + b"x",
    ],
)
def test_bad_frames_are_reported_and_skipped(frame: bytes) -> None:
    good = p.Request(5, "end", {"reason": "x"}).to_frame()
    decoder = p.FrameDecoder()
    bad = list(decoder.feed(frame))
    assert [kind for kind, _ in bad] == [p.KIND_BAD]
    # The declared length of an oversized frame is skipped, then framing resumes.
    (length,) = struct.unpack(">I", frame[:4])
    if length > p.MAX_FRAME:
        assert list(decoder.feed(b"\0" * (length - len(frame) + 4))) == []
    assert list(decoder.feed(good)) == [(p.KIND_MESSAGE, good[5:])]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"v": 2, "id": 1, "op": "hello"}', "version"),
        (b'{"v": 1, "id": -1, "op": "hello"}', "id"),
        (b'{"v": 1, "id": true, "op": "hello"}', "id"),
        (b'{"v": 1, "id": 1, "op": "rm"}', "unknown operation"),
        (b'{"v": 1, "id": 1, "op": "read"}', "exactly: path"),
        (b'{"v": 1, "id": 1, "op": "read", "path": "/x", "extra": 1}', "exactly: path"),
        (b'{"v": 1, "id": 1, "op": "read", "path": 5}', "must be a str"),
        (b'{"v": 1, "id": 1, "op": "run", "argv": []}', "1..256"),
        (b'{"v": 1, "id": 1, "op": "run", "argv": [1]}', "strings"),
        (b'{"v": 1, "id": 1, "op": "run", "argv": "ls"}', "must be a list"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 100000 + b"]" * 100000, "too large"),
        (b"[" * 30000 + b"]" * 30000, "not JSON"),  # deep nesting, under the size cap
    ],
)
def test_malformed_requests_are_protocol_errors(body: bytes, message: str) -> None:
    with pytest.raises(p.ProtocolError, match=message):
        p.parse_request(body)


def test_request_id_is_recovered_for_error_replies() -> None:
    assert p.request_id_of(b'{"v": 1, "id": 42, "op": "rm"}') == 42
    assert p.request_id_of(b"garbage") == 0
    assert p.request_id_of(json.dumps({"id": "x"}).encode()) == 0


def test_oversized_message_is_refused_on_send() -> None:
    with pytest.raises(p.ProtocolError, match="too large"):
        p.message_frame({"v": 1, "id": 1, "blob": "x" * p.MAX_MESSAGE})


# A duplicate key is refused, not "the last one wins": two readers of one message
# (the agent's parser, a log, a proxy) could each take a different value.
DUPLICATES = [
    b'{"v": 1, "id": 1, "op": "read", "path": "/etc/shadow", "path": "/tmp/x"}',
    b'{"v": 1, "id": 1, "op": "end", "op": "run", "argv": ["id"], "reason": "x"}',
    b'{"v": 1, "v": 1, "id": 1, "op": "hello", "session": "s"}',
    b'{"v": 1, "id": 1, "id": 2, "op": "hello", "session": "s"}',
]


@pytest.mark.parametrize("body", DUPLICATES)
def test_a_request_with_a_duplicate_key_is_malformed(body: bytes) -> None:
    with pytest.raises(p.ProtocolError, match="twice"):
        p.parse_request(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"v": 1, "id": 1, "ok": true, "ok": false, "result": {}}',
        b'{"v": 1, "id": 1, "ok": true, "result": {"size": 1, "size": 2}}',
        b'{"v": 1, "id": 1, "ok": false, "error": {"code": "failed", "code": "ended"}}',
    ],
)
def test_a_response_with_a_duplicate_key_is_malformed(body: bytes) -> None:
    with pytest.raises(p.ProtocolError, match="twice"):
        p.parse_response(body)


def test_the_id_of_a_message_with_a_duplicate_key() -> None:
    # The error answers the request's id when it has one, and id 0 when the id is the
    # duplicate: which of the two would it answer?
    assert p.request_id_of(DUPLICATES[0]) == 1
    assert p.request_id_of(DUPLICATES[3]) == 0
    assert p.request_id_of(b'{"v": 1, "id": 5, "op": "x", "a": {"id": 6, "id": 7}}') == 5
    assert p.request_id_of(b'[{"id": 5}]') == 0
