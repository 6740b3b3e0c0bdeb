"""Command templates: the only commands the agent runs.

A template is an argv list. Each word is either literal, and must be equal to
the technician's word, or a whole-word placeholder ``{name}``, whose value
must match the policy's regular expression for ``name`` in full
(``re.fullmatch``) and must not start with ``-``, so that a value can never
turn into an option (``systemctl status -Hroot@elsewhere``). The program
itself is always literal. Nothing passes through a shell, nothing is globbed,
and the command runs with :func:`run_environment`, not the agent's own.

Usage::

    template = match_command(["systemctl", "status", "nginx"], policy, "diagnostics")
    subprocess.run(argv, env=run_environment(), shell=False)
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from toolkit.errors import PolicyRefused

if TYPE_CHECKING:
    from toolkit.policy.model import Policy

RUN_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ARG_BYTES = 4096
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_PLACEHOLDER = re.compile(r"\{(" + _NAME + r")\}")
_NAME_RE = re.compile(_NAME)


def run_environment(search_path: Sequence[str] = ()) -> dict[str, str]:
    """The whole environment of a command the agent runs: fixed, nothing inherited.

    ``search_path`` (the policy's ``[commands] search_path``) comes before the fixed PATH.
    """
    return {"PATH": ":".join([*search_path, RUN_PATH]), "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Placeholder:
    """A named placeholder and the regular expression its values must match in full."""

    name: str
    pattern: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, name: str, pattern: str) -> Placeholder:
        """Raises ValueError saying what is wrong."""
        if not _NAME_RE.fullmatch(name):
            raise ValueError(
                f"{name!r} is not a placeholder name (letters, digits and '_', not first a digit)"
            )
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return cls(name, pattern, regex)


def _placeholder_name(word: str) -> str | None:
    found = _PLACEHOLDER.fullmatch(word)
    return found[1] if found else None


def show_argv(argv: Sequence[str]) -> str:
    """An argv as a shell would quote it, cut short for messages."""
    text = shlex.join(argv)
    return text if len(text) <= 200 else text[:197] + "..."


@dataclass(frozen=True)
class Template:
    """One allowed command: literal words and ``{name}`` placeholders."""

    argv: tuple[str, ...]

    @classmethod
    def parse(cls, words: Sequence[str]) -> Template:
        """Raises ValueError saying what is wrong."""
        if not words:
            raise ValueError("a command must have at least the program")
        for i, word in enumerate(words):
            if "\0" in word:
                raise ValueError(f"word {i} contains a NUL byte")
            if _placeholder_name(word) is None and _PLACEHOLDER.search(word):
                raise ValueError(f"a placeholder must be a whole word, not part of {word!r}")
        if _placeholder_name(words[0]) is not None:
            raise ValueError("the program must be a literal word, not a placeholder")
        return cls(tuple(words))

    @property
    def placeholders(self) -> tuple[str, ...]:
        """The placeholder names the template uses, in order."""
        return tuple(n for w in self.argv if (n := _placeholder_name(w)) is not None)

    def check(self, argv: Sequence[str], placeholders: Mapping[str, Placeholder]) -> None:
        """Returns nothing if ``argv`` is an instance of this template, else raises."""
        if len(argv) != len(self.argv):
            raise PolicyRefused(f"{show_argv(argv)!r} is not {self}")
        for word, value in zip(self.argv, argv, strict=True):
            name = _placeholder_name(word)
            if name is None:
                if value != word:
                    raise PolicyRefused(f"{show_argv(argv)!r} is not {self}")
                continue
            placeholder = placeholders.get(name)
            if placeholder is None:  # Policy checks this at load; refuse rather than pass
                raise PolicyRefused(f"{{{name}}} has no pattern in the policy")
            if value.startswith("-"):
                raise PolicyRefused(
                    f"{{{name}}} may not start with '-' (it could be taken as an option)"
                )
            if placeholder.regex.fullmatch(value) is None:
                raise PolicyRefused(f"{{{name}}} must match {placeholder.pattern}")

    def __str__(self) -> str:
        return " ".join(w if _placeholder_name(w) else shlex.quote(w) for w in self.argv)


def _check_argv(argv: Sequence[str]) -> None:
    if isinstance(argv, str | bytes) or not all(isinstance(a, str) for a in argv):
        raise PolicyRefused("refused: a command must be a list of strings")
    if not argv:
        raise PolicyRefused("refused: the command is empty")
    for i, arg in enumerate(argv):
        if "\0" in arg:
            raise PolicyRefused(f"refused: argument {i} contains a NUL byte")
        try:
            size = len(arg.encode("utf-8"))
        except UnicodeEncodeError:
            raise PolicyRefused(f"refused: argument {i} is not valid UTF-8") from None
        if size > MAX_ARG_BYTES:
            raise PolicyRefused(f"refused: argument {i} is longer than {MAX_ARG_BYTES} bytes")


def match_command(argv: Sequence[str], policy: Policy, scope: str) -> Template:
    """The template of ``scope`` that ``argv`` matches exactly; raises PolicyRefused if none.

    The caller runs ``argv`` itself (it is exactly the template with its
    placeholders filled in), without a shell and with :func:`run_environment`.
    """
    _check_argv(argv)
    templates = policy.commands.get(scope, ())
    if not templates:
        raise PolicyRefused(
            f"refused: the agent's policy allows no commands in the {scope!r} scope"
        )
    near: PolicyRefused | None = None
    for template in templates:
        try:
            template.check(argv, policy.placeholders)
        except PolicyRefused as exc:
            same_shape = len(template.argv) == len(argv) and all(
                w == a or _placeholder_name(w) is not None
                for w, a in zip(template.argv, argv, strict=True)
            )
            if same_shape and near is None:
                near = exc
        else:
            return template
    if near is not None:
        raise PolicyRefused(f"refused: {show_argv(argv)!r}: {near.message}")
    raise PolicyRefused(
        f"refused: {show_argv(argv)!r} matches no command the agent allows in the {scope!r} scope",
        hint="`help` lists the allowed commands; a command must match one of them word for word.",
    )


__all__ = [
    "MAX_ARG_BYTES",
    "RUN_PATH",
    "Placeholder",
    "Template",
    "match_command",
    "run_environment",
    "show_argv",
]
