"""The approval report's shape and bounds are one definition on both sides."""

from __future__ import annotations

import pytest

from toolkit.agent.operations import _for_the_technician, approval
from toolkit.protocol import APPROVAL_FIELDS, MAX_APPROVAL_COMMANDS, MAX_APPROVAL_STEPS
from toolkit.session.technician import checked_approval


def _report(steps: int, width: int = 1) -> dict[str, object]:
    commands = [["touch", f"/tmp/{i}" + "x" * width] for i in range(steps)]
    fields = approval(
        True, request=7, asked_for="run", procedure=None, commands=commands, out_of_scope=False
    )
    return _for_the_technician(fields)


def test_the_agent_builds_exactly_the_fields_the_technician_checks() -> None:
    assert set(_report(1)) == APPROVAL_FIELDS
    assert checked_approval(_report(1), 7, "run")["commands"] == [["touch", "/tmp/0x"]]


@pytest.mark.parametrize(
    ("steps", "width"),
    [
        (MAX_APPROVAL_STEPS, 1),  # the most steps that travel whole
        (MAX_APPROVAL_STEPS + 1, 1),  # many small steps: an honest agent sends the digest
        (2, MAX_APPROVAL_COMMANDS),  # few, long steps: the same
    ],
)
def test_what_an_honest_agent_sends_the_technician_records(steps: int, width: int) -> None:
    report = _report(steps, width)
    kept = checked_approval(report, 7, "run")  # never "not recorded" for an honest agent
    whole = steps <= MAX_APPROVAL_STEPS and width < MAX_APPROVAL_COMMANDS
    assert (kept["commands"] is not None) == whole
    assert kept["commands_sha256"] == report["commands_sha256"]


def test_too_many_steps_from_an_agent_is_said_as_such() -> None:
    report = approval(
        True,
        request=7,
        asked_for="run",
        procedure=None,
        commands=[["true"]] * (MAX_APPROVAL_STEPS + 1),
        out_of_scope=False,
    )
    with pytest.raises(ValueError, match=f"more than {MAX_APPROVAL_STEPS} commands"):
        checked_approval(report, 7, "run")
