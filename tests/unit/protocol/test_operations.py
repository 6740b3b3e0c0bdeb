"""The operations' shared pieces: one wording of a read's range, on both sides."""

from __future__ import annotations

import pytest

from toolkit.protocol import lines_asked


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({"head": 1}, "first 1 line, "),
        ({"head": 15}, "first 15 lines, "),
        ({"tail": 1}, "last 1 line, "),
        ({"tail": 20}, "last 20 lines, "),
        ({}, ""),
        ({"tail": True}, ""),
    ],
)
def test_a_reads_range_is_said_one_way_on_both_sides(args: dict[str, object], said: str) -> None:
    assert lines_asked(args) == said
