"""The comment that goes with a transcript onto the ticket.

Short and plain text: who, when, what scope, every operation with its
result, the verdict of verifying the transcript right before upload, and the
one line that verifies it with stock OpenSSH. Everything comes from the
sealed transcript itself (whose recorder already kept secrets out).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.errors import ToolkitError
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import public_line
from toolkit.policy.commands import show_argv
from toolkit.protocol import Op
from toolkit.text import printable
from toolkit.tickets.package import GZIP, MANIFEST_NAMESPACE, PARTS, Package, manifest_name
from toolkit.transcript.models import LOOKUP, NAMESPACE_CHECKPOINT, NAMESPACE_SEAL, counted_as
from toolkit.transcript.verify import Report, examine

#: Operations listed one by one; the rest are counted.
MAX_LISTED = 60
#: Approvals listed one by one (apart from the operations); the rest are counted.
MAX_APPROVALS = 60
_FIELD = 120
_APPROVAL_LINE = 400


def _trust(cast: Path, allowed_signers: Path | None) -> tuple[AllowedSigners | None, str]:
    """The trust to verify with, and how to describe it in the comment."""
    if allowed_signers is not None and allowed_signers.is_file():
        return AllowedSigners.from_file(allowed_signers), f"checked against {allowed_signers}"
    try:  # no allowed_signers here: the seal's own key, so integrity still shows
        sig = sshsig.SSHSig.from_bytes(
            sshsig.dearmor(cast.with_name(cast.name + ".sig").read_bytes())
        )
    except (OSError, ToolkitError):
        return None, "no allowed_signers file on the technician's machine"
    from toolkit.transcript.models import Header

    with cast.open("rb") as f:
        email = Header.from_line(f.readline()).signed_by.email
    line = (
        f'{email} namespaces="{NAMESPACE_CHECKPOINT},{NAMESPACE_SEAL}" '
        f"{public_line(sig.public_key)}\n"
    )
    return AllowedSigners.from_text(line, "the seal's own key"), (
        "integrity checked against the seal's own key; a supervisor checks trust"
    )


def verdict(
    cast: Path, allowed_signers: Path | None, *, operations: bool = False
) -> tuple[Report, str]:
    """Verify ``cast`` now; the report and a one-line description of the verdict.

    ``operations``: the report also carries every operation and refusal event.
    """
    trust, how = _trust(cast, allowed_signers)
    report = examine(cast, trust, keep_operations=operations)
    line = report.verdict.value
    if report.failure is not None:
        line += f": {report.failure.reason}"
    return report, f"{line} ({how})"


def _clip(value: object) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= _FIELD else text[: _FIELD - 3] + "..."


def _operation(fields: dict[str, Any], kind: str) -> str:
    what = fields.get("command") or " ".join(
        str(fields.get(k, "")) for k in ("op", "name", "path") if fields.get(k)
    )
    if kind == "refusal":
        result = "refused"
    elif fields.get("ok") is False:
        result = f"failed ({fields.get('error', 'error')})"
    elif fields.get("exit_status") not in (None, 0):
        result = f"exit {fields.get('exit_status')}"
    elif fields.get("op") == Op.SHELL and fields.get("reason"):
        result = "hung up"  # a shell the session's end cut off: not an exit of its own
        what = f"{what} ({fields.get('reason')})"
    else:
        result = "ok"
    return f"  {result:<10} {_clip(what)}"


def _approval(fields: dict[str, Any]) -> str:
    """One approval event in one line: what was asked, the answer, who gave it, when, and
    the exact commands (cut at _APPROVAL_LINE; the transcript holds them all)."""
    if "unrecorded" in fields:
        return f"  {'approval':<10} {_clip(fields['unrecorded'])}"
    name = fields.get("procedure")
    what = f"fix {name}" if name else str(fields.get("asked_for") or "?")
    if fields.get("summary"):
        what += f" ({fields['summary']})"
    if fields.get("out_of_scope"):
        what += ", outside the approved scope"
    answer, by = fields.get("answer"), fields.get("by")
    said = {
        "approved": "approved by the customer at the prompt",
        "declined": "declined by the customer",
        "no answer": "no answer from the customer in time: refused",
        "nobody to ask": "nobody at the customer's screen to ask: refused",
    }.get(str(answer), str(answer))
    if by == "--yes":
        said = "approved in advance by share --yes (nobody was asked)"
    commands = fields.get("commands")
    if isinstance(commands, list):
        shown = "; ".join(show_argv([str(a) for a in c]) for c in commands if isinstance(c, list))
    else:
        shown = f"(too long to show here; sha256 {fields.get('commands_sha256')})"
    line = printable(
        " ".join(f"{what}: {said} at {fields.get('at')}; commands: {shown}".split()), None
    )
    if len(line) > _APPROVAL_LINE:
        line = line[: _APPROVAL_LINE - 27] + "... (all in the transcript)"
    return f"  {'approval':<10} {line}"


def comment(package: Package, allowed_signers: Path | None) -> tuple[str, Report]:
    """The comment text for ``package``, verifying its transcript first."""
    cast = package.transcript
    # The verification's own pass finds the operations: the file is read once.
    report, verdict_line = verdict(cast, allowed_signers, operations=True)
    h = report.header
    listed: list[str] = []
    # Counted as toolkit verify counts them (docs/transcript-format.md, "Operations").
    operations, refusals = report.operations, report.refusals
    approvals = 0
    shown = 0  # operations and refusals listed
    for fields in report.operation_events:
        if fields.get("type") == "approval":  # each one listed, beside the operations it allowed
            approvals += 1
            if approvals <= MAX_APPROVALS:
                listed.append(_approval(fields))
            continue
        kind = counted_as(fields)
        if kind is not None and kind != LOOKUP and shown < MAX_LISTED:
            shown += 1
            listed.append(_operation(fields, kind))
    more = operations + refusals - shown
    more_approvals = approvals - min(approvals, MAX_APPROVALS)
    started = datetime.fromtimestamp(h.timestamp, UTC).isoformat(timespec="seconds")
    ended = report.ended.isoformat(timespec="seconds") if report.ended else "not recorded"
    lines = [
        f"toolkit session transcript {cast.name}",
        f"Technician: {h.technician.name} <{h.technician.email}> ({h.technician.fingerprint})",
        f"Customer host: {h.customer_host or '?'}; agent host key {h.agent_host_key or '?'}",
        f"Session {h.session_id}, ticket {h.ticket}",
        f"Started {started}, ended {ended}; end: {report.end_reason or 'not recorded'}",
        f"Scope: {', '.join(h.scope) or 'none'}",
        f"Operations: {operations}, refusals: {refusals}"
        + (f", completion look-ups: {report.lookups} (not counted)" if report.lookups else ""),
        *listed,
        *([f"  ... and {more} more (all in the transcript)"] if more > 0 else []),
        *(
            [f"  ... and {more_approvals} more approvals (all in the transcript)"]
            if more_approvals > 0
            else []
        ),
        f"Verified right before upload: {verdict_line}",
        "Verify it: ssh-keygen -Y verify -f allowed_signers "
        f"-I {h.signed_by.email} -n {NAMESPACE_SEAL} -s {cast.name}.sig < {cast.name}",
    ]
    if package.form in (GZIP, PARTS):
        pieces = "one gzip file" if package.form == GZIP else f"{len(package.files) - 3} parts"
        manifest = manifest_name(cast)
        lines += [
            f"The transcript is too large for this system, so it is attached as {pieces}: "
            f"rebuild it with `cat {cast.name}.gz* | gunzip > {cast.name}` "
            "(or `toolkit tickets download`).",
            f"{manifest} lists every file's SHA-256; its signature: ssh-keygen -Y verify "
            f"-f allowed_signers -I {h.signed_by.email} -n {MANIFEST_NAMESPACE} "
            f"-s {manifest}.sig < {manifest}",
        ]
    return "\n".join(lines) + "\n", report


__all__ = ["MAX_APPROVALS", "MAX_LISTED", "comment", "verdict"]
