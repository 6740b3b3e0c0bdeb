"""A diagnostic's findings, by the technician's own Linux plugin, after its steps."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.share_process import Person, Share, sharing
from tests.integration.test_share_connect import connect, make_customer, make_technician


@pytest.fixture
def technician(tmp_path: Path, identity: Path) -> Person:
    return make_technician(tmp_path / "technician", identity)


@pytest.fixture
def share(tmp_path: Path) -> Iterator[Share]:
    customer = make_customer(tmp_path / "customer")
    # The built-in policy: the Linux plugin's memory diagnostic reads /proc/meminfo.
    with sharing(customer, logs=tmp_path) as running:
        yield running


def test_findings_follow_the_steps_for_people_and_scripts(technician: Person, share: Share) -> None:
    done = connect(technician, share, "diag memory\nrun uptime\n", "--json")
    assert done.returncode == 0, done.stderr
    memory, uptime, _summary = (json.loads(line) for line in done.stdout.splitlines())
    # The Linux plugin reads /proc/meminfo as the agent ran it: memory, then swap.
    messages = [f["message"] for f in memory["findings"]]
    assert [m.split(":")[0] for m in messages] == ["memory", "swap"], messages
    assert all(f["severity"] in ("info", "warning", "problem") for f in memory["findings"])
    assert uptime["findings"] is None  # only a diagnostic has findings
    for finding in memory["findings"]:
        assert f"finding: {finding['severity']}: {finding['message']}" in done.stderr
    header = done.stderr.index("== cat /proc/meminfo (exit 0)")
    assert done.stderr.index("finding: ") > header
