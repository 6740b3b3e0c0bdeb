"""A diagnostic's findings: the technician's plugin reads only what it declared."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from toolkit.plugins import Diagnostic, Finding, Plugin, StepOutput, loader
from toolkit.session.procedures import MAX_FINDINGS, findings_for
from toolkit.session.results import OperationResult, Status


def _lines(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> list[Finding]:
    return [Finding("warning", f"{o.argv[0]} said {o.text.strip()}") for o in outputs]


def _broken(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> list[Finding]:
    raise KeyError("no such field")


def _many(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> list[Finding]:
    return [Finding("info", str(n)) for n in range(MAX_FINDINGS + 5)]


def _not_findings(outputs: Sequence[StepOutput], values: Mapping[str, str]) -> list[Finding]:
    return ["\x1b[2J plain text"]  # type: ignore[list-item]


PROCEDURES = {
    "echoes": _lines,
    "broken": _broken,
    "many": _many,
    "strings": _not_findings,
}


def _diagnostic(name: str) -> Diagnostic:
    return Diagnostic(
        name=name, summary="Say two things", run=[["echo", "one"], ["echo", "two"]],
        findings=PROCEDURES[name],
    )  # fmt: skip


@pytest.fixture(autouse=True)
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    plugin = Plugin("test", "1", procedures=tuple(_diagnostic(n) for n in PROCEDURES))
    found = loader.Installed(plugins=(loader.Loaded(plugin, "tests:plugin", None),))
    monkeypatch.setattr(loader, "installed", lambda: found)


def _result(name: str, sha256: str | None = None, error: str | None = None) -> OperationResult:
    steps = [
        {"argv": ["echo", "one"], "exit_status": 0, "stdout_bytes": 4, "stderr_bytes": 0},
        {"argv": ["echo", "two"], "exit_status": 0, "stdout_bytes": 4, "stderr_bytes": 0},
    ]
    return OperationResult(
        f"diag {name}", "diag", Status.REFUSED if error else Status.OK,
        result={
            "name": name, "steps": steps, "params": {},
            "procedure": {"name": name, "sha256": sha256 or _diagnostic(name).sha256},
        },
        error=error, stdout=b"one\ntwo\n",
    )  # fmt: skip


def test_the_plugin_reads_each_commands_own_output() -> None:
    assert findings_for(_result("echoes")) == (
        Finding("warning", "echo said one"),
        Finding("warning", "echo said two"),
    )


def test_another_declaration_on_the_agent_gets_no_findings() -> None:
    # The agent ran another version: the plugin's reading would be of output it did not plan.
    assert findings_for(_result("echoes", sha256="0" * 64)) == ()


def test_no_findings_for_a_refusal_or_an_unknown_diagnostic() -> None:
    assert findings_for(_result("echoes", error="refused")) == ()
    unknown = _result("echoes")
    assert findings_for(OperationResult(unknown.command, "diag", Status.OK, {"name": "x"})) == ()


def test_a_failing_plugin_gives_one_warning_not_a_crash() -> None:
    (only,) = findings_for(_result("broken"))
    assert only.severity == "warning"
    assert "the plugin's findings for broken failed (KeyError" in only.message


def test_what_is_not_a_finding_is_refused_and_a_long_list_is_cut() -> None:
    (only,) = findings_for(_result("strings"))
    assert "failed (TypeError: it gave something that is not a Finding)" in only.message
    assert len(findings_for(_result("many"))) == MAX_FINDINGS


def test_findings_go_into_the_json_line() -> None:
    result = _result("echoes")
    assert result.to_json()["findings"] is None
    from dataclasses import replace

    shown = replace(result, findings=findings_for(result)).to_json()["findings"]
    assert shown == [
        {"severity": "warning", "message": "echo said one"},
        {"severity": "warning", "message": "echo said two"},
    ]
