"""Diagnostics and fixes declared as data: the part of a plugin that crosses the wire.

A :class:`Diagnostic` or :class:`Fix` says what it is (name, version,
summary, description, platforms), what it takes (typed :class:`Parameter`
values, each checked by a pattern), what it reads (file paths) and the exact
argv templates of each step. Nothing in a declaration is code: the agent
runs the argv lists it resolves from the templates, without a shell, and a
customer can read every command before approving it. The same declaration
has one canonical JSON form (:meth:`Procedure.to_dict`, :attr:`Procedure.sha256`),
which is what a technician sends when the customer's machine does not have
the procedure, and what both transcripts name.

Plugin Python (``decide``, ``findings``) rides along on the technician's side
only: it turns a check's output into a :class:`Decision` and a diagnostic's
output into :class:`Finding` lines. It is never sent and never in the digest.

Templates: ``{name}`` stands for parameter ``name``'s checked value and
``{home}`` for the agent user's home directory; nothing else is substituted.
The first word of a command is always literal; a ``path`` parameter is
always a whole word. A value can never start with ``-`` (no option
injection), never holds a control character, and a ``string`` or
``integer`` value never holds ``/`` (it cannot widen a path it is put in).
"""

from __future__ import annotations

import enum
import hashlib
import json
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from toolkit.errors import UsageError

#: The form of a procedure's, a parameter's and a plugin's name.
NAME = re.compile(r"[a-z][a-z0-9-]{0,63}")
_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+-]{0,31}")
_PLATFORM = re.compile(r"[a-z][a-z0-9-]{0,31}")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
#: The one placeholder that is not a parameter.
HOME = "home"
MAX_SUMMARY = 120
MAX_DESCRIPTION = 4000
MAX_PARAMETERS = 16
MAX_STEPS = 32  # commands in one step
MAX_READS = 32
MAX_ARGV = 256  # as a ``run`` request (docs/protocol.md)
MAX_ARG = 4096
MAX_VALUE = 1024
#: A declaration travels inside one protocol message (64 KiB) with room to spare.
MAX_DECLARATION = 32 * 1024


class DeclarationError(UsageError):
    """A procedure's declaration is not valid: the message names the field."""


class ParameterError(UsageError):
    """A parameter value was refused before anything ran."""


class Kind(enum.StrEnum):
    DIAGNOSTIC = "diagnostic"
    FIX = "fix"

    @property
    def scope(self) -> str:
        """The scope a session needs for it: diagnostics, or fixes."""
        return "diagnostics" if self is Kind.DIAGNOSTIC else "fixes"


class Step(enum.StrEnum):
    """The steps of a procedure: a diagnostic has ``run``; a fix the other four."""

    RUN = "run"
    CHECK = "check"
    APPLY = "apply"
    VERIFY = "verify"
    ROLLBACK = "rollback"

    @property
    def read_only(self) -> bool:
        """Whether the step only looks (a diagnostics-only session may run it)."""
        return self in (Step.RUN, Step.CHECK, Step.VERIFY)


class ParameterType(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    PATH = "path"  # an absolute, normalised path; the agent checks it against its file policy


def current_platform() -> str:
    """This machine's platform as declarations name it: linux, macos, windows, freebsd, ..."""
    name = sys.platform
    if name.startswith("linux"):
        return "linux"
    if name == "darwin":
        return "macos"
    if name in ("win32", "cygwin"):
        return "windows"
    return re.sub(r"[0-9]+$", "", name)  # freebsd14 -> freebsd


def _control(text: str) -> bool:
    return any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text)


@dataclass(frozen=True)
class Parameter:
    """One typed parameter; :meth:`check` is the only way a value gets into a command."""

    name: str
    pattern: str
    type: ParameterType = ParameterType.STRING
    description: str = ""
    default: str | None = None
    minimum: int | None = None  # integer only
    maximum: int | None = None

    def __post_init__(self) -> None:
        where = f"parameter {self.name!r}"
        if not isinstance(self.name, str) or not _PARAMETER_NAME.fullmatch(self.name):
            raise DeclarationError(f"{where}: a name is lower-case letters, digits and '_'.")
        if self.name == HOME:
            raise DeclarationError(f"{where}: {{home}} is the agent user's home, not a parameter.")
        try:
            object.__setattr__(self, "type", ParameterType(self.type))
        except ValueError:
            kinds = ", ".join(ParameterType)
            raise DeclarationError(f"{where}: type must be one of {kinds}.") from None
        if not isinstance(self.pattern, str) or not self.pattern or len(self.pattern) > 512:
            raise DeclarationError(f"{where}: needs a pattern (a regular expression).")
        try:
            re.compile(self.pattern)
        except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}: Overflow
            raise DeclarationError(
                f"{where}: pattern is not a regular expression: {exc}."
            ) from None
        if not isinstance(self.description, str) or len(self.description) > MAX_SUMMARY * 2:
            raise DeclarationError(f"{where}: description is too long.")
        for bound in (self.minimum, self.maximum):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool)):
                raise DeclarationError(f"{where}: minimum and maximum are integers.")
        if (self.minimum, self.maximum) != (None, None) and self.type is not ParameterType.INTEGER:
            raise DeclarationError(f"{where}: only an integer has a minimum or maximum.")
        if self.default is not None:
            if not isinstance(self.default, str):
                raise DeclarationError(f"{where}: default must be a string.")
            try:
                self.check(self.default)
            except ParameterError as exc:
                raise DeclarationError(f"{where}: its default is refused: {exc.message}") from None

    def check(self, value: str) -> str:
        """``value`` if it may go into a command, else ParameterError saying why."""
        shown = json.dumps(value[:40]) if isinstance(value, str) else "(not text)"
        refused = f"-p {self.name}={shown}"
        if not isinstance(value, str) or not value:
            raise ParameterError(f"{refused}: a value is not empty.")
        if len(value) > MAX_VALUE or _control(value):
            raise ParameterError(f"{refused}: too long, or has a control character.")
        if value.startswith("-"):
            raise ParameterError(
                f"{refused}: a value cannot start with '-' (it would be an option)."
            )
        if self.type is ParameterType.PATH:
            # normpath keeps a leading '//' (POSIX leaves its meaning to the system).
            if (
                not value.startswith("/")
                or value.startswith("//")
                or posixpath.normpath(value) != value
            ):
                raise ParameterError(
                    f"{refused}: a path is absolute, with no '.', '..' or '//' parts."
                )
        elif "/" in value or value in (".", ".."):
            raise ParameterError(
                f"{refused}: a {self.type.value} is not '.' or '..' and has no '/'."
            )
        if self.type is ParameterType.INTEGER:
            if not (value.isascii() and value.isdigit()):
                raise ParameterError(f"{refused}: not a whole number.")
            number = int(value)
            if (self.minimum is not None and number < self.minimum) or (
                self.maximum is not None and number > self.maximum
            ):
                raise ParameterError(
                    f"{refused}: outside {self.minimum or 0}..{self.maximum or 'any'}."
                )
        if not re.fullmatch(self.pattern, value):
            about = f" ({self.description})" if self.description else ""
            raise ParameterError(f"{refused}: does not match {self.pattern!r}{about}.")
        return value

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type.value,
            "pattern": self.pattern,
            "description": self.description,
            "default": self.default,
        }
        if self.type is ParameterType.INTEGER:
            body.update(minimum=self.minimum, maximum=self.maximum)
        return body

    @classmethod
    def from_dict(cls, raw: Any) -> Parameter:
        fields = {"name", "type", "pattern", "description", "default", "minimum", "maximum"}
        if not isinstance(raw, dict) or not {"name", "pattern"} <= set(raw) <= fields:
            raise DeclarationError(
                "a parameter is an object with name, type, pattern, description, default."
            )
        return cls(**raw)


@dataclass(frozen=True)
class StepOutput:
    """What one command of a step did, as the technician's side got it."""

    argv: tuple[str, ...]
    exit_status: int | None
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class Decision:
    """A check's verdict: whether the fix is needed, and what it would change."""

    needed: bool
    diff: str = ""  # what would change, for people (a few lines)
    reason: str = ""  # one line: why it is (not) needed


@dataclass(frozen=True)
class Finding:
    """One structured finding of a diagnostic, for people and --json."""

    severity: str  # info | warning | problem
    message: str

    SEVERITIES: ClassVar[tuple[str, ...]] = ("info", "warning", "problem")

    def __post_init__(self) -> None:
        if self.severity not in self.SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(self.SEVERITIES)}")


#: Turns a check's outputs into a decision (technician's side only).
Decide = Callable[[Sequence[StepOutput], Mapping[str, str]], Decision]
#: Turns a diagnostic's outputs into findings (technician's side only).
Findings = Callable[[Sequence[StepOutput], Mapping[str, str]], list[Finding]]

Commands = tuple[tuple[str, ...], ...]


def _commands(where: str, value: Any, *, required: bool) -> Commands:
    if value is None or (isinstance(value, (list, tuple)) and not value and not required):
        if required:
            raise DeclarationError(f"{where}: needs at least one command.")
        return ()
    if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_STEPS:
        raise DeclarationError(f"{where}: a list of 1..{MAX_STEPS} commands (argv lists).")
    out = []
    for argv in value:
        if (
            not isinstance(argv, (list, tuple))
            or not 1 <= len(argv) <= MAX_ARGV
            or not all(isinstance(a, str) and 0 < len(a) <= MAX_ARG for a in argv)
        ):
            raise DeclarationError(f"{where}: each command is a list of non-empty strings.")
        if any(_control(a) for a in argv):
            raise DeclarationError(f"{where}: a command has a control character.")
        out.append(tuple(argv))
    return tuple(out)


@dataclass(frozen=True)
class Procedure:
    """What a diagnostic and a fix have in common. Build a :class:`Diagnostic` or a :class:`Fix`."""

    name: str
    summary: str
    version: str = "1"
    description: str = ""
    platforms: tuple[str, ...] = ("linux",)
    parameters: tuple[Parameter, ...] = ()
    reads: tuple[str, ...] = ()  # path templates of the files it reads
    # Technician's side only: never sent, never in the digest.
    decide: Decide | None = field(default=None, compare=False, repr=False)
    findings: Findings | None = field(default=None, compare=False, repr=False)

    kind: ClassVar[Kind]
    STEPS: ClassVar[tuple[Step, ...]]

    def __post_init__(self) -> None:
        where = f"procedure {str(self.name)[:64]!r}"
        if not isinstance(self.name, str) or not NAME.fullmatch(self.name):
            raise DeclarationError(f"{where}: a name is lower-case-with-dashes, 1..64 characters.")
        if not isinstance(self.version, str) or not _VERSION.fullmatch(self.version):
            raise DeclarationError(f"{where}: version is 1..32 of letters, digits, '.', '+', '-'.")
        if (
            not isinstance(self.summary, str)
            or not 0 < len(self.summary) <= MAX_SUMMARY
            or _control(self.summary)
        ):
            raise DeclarationError(f"{where}: summary is one line of 1..{MAX_SUMMARY} characters.")
        if not isinstance(self.description, str) or len(self.description) > MAX_DESCRIPTION:
            raise DeclarationError(f"{where}: description is at most {MAX_DESCRIPTION} characters.")
        if _control(self.description.replace("\n", "")):
            raise DeclarationError(f"{where}: description has a control character.")
        platforms = tuple(self.platforms)
        if not platforms or not all(
            isinstance(p, str) and _PLATFORM.fullmatch(p) for p in platforms
        ):
            raise DeclarationError(f"{where}: platforms names at least one, like linux or macos.")
        object.__setattr__(self, "platforms", platforms)
        parameters = tuple(
            p if isinstance(p, Parameter) else Parameter.from_dict(p) for p in self.parameters
        )
        if len(parameters) > MAX_PARAMETERS:
            raise DeclarationError(f"{where}: at most {MAX_PARAMETERS} parameters.")
        names = [p.name for p in parameters]
        if len(set(names)) != len(names):
            raise DeclarationError(f"{where}: two parameters have one name.")
        object.__setattr__(self, "parameters", parameters)
        reads = tuple(self.reads)
        if len(reads) > MAX_READS or not all(isinstance(r, str) for r in reads):
            raise DeclarationError(f"{where}: reads is at most {MAX_READS} path templates.")
        object.__setattr__(self, "reads", reads)
        for path in reads:
            self._check_template(where, "reads", (path,), path=True)
        for step in self.STEPS:
            for argv in self.commands(step):
                self._check_template(where, step.value, argv, path=False)
        if len(self.canonical()) > MAX_DECLARATION:
            raise DeclarationError(f"{where}: the declaration is over {MAX_DECLARATION} bytes.")

    def _check_template(self, where: str, part: str, argv: tuple[str, ...], *, path: bool) -> None:
        types = {p.name: p.type for p in self.parameters}
        for index, word in enumerate(argv):
            names = _PLACEHOLDER.findall(word)
            if _PLACEHOLDER.sub("", word).count("{") or _PLACEHOLDER.sub("", word).count("}"):
                raise DeclarationError(f"{where}: {part}: a stray brace in {word[:80]!r}.")
            for name in names:
                if name != HOME and name not in types:
                    raise DeclarationError(f"{where}: {part}: {{{name[:40]}}} is not a parameter.")
                if types.get(name) is ParameterType.PATH and word != f"{{{name}}}":
                    raise DeclarationError(
                        f"{where}: {part}: the path {{{name}}} must be a whole word."
                    )
            if index == 0 and names and not path:
                raise DeclarationError(f"{where}: {part}: a command's first word is literal.")
        if path:
            resolved = argv[0]
            if not (resolved.startswith("/") or resolved.startswith("{")):
                raise DeclarationError(f"{where}: reads: {resolved[:80]!r} is not absolute.")

    # -- steps and values -------------------------------------------------------

    def commands(self, step: Step) -> Commands:
        """The templates of ``step`` (empty when this procedure has no such step)."""
        raise NotImplementedError

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps this procedure has, in order."""
        return tuple(step for step in self.STEPS if self.commands(step))

    def bind(self, given: Mapping[str, str]) -> dict[str, str]:
        """Every parameter's checked value: the given ones, else defaults; ParameterError else."""
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(given) - set(known))
        if unknown:
            takes = ", ".join(known) or "none"
            shown = json.dumps(str(unknown[0])[:40])
            raise ParameterError(f"{self.name} has no parameter {shown}; it takes: {takes}.")
        values: dict[str, str] = {}
        for name, parameter in known.items():
            value = given.get(name, parameter.default)
            if value is None:
                about = parameter.description or parameter.pattern
                raise ParameterError(f"{self.name} needs -p {name}=VALUE ({about}).")
            values[name] = parameter.check(value)
        return values

    def resolve(self, step: Step, values: Mapping[str, str], home: str) -> Commands:
        """``step``'s exact commands for checked ``values`` (from :meth:`bind`)."""
        return tuple(
            tuple(_fill(word, values, home) for word in argv) for argv in self.commands(step)
        )

    def resolved_reads(self, values: Mapping[str, str], home: str) -> tuple[str, ...]:
        """The files it reads, for the agent's file policy to check before anything runs."""
        return tuple(_fill(path, values, home) for path in self.reads)

    def path_values(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The values of its ``path`` parameters, for the agent's file policy too."""
        return tuple(values[p.name] for p in self.parameters if p.type is ParameterType.PATH)

    def runs_here(self, platform: str | None = None) -> bool:
        return (platform or current_platform()) in self.platforms

    # -- the canonical form -----------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": self.kind.value,
            "name": self.name,
            "version": self.version,
            "summary": self.summary,
            "description": self.description,
            "platforms": list(self.platforms),
            "parameters": [p.to_dict() for p in self.parameters],
            "reads": list(self.reads),
        }
        for step in self.STEPS:
            body[step.value] = [list(argv) for argv in self.commands(step)]
        return body

    def canonical(self) -> bytes:
        """Compact, sorted, ASCII JSON: the bytes the digest is taken over."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @staticmethod
    def from_dict(raw: Any) -> Procedure:
        """A declaration as sent (:meth:`to_dict`'s shape, nothing more); DeclarationError else."""
        if not isinstance(raw, dict):
            raise DeclarationError("a declaration is a JSON object.")
        kind = raw.get("kind")
        cls: type[Procedure] = Diagnostic if kind == Kind.DIAGNOSTIC else Fix
        if kind not in (Kind.DIAGNOSTIC, Kind.FIX):
            raise DeclarationError("a declaration's kind is diagnostic or fix.")
        common = {"kind", "name", "version", "summary", "description", "platforms", "parameters"}
        allowed = common | {"reads"} | {step.value for step in cls.STEPS}
        extra = sorted(set(raw) - allowed)
        if extra:
            raise DeclarationError(f"a {kind} declaration has no field {extra[0][:40]!r}.")
        missing = sorted({"name", "summary", "version", "platforms"} - set(raw))
        if missing:
            raise DeclarationError(f"the declaration has no {missing[0]}.")
        args = {k: v for k, v in raw.items() if k != "kind"}
        for key in ("platforms", "parameters", "reads"):
            if key in args and not isinstance(args[key], list):
                raise DeclarationError(f"the declaration's {key} is a list.")
        return cls(**args)


def _fill(word: str, values: Mapping[str, str], home: str) -> str:
    return _PLACEHOLDER.sub(lambda m: home if m.group(1) == HOME else values[m.group(1)], word)


@dataclass(frozen=True)
class Diagnostic(Procedure):
    """Read-only commands whose output a technician reads (and ``findings`` may sum up)."""

    run: Iterable[Sequence[str]] = ()

    kind: ClassVar[Kind] = Kind.DIAGNOSTIC
    STEPS: ClassVar[tuple[Step, ...]] = (Step.RUN,)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "run", _commands(f"diagnostic {self.name!r}: run", self.run, required=True)
        )
        super().__post_init__()

    def commands(self, step: Step) -> Commands:
        return self.run if step is Step.RUN else ()  # type: ignore[return-value]


@dataclass(frozen=True)
class Fix(Procedure):
    """A change: ``check`` (read-only: is it needed?), ``apply``, ``verify``, maybe ``rollback``.

    ``decide`` turns the check's output into a :class:`Decision`; without it the
    fix is not needed when every check command exits 0, and needed when one
    exits with another status below 126 (126, 127 and signals: the check failed).
    """

    check: Iterable[Sequence[str]] = ()
    apply: Iterable[Sequence[str]] = ()
    verify: Iterable[Sequence[str]] = ()
    rollback: Iterable[Sequence[str]] = ()

    kind: ClassVar[Kind] = Kind.FIX
    STEPS: ClassVar[tuple[Step, ...]] = (Step.CHECK, Step.APPLY, Step.VERIFY, Step.ROLLBACK)

    def __post_init__(self) -> None:
        where = f"fix {self.name!r}"
        for step, required in (
            ("check", False),
            ("apply", True),
            ("verify", False),
            ("rollback", False),
        ):
            value = _commands(f"{where}: {step}", getattr(self, step), required=required)
            object.__setattr__(self, step, value)
        super().__post_init__()

    def commands(self, step: Step) -> Commands:
        if step is Step.RUN:
            return ()
        return getattr(self, step.value)  # type: ignore[no-any-return]

    @property
    def previewable(self) -> bool:
        """Whether it has a check, so that ``--check`` can say if it would change anything."""
        return bool(self.check)

    def decision(self, outputs: Sequence[StepOutput], values: Mapping[str, str]) -> Decision:
        """The plugin's decision, or the exit-status rule above. ValueError: the check failed."""
        if self.decide is not None:
            return self.decide(outputs, values)
        for output in outputs:
            status = output.exit_status
            if status is None or status >= 126:
                raise ValueError(
                    f"the check {' '.join(output.argv)[:80]} could not run (exit {status})"
                )
            if status != 0:
                return Decision(True, reason=f"{' '.join(output.argv)[:80]} exited {status}")
        return Decision(False, reason="every check passed")


__all__ = [
    "NAME",
    "Decide",
    "Decision",
    "DeclarationError",
    "Diagnostic",
    "Finding",
    "Findings",
    "Fix",
    "Kind",
    "Parameter",
    "ParameterError",
    "ParameterType",
    "Procedure",
    "Step",
    "StepOutput",
    "current_platform",
]
