"""Results for people at a terminal: tables for ``ls``/``stat``, coloured files, ``run`` set apart.

Batch runs and pipes keep the plain output of :func:`toolkit.cli.connect._show`;
these renderers are for the interactive prompt. Every name, path and message
that comes from the agent goes through :func:`toolkit.text.printable`, so
the agent's text can never move the technician's cursor or change colours.
"""

from __future__ import annotations

import datetime
import stat as stat_module
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from toolkit.cli._terminal import write_output
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.session.results import OperationResult

#: Larger files, or files that are not UTF-8, are written as they are, not highlighted.
HIGHLIGHT_LIMIT = 512 * 1024
#: The agent's words for a listing's kinds (toolkit.policy.rules.kind_of, not imported:
#: the policy package is slow to load for two words).
DIRECTORY, SYMLINK = "directory", "symlink"


def _mode(kind: str, mode: Any) -> str:
    if not isinstance(mode, int):
        return "?"
    prefix = {DIRECTORY: "d", SYMLINK: "l"}.get(kind, "-")
    return prefix + stat_module.filemode(mode)[1:]


def _when(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    try:
        return datetime.datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return "?"


def _size(value: Any) -> str:
    """A size in bytes as the customer's screen writes it (``532114``): one format on both sides."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "?"


def _status(console: Console, result: OperationResult) -> None:
    status = result.exit_status
    if status is None:
        return
    style = "green" if status == 0 else "bold red"
    console.print(f"exit {status}", style=style, highlight=False)


def _stderr(console: Console, data: bytes, title: str = "stderr") -> None:
    from rich.rule import Rule
    from rich.text import Text

    if not data:
        return
    console.print(Rule(title, style="red", align="left"))
    console.print(Text(printable_lines(data), style="red"))


def show(result: OperationResult, out: Console, err: Console) -> None:
    """One result, drawn for a person."""
    from rich.table import Table
    from rich.text import Text

    if result.status == "refused" or result.error:
        message = printable(result.message or "")
        if not message.startswith(f"{result.status}:"):
            message = f"{result.status}: {message}"
        err.print(Text(message, style="bold red" if result.status == "refused" else "red"))
        return
    if result.name == "ls":
        table = Table(box=None, pad_edge=False, header_style="bold")
        for column, justify in (("mode", "left"), ("size", "right"), ("modified", "left")):
            table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        table.add_column("name")
        for entry in result.result.get("entries", []):
            kind = str(entry.get("kind", "?"))
            name = Text(
                printable(str(entry.get("name"))), style="bold blue" if kind == DIRECTORY else ""
            )
            table.add_row(
                _mode(kind, entry.get("mode")),
                _size(entry.get("size")),
                _when(entry.get("mtime")),
                name,
            )
        out.print(table)
        if not result.result.get("entries"):
            err.print("(no entries the policy lets you see)", style="dim")
    elif result.name == "stat":
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(style="bold")
        table.add_column()
        fields = result.result
        kind = str(fields.get("kind", "?"))
        for label, value in (
            ("path", printable(str(fields.get("path")))),
            ("kind", printable(kind)),
            ("size", _size(fields.get("size"))),
            ("mode", _mode(kind, fields.get("mode"))),
            ("modified", _when(fields.get("mtime"))),
        ):
            table.add_row(label, Text(value))
        out.print(table)
    elif result.name == "read":
        _read(result, out, err)
    elif result.name in ("diag", "fix"):
        _steps(result, out, err)
    elif result.name == "run":
        # stdout was streamed as it came; stderr is set apart after it.
        write_output(out.file, result.stdout)
        _stderr(err, result.stderr)
        _status(err, result)
    else:
        out.print(Text(printable_lines(result.stdout)))


def _read(result: OperationResult, out: Console, err: Console) -> None:
    from rich.syntax import Syntax
    from rich.text import Text

    data = result.content
    path = str(result.result.get("path", ""))
    try:
        text = data.decode("utf-8") if len(data) <= HIGHLIGHT_LIMIT else None
    except UnicodeDecodeError:
        text = None
    if text is None or not out.is_terminal:
        write_output(out.file, data)
    else:
        out.print(
            Syntax(
                printable_lines(text),
                _lexer(path),
                line_numbers=_numbered_from_one(result),
                word_wrap=False,
                theme="ansi_dark",
            )
        )
    size = result.result.get("size")
    whole = result.result.get("file_size")
    of = f" of {_size(whole)}" if isinstance(whole, int) and whole != size else ""
    err.print(
        Text(
            f"{printable(path)}: {_range(result)}{_size(size)} bytes{of}, "
            f"sha256 {printable(result.result.get('sha256'), 64)}"
        ),
        style="dim",
    )


def _read_args(result: OperationResult) -> dict[str, Any]:
    """The ``read`` command's own arguments (``head``, ``tail``), as it was typed."""
    from toolkit.errors import UsageError
    from toolkit.session.commands import parse

    try:
        command = parse(result.command)
    except UsageError:
        return {}
    return dict(command.args) if command is not None else {}


def _numbered_from_one(result: OperationResult) -> bool:
    """Line numbers only where they are the file's own: a whole read or ``--head``.

    The last N lines (``--tail``) start at a line nobody counted (the agent reads
    from the end); numbering them 1.. would send the technician to the wrong
    line. Unless they are the whole file: the agent sent all of its bytes.
    """
    if _read_args(result).get("tail") is None:
        return True
    size, whole = result.result.get("size"), result.result.get("file_size")
    return isinstance(size, int) and size == whole


def _range(result: OperationResult) -> str:
    """``last 5 lines, `` / ``first 5 lines, ``, as the customer's log says it."""
    from toolkit.protocol import lines_asked

    return lines_asked(_read_args(result))


def _lexer(path: str) -> str:
    """A lexer by the file's name only: guessing from the content is slow and often wrong."""
    from pygments.lexers import get_lexer_for_filename  # type: ignore[import-untyped]
    from pygments.util import ClassNotFound  # type: ignore[import-untyped]

    try:
        return str(get_lexer_for_filename(path.rsplit("/", 1)[-1]).aliases[0])
    except (ClassNotFound, IndexError):
        return "text"


@dataclass(frozen=True)
class Step:
    """One step of a diagnostic or fix, with its share of the result's output."""

    argv: str
    exit_status: object
    stdout: bytes
    stderr: bytes


def steps(result: OperationResult) -> list[Step]:
    """The steps the agent reported, each with its stdout and stderr cut from the result's
    (:func:`toolkit.session.procedures.step_outputs`: the one reading of the agent's counts)."""
    from toolkit.session.procedures import step_outputs

    return [
        Step(" ".join(out.argv), out.exit_status, out.stdout, out.stderr)
        for out in step_outputs(result)
    ]


def _steps(result: OperationResult, out: Console, err: Console) -> None:
    from rich.rule import Rule
    from rich.text import Text

    for step in steps(result):
        style = "green" if step.exit_status == 0 else "red"
        title = f"{printable(step.argv)}  exit {printable(step.exit_status)}"
        out.print(Rule(Text(title), style=style, align="left"))
        write_output(out.file, step.stdout)
        _stderr(err, step.stderr)
    _status(err, result)
    styles = {"problem": "bold red", "warning": "yellow"}
    for finding, line in zip(result.findings, findings_lines(result), strict=True):
        err.print(Text(line, style=styles.get(finding.severity, "")))


def findings_lines(result: OperationResult) -> list[str]:
    """A diagnostic's findings (the technician's plugin's reading), one line each, printable."""
    return [printable(f"finding: {f.severity}: {f.message}", 300) for f in result.findings]


def recap_line(host: str, status: str, steps: int, exit_code: int, why: str) -> str:
    """The closing line, as Ansible's PLAY RECAP: ``recap: HOST result=changed steps=4 (exit 0)``.

    A result of two words is joined with a dash (``would-change``) so the line splits on spaces.
    """
    counts = f"recap: {host} result={status.replace(' ', '-')} steps={steps}"
    if exit_code == 0:
        return f"{counts} (exit 0)"
    first = (why.splitlines() or [why])[0].rstrip(".")
    return f"{counts} (exit {exit_code}: {first})"


__all__ = [
    "Step",
    "findings_lines",
    "recap_line",
    "show",
    "steps",
]
