"""``toolkit verify``: the supervisor's verdict on transcripts.

:func:`verify_files` does the work without typer, so that ``toolkit verify``
can skip typer's start-up (see toolkit/cli/__init__.py); :func:`verify_command`
is the typer command around it.
"""

from __future__ import annotations

import json
import os.path
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from toolkit.cli._console import Lines
from toolkit.errors import ExitCode, ToolkitError, TranscriptFormatError
from toolkit.text import LIMIT, printable, printable_lines

if TYPE_CHECKING:
    import typer

    from toolkit.transcript.verify import Report
else:

    class _Typer:
        """typer, imported on first use: when typer builds the command from the
        annotations below, or when the command exits with a failure."""

        def __getattr__(self, name: str) -> Any:
            import typer

            return getattr(typer, name)

    typer = _Typer()

_STYLE = {"SEALED": "bold green", "UNSEALED": "bold yellow"}


def style_of(verdict: str) -> str:
    """The rich style a verdict is printed in."""
    return _STYLE.get(verdict, "bold red")


def default_allowed_signers() -> Path | None:
    from toolkit import paths

    for candidate in (paths.config_dir() / "allowed_signers", Path.home() / ".ssh/allowed_signers"):
        if candidate.exists():
            return candidate
    return None


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def counts(report: Report) -> str:
    """The operations row, as the ticket's comment says it: N operations and, besides
    them, R refusals (docs/transcript-format.md, "Operations")."""
    text = f"{report.operations}, refusals {report.refusals}"
    if report.prefix_only:
        text += f", in the verified part only ({report.valid_bytes} of {report.size} bytes)"
    return text


def lookups(report: Report) -> str | None:
    """The look-ups row, apart from the operations; None when there were none."""
    if not report.lookups:
        return None
    return f"{report.lookups} (Tab completion listings, not counted as operations)"


def terminal_width() -> int | None:
    """The width to wrap rows at: the terminal's, or None off a terminal (no wrapping)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def wrap(first: str, text: str, width: int | None, indent: int) -> list[str]:
    """``first`` then ``text``, wrapped at spaces to ``width``; continuations start at
    column ``indent``. A word longer than a line (a digest, a path) is kept whole."""
    import textwrap

    room = (width or 0) - indent - 1
    if width is None or room < 20 or len(first) + len(text) < width:
        return [first + text]
    pieces = textwrap.wrap(
        text,
        width=room,
        initial_indent=" " * (len(first) - indent),
        break_long_words=False,
        break_on_hyphens=False,
    ) or [""]
    pieces[0] = pieces[0].removeprefix(" " * (len(first) - indent))
    return [first + pieces[0], *(" " * indent + piece for piece in pieces[1:])]


def duration_text(report: Report) -> str:
    """The session's duration; without a verified end, how long the verified part runs."""
    if report.duration is not None or report.covered_seconds is None:
        return format_duration(report.duration)
    return (
        f"unknown; the verified part runs {format_duration(report.covered_seconds)} "
        "(to its last valid checkpoint)"
    )


def _render(report: Report, signers: Path | None) -> None:
    """One file's report: what the file says, then the verdict, last.

    Every value that comes from the file goes through :func:`printable`, and
    the verdict line comes after all of them, so nothing the file holds can
    be printed after the verdict, let alone over it.
    """
    console = Lines(stderr=False)
    h = report.header
    verdict = report.verdict.value
    shown_path = printable(str(report.path), None)
    console.print(shown_path)
    rows = [
        ("technician", f"{h.technician.name} <{h.technician.email}> {h.technician.fingerprint}"),
        ("ticket", h.ticket),
        ("session", h.session_id),
        ("format", f"{h.format} (signed with {h.hash_algorithm})"),
        ("customer", h.customer_host or "-"),
        ("scope", ", ".join(h.scope) or "-"),
        ("started", report.started.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("duration", duration_text(report)),
        ("operations", counts(report)),
        *([("look-ups", seen)] if (seen := lookups(report)) else []),
        ("ended", report.end_reason or "-"),
        ("checkpoints", f"{report.checkpoints} valid, {report.valid_bytes} of {report.size} bytes"),
    ]
    if report.trusted_as:
        rows.append(("signer", f"trusted as {report.trusted_as} by {signers}"))
    if report.failure:
        f = report.failure
        rows.append(("problem", f.reason))
        where = []
        if f.byte_range:
            where.append(f"bytes {f.byte_range[0]}-{f.byte_range[1]}")
        if f.lines:
            where.append(f"lines {f.lines[0]}-{f.lines[1]}")
        if f.line:
            where.append(f"first malformed line {f.line}")
        if where:
            rows.append(("where", ", ".join(where)))
    rows += [("note", note) for note in report.notes]
    rows.append(
        ("ssh-keygen", report.ssh_keygen_command(str(signers) if signers else "ALLOWED_SIGNERS"))
    )
    width = terminal_width()
    for label, value in rows:
        # The labels are ours; every value goes through shown_value() here.
        for line in _lines(label, shown_value(value), width, wrapped=label != "ssh-keygen"):
            console.print(line)  # nosemgrep: toolkit-print-untrusted
    if report.verdict.value == "TAMPERED":
        console.print(
            "  This transcript was modified after it was signed, maybe maliciously: "
            "do not rely on what it shows after the last valid checkpoint."
        )
    print_verdict(console, verdict, shown_path)


def not_a_transcript(path: Path, exc: TranscriptFormatError) -> str:
    """The error for one file that is no transcript, naming the file (its hint comes apart).

    The message may name the path already (an unreadable file): then it is not said twice.
    """
    shown = printable(str(path), None)
    message = printable_lines(exc.message)
    return message if shown in message else f"{shown}: {message}"


def shown_value(value: object, limit: int | None = LIMIT) -> str:
    """A value from the file on one line: printable, and runs of spaces made one.

    A run of spaces could push the rest of a value onto the next row of the
    screen, lined up as one of the report's own rows.
    """
    return printable(" ".join(str(value).split()), limit)


def print_verdict(console: Lines, verdict: str, shown_path: str) -> None:
    """The last line, as verify and show end: the verdict (in its colour) and the file."""
    console.print(
        f"[{style_of(verdict)}]{verdict}[/] {_markup_escape(shown_path)}",
        markup=True,
        plain=f"{verdict} {shown_path}",
    )


#: Where a row's value starts: two spaces, a 12-column label, a space.
_INDENT = 15


def _lines(label: str, text: str, width: int | None, *, wrapped: bool) -> list[str]:
    """A row, wrapped here (on a terminal) so the terminal never wraps it.

    A continuation starts at the value's column, never where a row's label
    does, so nothing in a value can look like a row of its own; lines break
    at spaces, and a word longer than a line (a digest) is kept whole. The
    ssh-keygen line is not wrapped: people paste it (a principal has no spaces).
    """
    first = f"  {label:<12} "
    return wrap(first, text, width if wrapped else None, _INDENT)


def _markup_escape(text: str) -> str:
    if "[" not in text:  # rich stays unloaded for the usual path
        return text
    from rich.markup import escape

    return escape(text)


#: What toolkit writes beside a transcript NAME: its seal (NAME.sig, the recorder) and,
#: for the customer's copy, the line that trusts its agent key (NAME.allowed_signers,
#: toolkit share).
COMPANIONS = (".sig", ".allowed_signers")


def companion(path: Path, given: set[str]) -> bool:
    """Whether ``path`` is a file toolkit wrote beside a transcript also given
    (``toolkit verify DIR/*``; ``given``: their paths, normalised): part of that
    transcript, so not one of its own."""
    return any(
        path.name.endswith(suffix)
        and len(path.name) > len(suffix)
        and os.path.normpath(str(path)[: -len(suffix)]) in given
        for suffix in COMPANIONS
    )


def verify_command(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Transcript files (.cast).")],
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            metavar="FILE",
            help="OpenSSH allowed_signers file "
            "[default: config dir's allowed_signers, else ~/.ssh/allowed_signers]",
            dir_okay=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file.")] = False,
) -> None:
    """Verify transcripts: SEALED (exit 0), or UNSEALED, TAMPERED, UNTRUSTED (exit 1)."""
    code = verify_files(files, allowed_signers, as_json)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))


def verify_files(files: list[Path], allowed_signers: Path | None, as_json: bool) -> ExitCode:
    """Verify and report each file; return the exit code (the worst verdict's)."""
    from toolkit.identity.allowed_signers import AllowedSigners
    from toolkit.transcript.verify import Verdict, examine

    signers = allowed_signers or default_allowed_signers()
    trust = AllowedSigners.from_file(signers) if signers else None
    stdout, stderr = Lines(stderr=False), Lines(stderr=True)
    worst = ExitCode.OK
    hints: list[str] = []  # said once, after every file, however many files need it
    given = {os.path.normpath(f) for f in files}
    for path in files:
        if companion(path, given):
            continue
        try:
            report = examine(path, trust)
        except TranscriptFormatError as exc:
            if as_json:
                stdout.print(json.dumps({"path": str(path), "error": exc.message}))
            stderr.print(printable_lines(not_a_transcript(path, exc)))
            if exc.hint and exc.hint not in hints:
                hints.append(exc.hint)
            worst = ExitCode.USAGE
            continue
        except Exception as exc:  # a bug: said, and the other files are still checked
            message = (
                f"toolkit hit an internal error checking {printable(str(path))} "
                f"({type(exc).__name__}: {printable(exc)}). This is a bug; please report it."
            )
            if as_json:
                stdout.print(json.dumps({"path": str(path), "error": message}))
            stderr.print(message)
            worst = max(worst, ExitCode.FAILED)
            continue
        if as_json:
            stdout.print(json.dumps(report.to_json()))
        else:
            _render(report, signers)
        if report.verdict is not Verdict.SEALED and worst is ExitCode.OK:
            worst = ExitCode.FAILED
    for hint in hints:
        stderr.print(printable_lines(hint))
    if trust is None and not as_json:
        stderr.print(
            "No allowed_signers file was found, so no signer can be trusted. "
            "Pass --allowed-signers FILE (see `toolkit keys allowed-signers`)."
        )
    return worst


__all__ = ["ToolkitError", "verify_command", "verify_files"]
