"""``toolkit share`` and ``toolkit connect`` without typer's start-up, for a plain line.

typer builds the whole click app and coerces every value through a pydantic
TypeAdapter: about 0.1 s before a command starts, paid by both ends of every
session. For a plain line, :func:`plain_call` reads the options from the
command's own typer annotations (through typer's own reader, so the typer
definitions stay the one source of truth) and calls the command with the
values typer would pass.

It takes a line only where it is sure to read it as typer does: long
options (``--name VALUE``, ``--name=VALUE``) and arguments of plain types
(str, int, float, Path, bool flags, repeatable str lists), each option at
most once, every value plainly valid. Anything else returns None and typer
runs the line, with its own messages: --help, short options, ``--``, a
repeated option, a value that starts with "-", a number typer might read
differently or refuse, a path typer would refuse, a missing required
option, completion mode, a parameter with a feature not listed here.
tests/unit/cli/test_direct.py compares both ways.
"""

from __future__ import annotations

import importlib
import os
import re
import stat
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union, get_args, get_origin

#: The commands that may skip typer: (module, function).
COMMANDS = {
    "share": ("toolkit.cli.share", "share_command"),
    "connect": ("toolkit.cli.connect", "connect_command"),
    "run": ("toolkit.cli.run_fix", "run_command"),
}

#: Parameter features that change how typer reads a value, at their do-nothing values.
_PLAIN_INFO: dict[str, Any] = {
    "callback": None,
    "expose_value": True,
    "is_eager": False,
    "envvar": None,
    "default_factory": None,
    "parser": None,
    "clamp": False,
    "formats": None,
    "mode": None,
    "resolve_path": False,
    "allow_dash": False,
    "path_type": None,
    "prompt": False,
    "confirmation_prompt": False,
    "hide_input": False,
    "count": False,
}
_INT = re.compile(r"[0-9]{1,18}")
_FLOAT = re.compile(r"[0-9]{1,15}(\.[0-9]{1,15})?")


class _Param:
    __slots__ = ("default", "info", "kind", "multiple", "name")

    def __init__(self, name: str, kind: type, multiple: bool, default: Any, info: Any) -> None:
        self.name = name
        self.kind = kind  # str, int, float, Path or bool
        self.multiple = multiple
        self.default = default
        self.info = info  # typer.models.OptionInfo or ArgumentInfo


def plain_call(args: list[str], complete_var: str) -> Callable[[], Any] | None:
    """The command for ``args`` (``COMMAND ARGS...``) with its values, or None: typer's line."""
    if not args or args[0] not in COMMANDS or os.environ.get(complete_var):
        return None
    module, name = COMMANDS[args[0]]
    command: Callable[..., Any] = getattr(importlib.import_module(module), name)
    values = plain_values(command, args[1:])
    if values is None:
        return None
    return lambda: command(**values)


def plain_values(command: Callable[..., Any], args: list[str]) -> dict[str, Any] | None:
    """The keyword arguments typer would call ``command`` with for ``args``, or None."""
    params = _params(command)
    if params is None:
        return None
    options, arguments = params
    given: dict[str, list[str]] = {}
    positional: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg == "-" or not arg.startswith("-"):
            positional.append(arg)
            continue
        flag, eq, value = arg.partition("=")
        param = options.get(flag)
        if param is None or not flag.startswith("--"):
            return None  # --help, "--", short options, anything unknown: typer's
        if param.name in given and not param.multiple:
            return None
        if param.kind is bool:
            if eq:
                return None
            given[param.name] = ["1"]
            continue
        text = value if eq else next(rest, None)
        if text is None or (text.startswith("-") and text != "-"):
            return None
        given.setdefault(param.name, []).append(text)
    if len(positional) > len(arguments):
        return None
    for param, value in zip(arguments, positional, strict=False):
        given[param.name] = [value]
    out: dict[str, Any] = {}
    for param in [*options.values(), *arguments]:
        if param.name in out:
            continue  # an option with two names
        texts = given.get(param.name)
        got: Any
        if texts is None:
            if param.default is ...:
                return None  # required: typer says which
            got = _default(param)
        elif param.kind is bool:
            got = True
        else:
            got = [_coerce(param, t) for t in texts]
            if any(v is None for v in got):
                return None
            if not param.multiple:
                got = got[0]
        if got is _REFUSED:
            return None
        out[param.name] = got
    return out


_REFUSED = object()


def _params(command: Callable[..., Any]) -> tuple[dict[str, _Param], list[_Param]] | None:
    """Options by name and arguments in order, or None if one is not plain."""
    from typer.models import ArgumentInfo, OptionInfo
    from typer.utils import get_params_from_function

    options: dict[str, _Param] = {}
    arguments: list[_Param] = []
    for name, meta in get_params_from_function(command).items():
        info = meta.default
        if not isinstance(info, OptionInfo | ArgumentInfo):
            return None
        if any(getattr(info, k, v) != v for k, v in _PLAIN_INFO.items()):
            return None
        kind, multiple = _kind(meta.annotation)
        if kind is None:
            return None
        param = _Param(name, kind, multiple, info.default, info)
        if isinstance(info, ArgumentInfo):
            if multiple or kind is bool:
                return None
            arguments.append(param)
            continue
        decls = list(info.param_decls or ())
        if kind is bool:
            # A flag: --name sets True. typer's default names (--name/--no-name), a
            # default of True or a list of flags read differently.
            if not decls or multiple or info.default is not False:
                return None
        elif not decls:
            decls = [f"--{name.replace('_', '-')}"]
        for decl in decls:
            if "/" in decl or decl in options:
                return None
            options[decl] = param
    return options, arguments


def _kind(annotation: Any) -> tuple[type | None, bool]:
    """(str, int, float, Path or bool; whether a list) for a plain annotation, else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) != 1:
            return None, False
        annotation = inner[0]
    multiple = get_origin(annotation) is list
    if multiple:
        (annotation,) = get_args(annotation)
        if annotation is not str:
            return None, False
    if annotation in (str, int, float, Path, bool):
        return annotation, multiple
    return None, False


def _default(param: _Param) -> Any:
    """What typer passes for an option or argument not given."""
    default = param.default
    if default is None:
        return None
    if param.multiple or param.kind is Path:
        return _REFUSED  # typer checks these defaults like values: let it
    if param.kind is float and type(default) in (int, float):
        return _coerce(param, repr(float(default))) if default >= 0 else _REFUSED
    if param.kind is int and type(default) is int:
        return _coerce(param, str(default)) if default >= 0 else _REFUSED
    if type(default) is param.kind:
        return default
    return _REFUSED


def _coerce(param: _Param, text: str) -> Any:
    """``text`` as typer passes it for ``param``, or None where typer could differ or refuse."""
    info = param.info
    if param.kind is str:
        return text
    if param.kind in (int, float):
        pattern = _INT if param.kind is int else _FLOAT
        if not pattern.fullmatch(text):
            return None
        number = param.kind(text)
        if (info.min is not None and number < info.min) or (
            info.max is not None and number > info.max
        ):
            return None
        return number
    return _path(info, text)


def _path(info: Any, text: str) -> Path | None:
    """``text`` as a Path, if typer would take it as it is (typer checks an existing one)."""
    if not text or "\0" in text:
        return None
    try:
        text.encode()
        st = os.stat(text)
    except UnicodeError:
        return None
    except OSError:
        return None if info.exists else Path(text)
    if (not info.file_okay and stat.S_ISREG(st.st_mode)) or (
        not info.dir_okay and stat.S_ISDIR(st.st_mode)
    ):
        return None
    if (info.readable and not os.access(text, os.R_OK)) or (
        info.writable and not os.access(text, os.W_OK)
    ):
        return None
    return Path(text)


__all__ = ["COMMANDS", "plain_call", "plain_values"]
