"""The technician's session commands: one line each, as typed at the prompt or in --batch.

``run CMD [ARGS...]``, ``read PATH [--head N | --tail N]``, ``ls PATH``, ``stat PATH``,
``diag NAME [-p KEY=VALUE]...``, ``fix NAME [--step STEP] [-p KEY=VALUE]...``,
``shell`` (at a terminal only), ``help [COMMAND]``, ``exit``.
Words are split like a POSIX shell does (quotes, backslashes) but nothing is
expanded: no globbing, no variables. Blank lines and lines starting with ``#`` are skipped.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from toolkit.errors import UsageError
from toolkit.protocol import FIX_STEPS, MAX_LINES, MAX_PARAMS, Op
from toolkit.text import printable

MAX_LINE = 16 * 1024


@dataclass(frozen=True)
class Spec:
    op: Op | None  # the protocol operation; None for commands handled locally
    usage: str
    summary: str
    min_args: int
    max_args: int | None


COMMANDS: dict[str, Spec] = {
    "run": Spec(
        Op.RUN,
        "run CMD [ARGS...]",
        "Run a command matching one of the agent's templates.",
        1,
        None,
    ),
    "read": Spec(
        Op.READ,
        "read PATH [--head N | --tail N]",
        "Print an allowlisted file, or its first or last N lines (range, size and "
        "sha256 of what is sent are recorded).",
        1,
        None,  # PATH and its options: checked by _read_args
    ),
    "ls": Spec(
        Op.LIST, "ls PATH", "List a directory's entries that the policy lets you see.", 1, 1
    ),
    "stat": Spec(
        Op.STAT, "stat PATH", "Show type, size, mode and time of an allowlisted path.", 1, 1
    ),
    "diag": Spec(
        Op.DIAG,
        "diag NAME [-p KEY=VALUE]...",
        "Run a named diagnostic with its parameters (the agent fixes its commands).",
        1,
        None,  # NAME and its options: checked by _procedure_args
    ),
    "fix": Spec(
        Op.FIX,
        "fix NAME [--step check|apply|verify|rollback] [-p KEY=VALUE]...",
        "Run one step of a named fix (apply when not given); the customer sees the "
        "commands of a change first.",
        1,
        None,
    ),
    "shell": Spec(
        Op.SHELL,
        "shell",
        "A shell on the customer's machine (shell scope only); ~. ends it, ~^Z detaches.",
        0,
        0,
    ),
    "help": Spec(None, "help [COMMAND]", "List the commands, or explain one.", 0, 1),
    "exit": Spec(None, "exit", "End the session: seal the transcript, attach it.", 0, 0),
}


@dataclass(frozen=True)
class Command:
    text: str  # the line as typed, for the transcript and the results
    name: str
    words: tuple[str, ...]
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def op(self) -> Op | None:
        return COMMANDS[self.name].op


def parse(line: str) -> Command | None:
    """The command on ``line``; None for a blank or comment line; UsageError if it is wrong."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    if len(text) > MAX_LINE:
        raise UsageError(f"The command line is longer than {MAX_LINE} characters.")
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"Cannot split {text[:80]!r}: {exc}.") from None
    name, rest = words[0], tuple(words[1:])
    spec = COMMANDS.get(name)
    if spec is None:
        raise UsageError(
            f"Unknown command {name[:40]!r}.", hint=f"Commands: {', '.join(COMMANDS)}."
        )
    if len(rest) < spec.min_args or (spec.max_args is not None and len(rest) > spec.max_args):
        raise UsageError(f"Usage: {spec.usage}")
    args: dict[str, Any] = {}
    if spec.op is Op.RUN:
        args = {"argv": list(rest)}
    elif spec.op is Op.READ:
        args = _read_args(rest, spec.usage)
    elif spec.op in (Op.LIST, Op.STAT):
        args = {"path": rest[0]}
    elif spec.op in (Op.DIAG, Op.FIX):
        args = _procedure_args(spec.op, rest, spec.usage)
    return Command(text, name, rest, args)


def parse_checked(line: str) -> Command | None:
    """:func:`parse`, with ``help TOPIC``'s topic checked too: a whole line checked at once,
    as a batch is before anything connects and a prompt's line before it runs."""
    command = parse(line)
    if command is not None and command.name == "help" and command.words:
        help_text(command.words[0])
    return command


def _read_args(words: tuple[str, ...], usage: str) -> dict[str, Any]:
    """``PATH`` plus at most one of ``--head N`` / ``--tail N`` (also ``--tail=N``),
    in any order; ``--`` ends the options, for a path that starts with ``--``."""
    hint = f"Usage: {usage}"
    paths: list[str] = []
    lines: dict[str, int] = {}
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if word == "--":
            paths += rest
            break
        if not word.startswith("--"):
            paths.append(word)
            continue
        option, equals, value = word.partition("=")
        if option not in ("--head", "--tail"):
            raise UsageError(f"read has no option {printable(option, 40)}.", hint=hint)
        if option[2:] in lines:
            raise UsageError(f"{option} is given twice; give it once.", hint=hint)
        if lines:
            raise UsageError("read takes --head or --tail, not both.", hint=hint)
        if not equals:
            value = rest.pop(0) if rest else ""
        lines[option[2:]] = _line_count(option, value, hint)
    if len(paths) != 1:
        raise UsageError(hint)
    return {"path": paths[0], **lines}


def add_param(params: dict[str, str], pair: str) -> None:
    """One ``-p KEY=VALUE`` into ``params``: the one reading of it for the prompt and
    ``toolkit run``; UsageError for a pair without ``=`` or a key given twice."""
    key, equals, value = pair.partition("=")
    if not key or not equals:
        raise UsageError(f"-p takes KEY=VALUE, not {printable(pair, 40)!r}.")
    if key in params:
        raise UsageError(f"-p {printable(key, 40)} is given twice; give it once.")
    params[key] = value


def _procedure_args(op: str, words: tuple[str, ...], usage: str) -> dict[str, Any]:
    """``NAME`` plus ``-p KEY=VALUE`` (also ``-pKEY=VALUE``, ``--param``), repeatable with
    distinct keys, and for a fix one ``--step STEP`` (also ``--step=STEP``)."""
    hint = f"Usage: {usage}"
    names: list[str] = []
    params: dict[str, str] = {}
    step: str | None = None
    rest = list(words)
    while rest:
        word = rest.pop(0)
        if word == "--":
            names += rest
            break
        option, equals, value = word.partition("=")
        if op == "fix" and option == "--step":
            if step is not None:
                raise UsageError("--step is given twice; give it once.", hint=hint)
            step = value if equals else (rest.pop(0) if rest else "")
            if step not in FIX_STEPS:
                shown = f", not {printable(step, 20)!r}" if step else ""
                steps = "check, apply, verify or rollback"
                raise UsageError(f"--step takes {steps}{shown}.", hint=hint)
            continue
        if word in ("-p", "--param") or word.startswith(("-p", "--param=")):
            if word in ("-p", "--param"):
                pair = rest.pop(0) if rest else ""
            else:
                pair = word.removeprefix("--param=") if word.startswith("--") else word[2:]
            try:
                add_param(params, pair)
            except UsageError as exc:
                raise UsageError(exc.message, hint=hint) from None
            continue
        if word.startswith("-"):
            raise UsageError(f"{op} has no option {printable(option, 40)}.", hint=hint)
        names.append(word)
    if len(names) != 1:
        raise UsageError(hint)
    if len(params) > MAX_PARAMS:
        raise UsageError(f"{op} takes at most {MAX_PARAMS} parameters.", hint=hint)
    args: dict[str, Any] = {"name": names[0]}
    if params:
        args["params"] = params
    if step is not None:
        args["step"] = step
    return args


def _line_count(option: str, value: str, hint: str) -> int:
    number = int(value) if value.isascii() and value.isdigit() else 0
    if not 1 <= number <= MAX_LINES:
        shown = f", not {printable(value, 20)!r}" if value else ""
        raise UsageError(
            f"{option} takes a number of lines from 1 to {MAX_LINES}{shown}.", hint=hint
        )
    return number


def help_text(topic: str | None = None, info: dict[str, Any] | None = None) -> str:
    """The help for one command, or all of them plus what this agent offers."""
    if topic is not None:
        spec = COMMANDS.get(topic)
        if spec is None:
            raise UsageError(f"No help for {topic[:40]!r}: it is not a command.")
        return f"{spec.usage}\n  {spec.summary}"
    lines = [f"  {spec.usage:<20} {spec.summary}" for spec in COMMANDS.values()]
    # ``info`` is the agent's hello reply: take only what has the expected shape, and
    # never let its text put a control sequence on the technician's terminal.
    info = _mapping(info)
    procedures = _mapping(info.get("procedures"))
    for scope in ("diagnostics", "fixes"):
        named = _mapping(procedures.get(scope))
        if named:
            lines.append(f"{scope} on this machine:")
            for name, procedure in named.items():
                summary = _mapping(procedure).get("summary", "")
                lines.append(f"  {_printable(name):<20} {_printable(summary)}")
    for scope, templates in _mapping(info.get("commands")).items():
        if templates and isinstance(templates, list):
            lines.append(f"commands `run` allows ({_printable(scope)}):")
            lines += [f"  {_printable(t)}" for t in templates]
    return "\n".join(lines)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _printable(value: Any) -> str:
    """``value`` shown for a terminal: a string as it is, anything else as JSON."""
    return printable(value if isinstance(value, str) else json.dumps(value), 200)


__all__ = ["COMMANDS", "Command", "add_param", "help_text", "parse", "parse_checked"]
