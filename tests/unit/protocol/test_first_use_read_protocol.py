"""The protocol's new fields: `read`'s optional head/tail, a response's `approval`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolkit.protocol import (
    MAX_LINES,
    ProtocolError,
    Response,
    commands_sha256,
    parse_request,
    parse_response,
)


def body(**fields: Any) -> bytes:
    return json.dumps({"v": 1, "id": 3, "op": "read", "path": "/var/log/syslog", **fields}).encode()


@pytest.mark.parametrize("fields", [{}, {"head": 1}, {"tail": MAX_LINES}, {"tail": 20}])
def test_read_takes_a_path_and_at_most_one_range(fields: dict[str, Any]) -> None:
    assert parse_request(body(**fields)).args == {"path": "/var/log/syslog", **fields}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"head": 0}, "read: head must be 1..1000000 lines"),
        ({"tail": MAX_LINES + 1}, "read: tail must be 1..1000000 lines"),
        ({"tail": -5}, "read: tail must be 1..1000000 lines"),
        ({"tail": True}, "read: tail must be an integer"),
        ({"head": "3"}, "read: head must be an integer"),
        ({"head": 3.0}, "read: head must be an integer"),
        ({"head": None}, "read: head must be an integer"),
        ({"head": 1, "tail": 1}, "read: give head or tail, not both"),
        ({"lines": 1}, "read takes exactly: path (and optionally one of head, tail)"),
    ],
)
def test_a_bad_range_is_a_protocol_error(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_request(body(**fields))
    assert caught.value.message == message


@pytest.mark.parametrize("op", ["list", "stat"])
def test_only_read_takes_a_range(op: str) -> None:
    raw = json.dumps({"v": 1, "id": 3, "op": op, "path": "/", "tail": 3}).encode()
    # (list names its own optional field, purpose: never a range)
    with pytest.raises(
        ProtocolError, match=rf"{op} takes exactly: path( \(and optionally one of purpose\))?$"
    ):
        parse_request(raw)


def test_an_approval_travels_beside_a_result_or_an_error() -> None:
    approval = {"answer": "declined", "commands_sha256": commands_sha256([["true"]])}
    for sent in (
        Response(4, True, {"exit_status": 0}, approval=approval),
        Response(4, False, error="refused", message="refused: declined", approval=approval),
    ):
        frame = sent.to_frame()
        assert parse_response(frame[5:]) == sent
    plain = Response(5, True, {})
    assert b"approval" not in plain.to_frame()
    assert parse_response(plain.to_frame()[5:]).approval is None


def test_commands_sha256_is_over_compact_json() -> None:
    import hashlib

    expected = hashlib.sha256(b'[["rm","-rf","--","/home/c/x"]]').hexdigest()
    assert commands_sha256([["rm", "-rf", "--", "/home/c/x"]]) == expected
