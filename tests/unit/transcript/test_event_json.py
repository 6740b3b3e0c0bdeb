"""Event lines are JSON proper: NaN and Infinity, which Python would read, are refused."""

from __future__ import annotations

import json

import pytest

from toolkit.transcript.models import Event


@pytest.mark.parametrize("time", ["NaN", "Infinity", "-Infinity"])
def test_a_time_that_is_not_a_number_is_not_an_event(time: str) -> None:
    with pytest.raises(ValueError, match="not JSON"):
        Event.from_line(f'[{time}, "o", "x"]'.encode())


def test_a_constant_inside_an_events_fields_is_refused() -> None:
    event = Event.from_line(b'[1.5, "e", "{\\"type\\": \\"operation\\", \\"seconds\\": NaN}"]')
    with pytest.raises(ValueError, match="NaN is not JSON"):
        event.fields()


def test_ordinary_events_still_read() -> None:
    line = json.dumps([1.25, "e", json.dumps({"type": "operation", "op": "run"})]).encode()
    event = Event.from_line(line)
    assert event.time == 1.25 and event.fields()["op"] == "run"
