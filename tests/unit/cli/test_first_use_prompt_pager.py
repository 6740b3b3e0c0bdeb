"""Which pager, and when output is longer than the screen (issue 15)."""

from __future__ import annotations

import pytest

from toolkit.cli._terminal import DEFAULT_PAGER, pager_command, rows


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, DEFAULT_PAGER),
        ({"PAGER": "most"}, "most"),
        ({"PAGER": "most", "TOOLKIT_PAGER": "less -S"}, "less -S"),
        ({"PAGER": ""}, None),
        ({"PAGER": "cat"}, None),
        ({"PAGER": "most", "TOOLKIT_PAGER": ""}, None),
        ({"PAGER": " cat "}, None),
    ],
)
def test_the_pager_comes_from_the_environment(
    environ: dict[str, str], expected: str | None
) -> None:
    assert pager_command(environ) == expected


def test_rows_count_wrapped_lines_not_colours() -> None:
    assert rows("a\nb\n", 80) == 2
    assert rows("x" * 81 + "\n", 80) == 2
    assert rows("\x1b[31m" + "x" * 80 + "\x1b[0m\n", 80) == 1
    assert rows("\n\n", 80) == 2
