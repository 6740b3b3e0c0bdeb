"""Path patterns for the file allowlist, matched one path component at a time.

A pattern is an absolute path (``/var/log/*.log``), a path under the agent
user's home (``~/.ssh/**``) or a path anywhere (``**/*.pem``). It is split on
``/`` into components, and a real path is split the same way:

- ``**`` as a whole component matches any number of components, zero included;
  so ``/var/log/**`` matches ``/var/log`` itself and everything below it;
- ``*`` inside a component matches any run of characters, empty included, but
  never crosses a ``/``; ``?`` matches exactly one character;
- everything else is literal: no ``[...]`` classes, no escapes. Unlike a
  shell, ``*`` and ``**`` also match names that start with a dot.

Case matters for allow patterns. Deny patterns (a :class:`PatternSet` made
with ``ignore_case=True``) match a name in any case as well: ``**/*.pem``
denies ``backup.PEM`` and ``~/.ssh/**`` denies ``~/.SSH/id_rsa``, which on a
case-insensitive file system (vfat, exfat, ntfs3, casefolded ext4) is the key
itself. Names are compared as such file systems compare them (:func:`fold`),
on top of the exact match, so a deny pattern never matches less than it
would with case mattering.

Matching works on the real path of the file that was opened. So that a
symlinked directory cannot hide a file from a pattern that names it, the
directories a pattern spells out literally (everything before the first
wildcard, except the last component) are also resolved through symlinks at
match time, and the pattern matches if either spelling does: ``~/.ssh/**``
still covers the files when ``~/.ssh`` or the home itself is a symlink.
"""

from __future__ import annotations

import functools
import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

GLOBSTAR = "**"


def fold(text: str) -> str:
    """``text`` as a case-insensitive file system compares names.

    Full Unicode case folding of the canonical decomposition, as ext4 and
    tmpfs casefolding do; vfat, exfat and ntfs3 map case one character at a
    time, which this covers. Default-ignorable code points (zero-width
    joiners, variation selectors, soft hyphens) are dropped: kernels before
    6.14 ignored them in casefolded names, so ``key.p\u200dem`` named ``key.pem``.
    """
    folded = unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).casefold())
    return "".join(c for c in folded if not _ignorable(c))


def _ignorable(c: str) -> bool:
    """Unicode's Default_Ignorable_Code_Point, near enough: format characters and the rest."""
    if unicodedata.category(c) == "Cf":  # ZWJ, ZWNJ, soft hyphen, bidi marks, BOM, tags
        return True
    point = ord(c)
    return (
        point in (0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0)
        or 0x180B <= point <= 0x180F
        or 0xFE00 <= point <= 0xFE0F
        or 0xE0100 <= point <= 0xE01EF
    )


def _glob(text: str, flags: int = 0) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(regex, re.DOTALL | flags)


@functools.lru_cache(maxsize=4096)
def _any_case(text: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A component matched in any case: as written, and folded (ß is ss, K is k)."""
    return _glob(text, re.IGNORECASE), _glob(fold(text), re.IGNORECASE)


@dataclass(frozen=True)
class _Part:
    """One pattern component: a literal name, a ``*``/``?`` glob, or ``**``."""

    text: str
    regex: re.Pattern[str] | None = None
    any_case: bool = False

    @property
    def is_globstar(self) -> bool:
        return self.text == GLOBSTAR

    @property
    def is_literal(self) -> bool:
        return self.regex is None and not self.is_globstar

    def matches(self, name: str) -> bool:
        exact = self.text == name if self.regex is None else self.regex.fullmatch(name) is not None
        if exact or not self.any_case:
            return exact
        simple, folded = _any_case(self.text)
        return simple.fullmatch(name) is not None or folded.fullmatch(fold(name)) is not None

    def ignoring_case(self) -> _Part:
        return self if self.is_globstar else replace(self, any_case=True)


def _part(text: str) -> _Part:
    if text == GLOBSTAR:
        return _Part(text)
    if GLOBSTAR in text:
        raise ValueError(f"'**' must be a whole path component, not part of {text!r}")
    if "*" not in text and "?" not in text:
        return _Part(text)
    return _Part(text, _glob(text))


def split_path(path: str) -> tuple[str, ...]:
    """The components of an absolute path: ``"/a/b"`` -> ``("a", "b")``, ``"/"`` -> ``()``."""
    return tuple(c for c in path.split("/") if c)


@dataclass(frozen=True)
class FilePattern:
    """A parsed allow or deny pattern; ``text`` is how the policy wrote it."""

    text: str
    parts: tuple[_Part, ...]

    @classmethod
    def parse(cls, text: str, home: str) -> FilePattern:
        """Parse ``text``; ``~`` stands for ``home``. Raises ValueError saying what is wrong."""
        if not text:
            raise ValueError("a pattern must not be empty")
        if "\0" in text:
            raise ValueError("a pattern must not contain a NUL byte")
        if text == "~" or text.startswith("~/"):
            head = tuple(_Part(c) for c in split_path(home))  # the home is literal
            rest = text[1:]
        elif text.startswith("/"):
            head, rest = (), text
        elif text == GLOBSTAR or text.startswith(GLOBSTAR + "/"):
            head, rest = (), "/" + text
        else:
            raise ValueError(
                f"pattern {text!r} must start with '/', '~/' or '**/' "
                "(relative paths and ~user are not accepted)"
            )
        names = split_path(rest)
        if any(n in (".", "..") for n in names):
            raise ValueError(f"pattern {text!r} must not contain '.' or '..' components")
        return cls(text, head + tuple(_part(n) for n in names))

    def spellings(self) -> list[tuple[_Part, ...]]:
        """The pattern as written, plus its literal directories resolved now, if different."""
        literal = 0
        for part in self.parts[:-1]:
            if not part.is_literal:
                break
            literal += 1
        if literal == 0:
            return [self.parts]
        written = "/" + "/".join(p.text for p in self.parts[:literal])
        # the policy's own directories are resolved here, never a requested name
        real = os.path.realpath(written)  # nosemgrep: toolkit-path-decision -- a pattern
        if real == written:
            return [self.parts]
        return [self.parts, tuple(_Part(c) for c in split_path(real)) + self.parts[literal:]]

    def __str__(self) -> str:
        return self.text


def _advance(parts: Sequence[_Part], states: set[int], name: str) -> set[int]:
    out: set[int] = set()
    for i in states:
        if i < len(parts):
            if parts[i].is_globstar:
                out.add(i)
            elif parts[i].matches(name):
                out.add(i + 1)
    return _closure(parts, out)


def _closure(parts: Sequence[_Part], states: set[int]) -> set[int]:
    """Let every ``**`` match zero components."""
    todo = list(states)
    while todo:
        i = todo.pop()
        if i < len(parts) and parts[i].is_globstar and i + 1 not in states:
            states.add(i + 1)
            todo.append(i + 1)
    return states


def _states(parts: Sequence[_Part], names: Sequence[str]) -> set[int]:
    """Positions in ``parts`` reachable after consuming all of ``names``."""
    states = _closure(parts, {0})
    for name in names:
        states = _advance(parts, states, name)
        if not states:
            break
    return states


def match_parts(parts: Sequence[_Part], names: Sequence[str]) -> bool:
    return len(parts) in _states(parts, names)


def may_match_below(parts: Sequence[_Part], names: Sequence[str]) -> bool:
    """Whether some path strictly below ``names`` could match ``parts``."""
    return any(i < len(parts) for i in _states(parts, names))


class PatternSet:
    """Patterns with their symlinked directories resolved once, for one decision.

    With ``ignore_case`` (deny patterns), every component also matches names
    in any case.
    """

    def __init__(self, patterns: Iterable[FilePattern], *, ignore_case: bool = False) -> None:
        self.patterns = tuple(patterns)
        self.ignore_case = ignore_case
        spellings = [s for p in self.patterns for s in p.spellings()]
        if ignore_case:
            spellings = [tuple(part.ignoring_case() for part in s) for s in spellings]
        self._spellings = spellings

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def matches(self, path: str) -> bool:
        names = split_path(path)
        return any(match_parts(s, names) for s in self._spellings)

    def leads_to(self, path: str) -> bool:
        """Whether a path strictly below ``path`` could match one of the patterns."""
        names = split_path(path)
        return any(may_match_below(s, names) for s in self._spellings)


__all__ = [
    "GLOBSTAR",
    "FilePattern",
    "PatternSet",
    "fold",
    "match_parts",
    "may_match_below",
    "split_path",
]
