"""``toolkit show``: a transcript's timeline, after its verdict.

The file is verified first (as ``toolkit verify`` does), and only what the
valid checkpoints cover is listed: the consent, approvals, every operation
with its result, refusals, completion look-ups, the shell's start and end and
the end of the session, each with its time. Event types this module does not
know (a newer toolkit's) are listed with their fields, so nothing recorded is
left out. Every string from the file goes through :func:`printable`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import Lines
from toolkit.cli.verify import (
    counts,
    default_allowed_signers,
    duration_text,
    format_duration,
    lookups,
    not_a_transcript,
    print_verdict,
    shown_value,
    terminal_width,
    wrap,
)
from toolkit.errors import ExitCode, TranscriptFormatError
from toolkit.protocol import Op
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.transcript.timeline import Entry
    from toolkit.transcript.verify import Report

#: How much of one value a timeline row shows.
_VALUE = 200
_LABEL = 12
#: Where an event's text starts (time, elapsed, event, then what): its continuations too.
_WHAT = 2 + 10 + 1 + 9 + 2 + _LABEL + 1


def show_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="A transcript (.cast): the technician's copy or the customer's.", metavar="FILE"
        ),
    ],
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            help="OpenSSH allowed_signers file "
            "[default: config dir's allowed_signers, else ~/.ssh/allowed_signers]",
            dir_okay=False,
            metavar="FILE",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object: the verdict and every event.")
    ] = False,
) -> None:
    """List a transcript's events with their times, after verifying it.

    Exit 0 when SEALED, 1 for UNSEALED, TAMPERED or UNTRUSTED (only the verified
    part is listed), 2 when FILE is not a transcript.
    """
    code = show_file(file, allowed_signers, as_json)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def show_file(path: Path, allowed_signers: Path | None, as_json: bool) -> ExitCode:
    from toolkit.identity.allowed_signers import AllowedSigners
    from toolkit.transcript.timeline import entries
    from toolkit.transcript.verify import Verdict, examine

    signers = allowed_signers or default_allowed_signers()
    trust = AllowedSigners.from_file(signers) if signers else None
    stdout, stderr = Lines(stderr=False), Lines(stderr=True)
    try:
        report = examine(path, trust)
    except TranscriptFormatError as exc:
        if as_json:
            stdout.print(json.dumps({"path": str(path), "error": exc.message}))
        stderr.print(printable_lines(not_a_transcript(path, exc)))
        if exc.hint:
            stderr.print(printable_lines(exc.hint))
        return ExitCode.USAGE
    listed = entries(path, report.valid_bytes)
    if as_json:
        stdout.print(json.dumps(_json(report, listed)))
    else:
        _render(report, listed, signers)
    if trust is None and not as_json:
        stderr.print(
            "No allowed_signers file was found, so no signer can be trusted. "
            "Pass --allowed-signers FILE (see `toolkit keys allowed-signers`)."
        )
    return ExitCode.OK if report.verdict is Verdict.SEALED else ExitCode.FAILED


def _json(report: Report, listed: list[Entry]) -> dict[str, Any]:
    started = report.header.timestamp
    return {
        **report.to_json(),
        "copy": _copy(report),
        "events": [entry.to_json(started) for entry in listed],
        "not_shown_bytes": report.size - report.valid_bytes,
    }


def _copy(report: Report) -> str:
    return "customer" if report.header.signer is not None else "technician"


def _render(report: Report, listed: list[Entry], signers: Path | None) -> None:
    """The header rows, the verdict, the timeline; the verdict again, last of all."""
    console = Lines(stderr=False)
    h = report.header
    verdict = report.verdict.value
    shown_path = printable(str(report.path), None)
    copy = (
        f"the customer's copy, sealed by {h.signer.email}"
        if h.signer is not None
        else "the technician's copy"
    )
    problem = f": {report.failure.reason}" if report.failure else ""
    rows = [
        ("technician", f"{h.technician.name} <{h.technician.email}> {h.technician.fingerprint}"),
        ("ticket", h.ticket),
        ("session", h.session_id),
        ("copy", copy),
        ("customer", h.customer_host or "-"),
        ("scope", ", ".join(h.scope) or "-"),
        ("started", report.started.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("duration", duration_text(report)),
        ("operations", counts(report)),
        *([("look-ups", seen)] if (seen := lookups(report)) else []),
        ("verdict", f"{verdict}{problem}"),
    ]
    width = terminal_width()
    console.print(shown_path)
    for label, value in rows:
        for line in wrap(
            f"  {label:<{_LABEL}} ", shown_value(value, _VALUE * 2), width, _LABEL + 3
        ):
            console.print(line)  # nosemgrep: toolkit-print-untrusted
    if report.prefix_only:
        console.print(
            f"  Only the verified part is listed (bytes 0-{report.valid_bytes} of "
            f"{report.size}); what follows it is not shown."
        )
    console.print("")
    console.print(f"  {'time (UTC)':<10} {'elapsed':>9}  {'event':<{_LABEL}} what")
    late = _late(h.timestamp, listed)
    for entry in listed:
        label, text = describe(entry)
        when = _clock(h.timestamp + late, entry.time)
        first = f"  {when:<10} {_elapsed(entry.time):>9}  {label:<{_LABEL}} "
        for line in wrap(first, shown_value(text, _VALUE * 2), width, _WHAT):
            console.print(line)  # nosemgrep: toolkit-print-untrusted
    if not listed:
        console.print("  (no events in the verified part)")
    console.print("")
    print_verdict(console, verdict, shown_path)


def _late(started: int, listed: list[Entry]) -> float:
    """How much later than ``timestamp + t`` events happened, as far as a recorded time
    says (an approval's ``at``): 0 for files whose times count from the timestamp.

    Older files counted ``t`` from the moment the file was made, up to a second after
    the timestamp (whole seconds): their rows would show a time earlier than the one
    an approval records. All rows move alike, so their order holds.
    """
    late = 0.0
    for entry in listed:
        at = entry.fields.get("at")
        if not isinstance(at, str):
            continue
        try:
            recorded = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        late = max(late, min(recorded - (started + entry.time), 1.0))
    return late


def _clock(started: float, t: float) -> str:
    """The wall-clock time, to the second (cut, as a recorded ``at`` is)."""
    try:
        return datetime.fromtimestamp(int(started + t), UTC).strftime("%H:%M:%S")
    except (OverflowError, ValueError, OSError):
        return "?"


def _elapsed(t: float) -> str:
    if not 0 <= t < 100 * 365 * 86400:
        return "?"
    minutes, secs = divmod(t, 60)
    hours, minutes = divmod(int(minutes), 60)
    if hours:
        return f"+{hours}h{minutes:02d}m"
    return f"+{minutes}:{secs:04.1f}"


# -- one event, in words ------------------------------------------------------------


def _text(value: object) -> str:
    """A field's value, short: strings as they are, lists joined, anything else as JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = " ".join(value)
    else:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return printable(" ".join(text.split()), _VALUE)


def _request(fields: dict[str, Any]) -> str:
    """What was asked: the line as typed (technician's copy), else op and its arguments
    (the customer's copy), as the technician would have typed it."""
    if fields.get("command"):
        return _text(fields["command"])
    op = _text(fields.get("op", "?"))
    if fields.get("op") in (Op.READ, Op.LIST, Op.STAT) and isinstance(fields.get("path"), str):
        text = f"{op} {_text(fields['path'])}"
        for option in ("head", "tail"):
            if isinstance(fields.get(option), int) and not isinstance(fields[option], bool):
                text += f" --{option} {fields[option]}"
        return text
    for name in ("argv", "name", "path", "target"):
        if fields.get(name) not in (None, "", []):
            return f"{op} {_text(fields[name])}"
    return op


def _result(fields: dict[str, Any]) -> str:
    if fields.get("type") == "refusal":
        message = fields.get("message") or fields.get("error") or "refused"
        return (
            f"refused: {_text(message)}"
            if not str(message).startswith("refused")
            else _text(message)
        )
    if fields.get("ok") is False:
        error = _text(fields.get("error", "error"))
        message = fields.get("message")
        return f"failed ({error})" + (f": {_text(message)}" if message else "")
    status = fields.get("exit_status")
    if status not in (None, 0):
        signal = fields.get("signal")
        return f"exit {_text(status)}" + (f" ({_text(signal)})" if signal else "")
    if status == 0:
        return "exit 0"
    return "ok"


def _consent(fields: dict[str, Any]) -> str:
    parts = [_text(fields.get("result", "?"))]
    who = fields.get("technician")
    if who:
        parts.append(f"technician {_text(who)} <{_text(fields.get('email', '?'))}>")
    if fields.get("key_fingerprint"):
        parts.append(f"key {_text(fields['key_fingerprint'])}")
    trusted = fields.get("trusted")
    if trusted is True:
        parts.append("the customer's allowed_signers vouched for the key")
    elif trusted is False:
        parts.append("no allowed_signers of the customer's vouched for the key")
    elif trusted is not None:
        parts.append(f"trusted {_text(trusted)}")
    if fields.get("ticket"):
        parts.append(f"ticket {_text(fields['ticket'])}")
    for name, said in (("requested", "asked"), ("granted", "granted")):
        if fields.get(name) is not None:
            parts.append(f"{said} {_names(fields[name])}")
    if fields.get("method"):
        parts.append(f"by {_text(fields['method'])}")
    return "; ".join(parts)


def _names(value: object) -> str:
    """A list of names (scopes) joined with commas; anything else as :func:`_text`."""
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value) or "nothing"
    return _text(value)


def _approval(fields: dict[str, Any]) -> str | None:
    """An approval (docs/transcript-format.md, "Approvals") in words; None if it has
    not that shape (it is then listed with its fields, as any event)."""
    answer = fields.get("answer")
    if not isinstance(answer, str):
        return None
    from toolkit.policy.commands import show_argv

    procedure = fields.get("procedure")
    what = f"fix {_text(procedure)}" if procedure else _text(fields.get("asked_for", "?"))
    by = fields.get("by")
    text = f"{what}: {_text(answer)} by {_text(by) if by else 'nobody'}"
    text += f" at {_text(fields.get('at', '?'))}"
    if fields.get("out_of_scope") is True:
        text += ", outside the approved scope"
    commands = fields.get("commands")
    if isinstance(commands, list) and all(isinstance(c, list) for c in commands):
        shown = "; ".join(show_argv([str(a) for a in c]) for c in commands)
        text += f"; commands: {_text(shown)}"
    elif fields.get("commands_sha256"):
        text += f"; commands sha256 {_text(fields['commands_sha256'])}"
    return text


def _generic(fields: dict[str, Any]) -> str:
    """Any event: its fields as ``name=value``, in the order recorded."""
    return ", ".join(
        f"{printable(name, 64)}={_text(value)}" for name, value in fields.items() if name != "type"
    )


def describe(entry: Entry) -> tuple[str, str]:
    """An event as (label, text), the text not yet made printable as a whole."""
    fields = entry.fields
    kind = entry.type
    counted = entry.counted
    if kind == "consent":
        return "consent", _consent(fields)
    if kind == "session_start":
        agent, theirs = _text(fields.get("agent", "?")), _text(fields.get("agent_session", "?"))
        return "start", f"connected to {agent}; the customer's copy is session {theirs}"
    if kind == "session_end":
        seconds = fields.get("duration")
        took = ""
        if isinstance(seconds, int | float) and not isinstance(seconds, bool):
            took = f" (after {format_duration(float(seconds))})"
        return "end", f"{_text(fields.get('reason', '?'))}{took}"
    if kind == "shell_start":
        size = f"{_text(fields.get('width', '?'))}x{_text(fields.get('height', '?'))}"
        return "shell start", f"{_text(fields.get('term', '?'))} {size}"
    if kind == "approval" and (said := _approval(fields)) is not None:
        return "approval", said
    if kind == "input_withheld":
        return "withheld", f"input not recorded ({_text(fields.get('reason', '?'))})"
    if counted == "lookup":
        return "look-up", f"{_request(fields)} (Tab completion): {_result(fields)}"
    if counted is not None and fields.get("op") == Op.SHELL and kind == "operation":
        if fields.get("exit_status") is None and fields.get("reason"):
            return "shell end", f"hung up: {_text(fields['reason'])}"
        return "shell end", _result(fields)
    if kind == "shell_detach":
        return "shell detach", "the technician left the shell running (~^Z)"
    if kind == "shell_attach":
        return "shell attach", "the technician went back to the shell"
    if counted is not None:
        label = "refusal" if counted == "refusal" else "operation"
        return label, f"{_request(fields)}: {_result(fields)}"
    if kind in ("operation", "refusal"):  # the session's own requests: hello, end, cancel
        op = fields.get("op")
        if op == Op.HELLO and fields.get("ok") is not False:
            copy_id = fields.get("technician_session")
            said = f"; the technician's copy is session {_text(copy_id)}" if copy_id else ""
            return "session", f"the technician's toolkit connected{said}"
        if op == Op.END and fields.get("ok") is not False:
            return "session", "the technician's toolkit asked to end the session"
        if op == Op.CANCEL and fields.get("ok") is not False:
            return "session", f"the technician cancelled request {_text(fields.get('target'))}"
        return "session", f"{_request(fields)}: {_result(fields)}"
    return printable(kind, _LABEL), _generic(fields)


__all__ = ["describe", "show_command", "show_file"]
