"""The agent tells the technician while it asks the customer (notices), and counts the
message of a command that could not start as that step's stderr (issue 15)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tests.unit.agent.test_operations import perform, setup
from toolkit.protocol import NOTICES, STDERR


def notices(data: dict[int, bytes]) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.get(NOTICES, b"").splitlines()]


def test_a_fix_is_announced_while_the_customer_is_asked(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("fixes",))
    assert perform(s, "fix", name="mark").response.ok
    assert notices(s.wire.data()) == [{"asking": "fix mark"}, {"answered": True}]


def test_a_declined_fix_is_announced_too(tmp_path: Path) -> None:
    s = setup(tmp_path, scopes=("fixes",), approve=False)
    assert not perform(s, "fix", name="mark").response.ok
    assert notices(s.wire.data()) == [{"asking": "fix mark"}, {"answered": True}]


def test_nothing_is_announced_when_nobody_is_asked(tmp_path: Path) -> None:
    s = setup(tmp_path)
    assert perform(s, "diag", name="broken").response.ok
    assert NOTICES not in s.wire.data()


def test_a_command_that_cannot_start_counts_its_message_as_stderr(tmp_path: Path) -> None:
    s = setup(tmp_path)
    [step] = perform(s, "diag", name="broken").response.result["steps"]
    said = s.wire.data()[STDERR]
    assert step["stderr_bytes"] == len(said) > 0
    assert step["stderr_sha256"] == hashlib.sha256(said).hexdigest()
    assert step["stdout_bytes"] == 0
