"""A failing step's stderr is shown by its step, whatever the agent counted (issue 15)."""

from __future__ import annotations

from toolkit.cli.render import steps
from toolkit.session.results import OperationResult, Status


def result(*counted: tuple[int, int], stdout: bytes = b"", stderr: bytes = b"") -> OperationResult:
    listed = [
        {"argv": ["step", str(i)], "exit_status": 0, "stdout_bytes": o, "stderr_bytes": e}
        for i, (o, e) in enumerate(counted)
    ]
    listed[-1]["exit_status"] = 127
    return OperationResult(
        "fix x", "fix", Status.FAILED, {"steps": listed}, stdout=stdout, stderr=stderr
    )


def test_each_step_gets_the_bytes_it_counted() -> None:
    found = steps(result((3, 0), (0, 4), stdout=b"one", stderr=b"two\n"))
    assert [(s.stdout, s.stderr) for s in found] == [(b"one", b""), (b"", b"two\n")]


def test_output_nobody_counted_belongs_to_the_step_that_stopped() -> None:
    missing = b"resolvectl: No such file or directory\n"
    found = steps(result((3, 0), (0, 0), stdout=b"one", stderr=missing))
    assert [(s.stdout, s.stderr) for s in found] == [(b"one", b""), (b"", missing)]


def test_no_steps_no_output() -> None:
    empty = OperationResult("fix x", "fix", Status.FAILED, {"steps": "nonsense"}, stderr=b"x")
    assert steps(empty) == []
