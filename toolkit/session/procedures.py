"""What a diagnostic's or fix's step gave back, read as the plugin that declared it reads it.

The agent runs a step's commands one after another and streams their output
as one stdout and one stderr, counting each command's bytes;
:func:`step_outputs` cuts them apart again. :func:`findings_for` hands a
diagnostic's outputs to the technician's own plugin (its ``findings``), when
the agent ran the very declaration that plugin has: plugin Python runs on
the technician's side only, and only on what it was written for.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolkit.plugins.declaration import Finding, Kind, StepOutput
from toolkit.protocol import Op
from toolkit.session.results import OperationResult
from toolkit.text import printable

#: Findings shown for one diagnostic at most; a plugin's long list is cut.
MAX_FINDINGS = 50


def step_outputs(result: OperationResult) -> list[StepOutput]:
    """Each command the agent reported for a step, with its own stdout and stderr.

    The agent streams a step's output as one stdout and one stderr and counts each
    command's bytes (``stdout_bytes``); anything not of that shape counts as nothing,
    and output the counts do not cover belongs to the last command, the one that stopped.
    """
    offset = {"stdout": 0, "stderr": 0}
    found: list[StepOutput] = []
    listed = result.result.get("steps")
    for step in listed if isinstance(listed, list) else []:
        if not isinstance(step, dict):
            continue
        argv = step.get("argv")
        chunks: dict[str, bytes] = {}
        for stream, data in (("stdout", result.stdout), ("stderr", result.stderr)):
            size = step.get(f"{stream}_bytes", 0)
            size = size if isinstance(size, int) and not isinstance(size, bool) and size > 0 else 0
            chunks[stream] = data[offset[stream] : offset[stream] + size]
            offset[stream] += size
        status = step.get("exit_status")
        found.append(
            StepOutput(
                tuple(str(a) for a in argv) if isinstance(argv, list) else (),
                status if isinstance(status, int) and not isinstance(status, bool) else None,
                chunks["stdout"],
                chunks["stderr"],
            )
        )
    if found:
        last = found[-1]
        found[-1] = StepOutput(
            last.argv,
            last.exit_status,
            last.stdout + result.stdout[offset["stdout"] :],
            last.stderr + result.stderr[offset["stderr"] :],
        )
    return found


def findings_for(result: OperationResult) -> tuple[Finding, ...]:
    """The technician's plugin's findings for a ``diag`` result; none when there is no such
    plugin, it declares the diagnostic otherwise than the agent ran it, or it has none.

    A plugin that fails gives one warning saying so: its bug must not end the session.
    """
    if result.error is not None or result.name != Op.DIAG:
        return ()
    about = result.result.get("procedure")
    name = result.result.get("name")
    if not isinstance(about, dict) or not isinstance(name, str):
        return ()
    from toolkit.plugins.loader import installed

    found = installed().find(Kind.DIAGNOSTIC, name)
    if found is None:
        return ()
    procedure = found[0]
    if procedure.findings is None or procedure.sha256 != about.get("sha256"):
        return ()
    params = result.result.get("params")
    values: Mapping[str, str] = (
        {k: v for k, v in params.items() if isinstance(k, str) and isinstance(v, str)}
        if isinstance(params, dict)
        else {}
    )
    try:
        listed: Any = procedure.findings(step_outputs(result), values)
        findings = tuple(listed)[:MAX_FINDINGS]
        if not all(isinstance(f, Finding) for f in findings):
            raise TypeError("it gave something that is not a Finding")
    except Exception as exc:  # a plugin's bug, reported, never our crash
        why = printable(f"{type(exc).__name__}: {exc}", 160)
        return (Finding("warning", f"the plugin's findings for {name} failed ({why})"),)
    return findings


__all__ = ["MAX_FINDINGS", "findings_for", "step_outputs"]
