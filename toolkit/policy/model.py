"""The agent's policy: which files may be read and which commands may run.

A :class:`Policy` is built once, from a TOML file or from the built-in defaults
(``_defaults.DEFAULT_TOML``, written out in docs/policy.md), and checks itself
as it is built: any unknown key, wrong type, bad pattern, bad regular
expression or undefined placeholder is a :class:`~toolkit.errors.UsageError`
that names the file and the key. Each key a file sets replaces the built-in
value of that key; each key it leaves out keeps the built-in value.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from toolkit import paths
from toolkit.errors import UsageError
from toolkit.inputs import UnreadableInput, read_text
from toolkit.policy._defaults import DEFAULT_TOML
from toolkit.policy._glob import FilePattern
from toolkit.policy.commands import Placeholder, Template
from toolkit.policy.procedures import ProcedureRules

DEFAULTS_SOURCE = "built-in policy"
_SCOPE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_NAME_GLOB = re.compile(r"[a-z0-9*?\[\]!-]{1,64}")
POLICY_FILE = "agent.toml"
SCHEMA_HINT = "docs/policy.md describes the policy file."

_TABLES: dict[str, frozenset[str] | None] = {
    "files": frozenset({"allow", "deny", "max_bytes", "allow_hardlinks"}),
    "commands": None,  # any scope name, and SEARCH_PATH
    "procedures": frozenset({"allow", "deny", "brought"}),
    "placeholders": None,  # any placeholder name
}
#: The one key of [commands] that is not a scope.
SEARCH_PATH = "search_path"


def default_path() -> Path:
    """Where the agent looks for its policy when none is given: ``<config dir>/agent.toml``."""
    return paths.config_dir() / POLICY_FILE


def agent_home() -> str:
    """The agent user's home, which ``~`` stands for in patterns and requested paths."""
    home = os.path.expanduser("~")
    if not os.path.isabs(home):
        raise UsageError(
            "the agent user's home directory is unknown, so '~' in the policy means nothing",
            hint="Set HOME to the user's home directory.",
        )
    return os.path.normpath(home)  # nosemgrep: toolkit-path-decision -- $HOME, what ~ stands for


@dataclass(frozen=True)
class Policy:
    """A checked agent policy. Build it with :meth:`load`, :meth:`from_toml` or :meth:`default`."""

    allow: tuple[FilePattern, ...]
    deny: tuple[FilePattern, ...]
    max_bytes: int
    commands: Mapping[str, tuple[Template, ...]]
    placeholders: Mapping[str, Placeholder]
    home: str
    allow_hardlinks: bool = False
    #: [procedures]: which named diagnostics and fixes may run.
    procedures: ProcedureRules = field(default_factory=ProcedureRules)
    #: [commands] search_path: directories searched before the fixed PATH.
    search_path: tuple[str, ...] = ()
    source: str = DEFAULTS_SOURCE
    # the TOML tables as merged, kept to show the policy back
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        def bad(key: str, what: str) -> UsageError:
            return UsageError(f"{self.source}: {key}: {what}", hint=SCHEMA_HINT)

        if not os.path.isabs(self.home):
            raise bad("home", f"{self.home!r} is not an absolute path")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int):
            raise bad("files.max_bytes", "must be an integer")
        if self.max_bytes <= 0:
            raise bad("files.max_bytes", f"must be positive, not {self.max_bytes}")
        for scope, templates in self.commands.items():
            for i, template in enumerate(templates):
                for name in template.placeholders:
                    if name not in self.placeholders:
                        raise bad(
                            f"commands.{scope}[{i}]",
                            f"placeholder {{{name}}} is not defined in [placeholders]",
                        )
        object.__setattr__(self, "commands", MappingProxyType(dict(self.commands)))
        object.__setattr__(self, "placeholders", MappingProxyType(dict(self.placeholders)))

    @classmethod
    def default(cls, *, home: str | None = None) -> Policy:
        """The built-in policy (docs/policy.md writes it out in full)."""
        return cls._build(tomllib.loads(DEFAULT_TOML), DEFAULTS_SOURCE, home)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<policy>", home: str | None = None) -> Policy:
        """A policy from TOML text, over the built-in defaults; ``source`` names it in errors."""
        data = _parse_toml(text, source)
        unknown = sorted(set(data) - set(_TABLES))
        if unknown:
            raise UsageError(
                f"{source}: unknown key {unknown[0]!r} (the policy has: {', '.join(_TABLES)})",
                hint=SCHEMA_HINT,
            )
        merged = tomllib.loads(DEFAULT_TOML)
        for table, value in data.items():
            if not isinstance(value, dict):
                raise UsageError(
                    f"{source}: {table}: must be a table ([{table}])", hint=SCHEMA_HINT
                )
            merged[table] = {**merged.get(table, {}), **value}
        return cls._build(merged, source, home)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, home: str | None = None) -> Policy:
        """A policy from a TOML file."""
        # A regular file of at most 4 MiB, opened without blocking: a FIFO,
        # /dev/zero or a directory is one sentence, never a hang.
        try:
            text = read_text(os.fspath(path), what="policy file")
        except UnreadableInput as exc:
            if exc.missing:
                exc.hint = (
                    f"Without --policy the agent reads {default_path()} if present, "
                    "else its built-in policy."
                )
            raise
        return cls.from_toml(text, source=str(path), home=home)

    @classmethod
    def resolve(
        cls, path: str | os.PathLike[str] | None = None, *, home: str | None = None
    ) -> Policy:
        """The agent's policy: ``path`` if given, else agent.toml if present, else the defaults."""
        if path is not None:
            return cls.load(path, home=home)
        candidate = default_path()
        if candidate.exists() or candidate.is_symlink():  # a broken one is an error, not absent
            return cls.load(candidate, home=home)
        return cls.default(home=home)

    @staticmethod
    def default_path() -> Path:
        return default_path()

    @classmethod
    def _build(cls, data: dict[str, Any], source: str, home: str | None) -> Policy:
        if home is None:
            home = agent_home()
        home = os.path.normpath(home)  # nosemgrep: toolkit-path-decision -- what ~ stands for
        parser = _Parser(source, home)
        files = data.get("files", {})
        parser.keys("files", files, _TABLES["files"])
        placeholders = parser.placeholders(data.get("placeholders", {}))
        commands = dict(data.get("commands", {}))
        search_path = parser.search_path(commands.pop(SEARCH_PATH, []))
        procedures = data.get("procedures", {})
        parser.keys("procedures", procedures, _TABLES["procedures"])
        return cls(
            allow=parser.patterns("files.allow", files.get("allow", [])),
            deny=parser.patterns("files.deny", files.get("deny", [])),
            max_bytes=parser.integer("files.max_bytes", files.get("max_bytes")),
            allow_hardlinks=parser.boolean("files.allow_hardlinks", files.get("allow_hardlinks")),
            commands=parser.commands(commands),
            placeholders=placeholders,
            procedures=ProcedureRules(
                allow=parser.names("procedures.allow", procedures.get("allow", ["*"])),
                deny=parser.names("procedures.deny", procedures.get("deny", [])),
                brought=parser.boolean("procedures.brought", procedures.get("brought", True)),
            ),
            search_path=search_path,
            home=home,
            source=source,
            raw=data,
        )

    def scopes(self) -> tuple[str, ...]:
        """The scope names that have command templates."""
        return tuple(self.commands)


class _Parser:
    """Turns the merged TOML tables into checked parts, naming file and key on failure."""

    def __init__(self, source: str, home: str) -> None:
        self.source = source
        self.home = home

    def error(self, key: str, what: str) -> UsageError:
        return UsageError(f"{self.source}: {key}: {what}", hint=SCHEMA_HINT)

    def keys(self, table: str, value: Any, allowed: frozenset[str] | None) -> None:
        if not isinstance(value, dict):
            raise self.error(table, f"must be a table ([{table}])")
        if allowed is None:
            return
        for key in value:
            if key not in allowed:
                raise self.error(
                    f"{table}.{key}", f"unknown key (valid keys: {', '.join(sorted(allowed))})"
                )

    def strings(self, key: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            raise self.error(key, "must be a list of strings")
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"must be a string, not {type(item).__name__}")
        return value

    def patterns(self, key: str, value: Any) -> tuple[FilePattern, ...]:
        out = []
        for i, text in enumerate(self.strings(key, value)):
            try:
                out.append(FilePattern.parse(text, self.home))
            except ValueError as exc:
                raise self.error(f"{key}[{i}]", str(exc)) from None
        return tuple(out)

    def names(self, key: str, value: Any) -> tuple[str, ...]:
        """Procedure name globs: lower-case letters, digits, '-' and the glob characters."""
        out = []
        for i, text in enumerate(self.strings(key, value)):
            if not _NAME_GLOB.fullmatch(text):
                raise self.error(f"{key}[{i}]", f"{text[:64]!r} is not a procedure name or glob")
            out.append(text)
        return tuple(out)

    def search_path(self, value: Any) -> tuple[str, ...]:
        """Absolute directories that exist now, without ':' (the PATH separator), that
        only root and the agent's user can change; each as its real path (symlinks
        resolved now, so that what was checked is what PATH names)."""
        key = f"commands.{SEARCH_PATH}"
        out = []
        for i, text in enumerate(self.strings(key, value)):
            if not os.path.isabs(text) or ":" in text:
                raise self.error(f"{key}[{i}]", f"{text[:200]!r} is not an absolute directory")
            if not os.path.isdir(text):
                raise self.error(f"{key}[{i}]", f"{text[:200]!r} is not a directory here")
            # nosemgrep: toolkit-path-decision -- the customer's own setting, resolved once
            real = os.path.realpath(text)  # at load; only root or the user can change it after
            why = _unsafe_directory(real)
            if why is not None or ":" in real:
                why = why or f"its real path {real[:200]!r} has a ':'"
                raise self.error(f"{key}[{i}]", f"{text[:200]!r}: {why}")
            out.append(real)
        return tuple(out)

    def integer(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, "must be an integer")
        if value <= 0:
            raise self.error(key, f"must be positive, not {value}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def placeholders(self, table: Any) -> dict[str, Placeholder]:
        self.keys("placeholders", table, None)
        out = {}
        for name, pattern in table.items():
            key = f"placeholders.{name}"
            if not isinstance(pattern, str):
                raise self.error(key, "must be a string (a regular expression)")
            try:
                out[name] = Placeholder.parse(name, pattern)
            except ValueError as exc:
                raise self.error(key, str(exc)) from None
        return out

    def commands(self, table: Any) -> dict[str, tuple[Template, ...]]:
        self.keys("commands", table, None)
        out = {}
        for scope, templates in table.items():
            key = f"commands.{scope}"
            if not _SCOPE.fullmatch(scope):
                raise self.error(key, "a scope name is letters, digits, '_' and '-'")
            if not isinstance(templates, list):
                raise self.error(key, "must be a list of commands, each a list of strings")
            parsed = []
            for i, words in enumerate(templates):
                if not isinstance(words, list):
                    raise self.error(f"{key}[{i}]", "a command must be a list of strings")
                self.strings(f"{key}[{i}]", words)
                try:
                    parsed.append(Template.parse(words))
                except ValueError as exc:
                    raise self.error(f"{key}[{i}]", str(exc)) from None
            out[scope] = tuple(parsed)
        return out


def _unsafe_directory(real: str) -> str | None:
    """Why programs in ``real`` (a real path) might be someone else's, else None.

    As sshd's StrictModes: it and every directory above it belong to root or to the
    agent's user, and no one else may write to them (a sticky directory above, such
    as /tmp, is fine: others cannot rename what is not theirs in it). Whoever could
    would plant a ``systemctl`` that every command of the agent then runs.
    """
    mine = (0, os.getuid())
    path, leaf = real, True
    while True:
        st = os.stat(path)
        if st.st_uid not in mine:
            return f"{path} belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022 and (leaf or not st.st_mode & stat.S_ISVTX):
            return f"others can write to {path}, and could put their own programs there"
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path, leaf = parent, False


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML tables of ``text``; anything tomllib cannot take is one UsageError.

    Besides TOMLDecodeError, hostile input makes tomllib raise RecursionError
    (arrays or inline tables nested a few hundred deep) and ValueError (an
    integer of over 4,300 digits, Python's limit on converting a string).
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        why = str(exc)
    except RecursionError:
        why = "arrays or inline tables are nested too deeply"
    except ValueError:
        why = "a number has too many digits"
    raise UsageError(f"{source}: not valid TOML: {why}", hint=SCHEMA_HINT)


def resolve(path: str | os.PathLike[str] | None = None, *, home: str | None = None) -> Policy:
    """Same as :meth:`Policy.resolve`."""
    return Policy.resolve(path, home=home)


__all__ = ["DEFAULTS_SOURCE", "POLICY_FILE", "Policy", "agent_home", "default_path", "resolve"]
