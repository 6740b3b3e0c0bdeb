"""The ticket comment's one line per operation says how it ended."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.protocol import SESSION_ENDED
from toolkit.tickets.summary import _operation


@pytest.mark.parametrize(
    ("fields", "kind", "line"),
    [
        ({"op": "run", "command": "run uptime", "exit_status": 0}, "operation", "ok"),
        ({"op": "run", "command": "run false", "exit_status": 1}, "operation", "exit 1"),
        ({"op": "read", "ok": False, "error": "cancelled"}, "operation", "failed (cancelled)"),
        ({"op": "read", "path": "/root"}, "refusal", "refused"),
        ({"op": "shell", "exit_status": 0}, "operation", "ok"),
        ({"op": "shell", "exit_status": 129}, "operation", "exit 129"),
    ],
)
def test_each_operation_says_how_it_ended(fields: dict[str, Any], kind: str, line: str) -> None:
    assert _operation(fields, kind).lstrip().startswith(f"{line} ")


def test_a_shell_the_sessions_end_cut_off_is_hung_up_not_ok() -> None:
    fields = {"op": "shell", "ok": True, "exit_status": None, "reason": SESSION_ENDED}
    assert _operation(fields, "operation") == f"  hung up    shell ({SESSION_ENDED})"
