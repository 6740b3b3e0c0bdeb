"""What a technician's session gives back: typed records, counted and ranked in one place.

:class:`OperationResult` is one command's outcome (what
:meth:`toolkit.session.technician.TechnicianSession.execute` returns);
:class:`SessionResult` is the whole session's, from consent to the attached
transcript (what :func:`toolkit.session.workflow.run_session` returns).
:class:`Tally` counts results as a session runs, and :func:`worse` ranks exit
codes as a batch does: refused over failed over ok. Renderers (``toolkit
connect``, its prompt, ``toolkit run``) turn these into lines for people or
JSON for scripts; nothing here prints.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from toolkit.errors import ExitCode, ToolkitError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.plugins.declaration import Finding
    from toolkit.tickets.attach import Attached


class Status(enum.StrEnum):
    """How one command ended, as ``--json`` names it."""

    OK = "ok"
    FAILED = "failed"  # it ran and did not succeed (an exit status, an error)
    REFUSED = "refused"  # the agent's policy or the customer said no


@dataclass(frozen=True)
class OperationResult:
    """What one command did, for the screen, for --json, and for the exit code."""

    command: str  # the line as typed
    name: str  # the command's name (``ls``, not the operation ``list``)
    status: Status
    result: dict[str, Any] = field(default_factory=dict)  # the agent's result object
    error: str | None = None  # a short code: refused, failed, integrity, usage, ...
    message: str | None = None  # a sentence for the technician
    stdout: bytes = b""
    stderr: bytes = b""
    content: bytes = b""
    #: The agent's report of the customer's answer, when the customer was asked (checked):
    #: a refusal after a "declined" is the customer's no, not the policy's.
    approval: dict[str, Any] | None = None
    #: A diagnostic's findings by the technician's own plugin (toolkit.session.procedures).
    findings: tuple[Finding, ...] = ()

    def __post_init__(self) -> None:
        # A plain "ok" becomes Status.OK; anything else is no status (ValueError).
        object.__setattr__(self, "status", Status(self.status))

    @property
    def exit_status(self) -> int | None:
        value = self.result.get("exit_status")
        return value if isinstance(value, int) else None

    def to_json(self) -> dict[str, Any]:
        """The result for ``--json``: always the same keys, null where there is nothing.

        ``error`` is ``{"code", "message"}`` whenever the status is not ok (a
        command that exited non-zero: code ``exit-status``). Output that is not
        UTF-8 goes in the ``*_base64`` key instead (docs/quickstart.md).
        """
        error: dict[str, Any] | None = None
        if self.error is not None:
            error = {"code": self.error, "message": self.message}
        elif self.status is not Status.OK:
            status = self.exit_status
            error = (
                {"code": "exit-status", "message": f"exit status {status}"}
                if status is not None
                else {"code": self.status.value, "message": self.message}
            )
        body: dict[str, Any] = {
            "command": self.command,
            "name": self.name,
            "status": self.status.value,
            "exit_status": self.exit_status,
            "error": error,
            "result": self.result or None,
            "findings": [{"severity": f.severity, "message": f.message} for f in self.findings]
            or None,
        }
        for name in ("stdout", "stderr", "content"):
            data: bytes = getattr(self, name)
            body[name] = body[f"{name}_base64"] = None
            if not data:
                continue
            try:
                body[name] = data.decode("utf-8")
            except UnicodeDecodeError:
                body[f"{name}_base64"] = base64.b64encode(data).decode("ascii")
        return body


def exit_code_of(status: Status) -> ExitCode:
    """The exit code one result earns in a batch."""
    return {Status.OK: ExitCode.OK, Status.REFUSED: ExitCode.REFUSED}.get(status, ExitCode.FAILED)


def _rank(code: ExitCode) -> int:
    """Batch exit precedence: refused (3) over failed (1) over ok (0); any other (the
    session's own end: the network, Ctrl-C) over all three."""
    return {ExitCode.OK: 0, ExitCode.FAILED: 1, ExitCode.REFUSED: 2}.get(code, 3)


def worse(first: ExitCode, second: ExitCode) -> ExitCode:
    """The exit code that wins when a batch earned both (the first on a tie)."""
    return max(first, second, key=_rank)


@dataclass
class Tally:
    """A session's results counted as they come, for its summary and recap."""

    ok: int = 0
    failed: int = 0
    refused: int = 0

    def count(self, result: OperationResult) -> None:
        if result.status is Status.OK:
            self.ok += 1
        elif result.status is Status.REFUSED:
            self.refused += 1
        else:
            self.failed += 1


#: Why a session ended, when the technician ended it or the batch ran out.
COMPLETED = "completed"
ENDED_BY_TECHNICIAN = "the technician ended the session"


@dataclass(frozen=True)
class SessionResult:
    """A whole session, from consent to the transcript attached (or waiting in the outbox)."""

    session: str  # the technician's transcript's session id
    ticket: str
    transcript: Path  # the sealed transcript on this machine
    verdict: str | None  # the transcript's verdict before upload, when it was asked for
    ended: str  # why the session ended, as both transcripts record it
    ok: int
    failed: int
    refused: int
    exit_code: int
    attached: Attached | None = None  # where the ticket holds it, when attaching worked
    attach_error: ToolkitError | None = None  # why it waits in the outbox, when it does

    def to_json(self) -> dict[str, object]:
        """The session's closing line for --json (docs/quickstart.md)."""
        return {
            "type": "summary",
            "session": self.session,
            "ticket": self.ticket,
            "transcript": str(self.transcript),
            "verdict": self.verdict,
            "ended": self.ended,
            "ok": self.ok,
            "failed": self.failed,
            "refused": self.refused,
            "exit_code": self.exit_code,
        }

    def recap(self) -> str:
        """The closing line for people, as Ansible's PLAY RECAP; a non-zero exit says why."""
        counts = f"recap: ok={self.ok} failed={self.failed} refused={self.refused}"
        if self.exit_code == 0:
            return f"{counts} (exit 0)"
        reason = self.ended
        if reason in (COMPLETED, ENDED_BY_TECHNICIAN):
            why = {
                int(ExitCode.REFUSED): "a command was refused",
                int(ExitCode.FAILED): "a command failed",
            }.get(self.exit_code, reason)
        else:
            why = (reason.splitlines() or [reason])[0]
        return printable(f"{counts} (exit {self.exit_code}: {why.rstrip('.')})")


__all__ = [
    "COMPLETED",
    "ENDED_BY_TECHNICIAN",
    "OperationResult",
    "SessionResult",
    "Status",
    "Tally",
    "exit_code_of",
    "worse",
]
