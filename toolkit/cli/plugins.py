"""``toolkit plugins``: installed plugins, their procedures and ticket backends, broken ones."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import say
from toolkit.errors import UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.plugins import Procedure
    from toolkit.plugins.loader import Installed, Loaded

app = typer.Typer(
    help="The installed plugins: diagnostics, fixes and ticket backends (docs/plugins.md).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
KindOption = Annotated[
    str | None,
    typer.Option(
        "--kind",
        metavar="diagnostic|fix",
        help="Which one, when a diagnostic and a fix share the name.",
        show_default=False,
    ),
]

#: A template word shown as it is; any other is quoted as a shell would.
_PLAIN = re.compile(r"[\w@%+=:,./{}-]+")


def _print(text: str) -> None:
    say(text, stderr=False)


def _word(word: str) -> str:
    return word if _PLAIN.fullmatch(word) else shlex.quote(word)


def _command(argv: Sequence[str]) -> str:
    return printable(" ".join(_word(w) for w in argv), limit=None)


def _origin(loaded: Loaded) -> dict[str, Any]:
    return {
        "plugin": loaded.plugin.name,
        "plugin_version": loaded.plugin.version,
        "distribution": loaded.distribution,
        "entry_point": loaded.entry_point,
    }


def _warn(found: Installed) -> None:
    """What is wrong with the installation, on stderr: the exit status stays 0."""
    for loaded in found.plugins:
        if loaded.deprecated:
            say(f"note: {printable(loaded.plugin.name)}: {printable(loaded.deprecated)}")
    failed = sorted({printable(b.name) for b in found.broken if b.refused is None})
    refused = [b.refused for b in found.broken if b.refused is not None]
    if failed:
        say(f"Not loaded: {', '.join(failed)} (see 'broken'); the other plugins loaded.")
    if refused:
        names = ", ".join(sorted({f"{what} {printable(name)}" for what, name in refused}))
        say(f"Refused, as more than one plugin gives it: {names}.")


@app.command("list")
def list_plugins(as_json: JsonOption = False) -> None:
    """List the plugins, what each gives, and the broken ones with why."""
    from toolkit.plugins.loader import installed

    found = installed()
    if as_json:
        body = {
            "plugins": [
                {
                    "name": loaded.plugin.name,
                    "version": loaded.plugin.version,
                    "summary": loaded.plugin.summary,
                    "distribution": loaded.distribution,
                    "entry_point": loaded.entry_point,
                    "deprecated": loaded.deprecated or None,
                    "procedures": [
                        {
                            "kind": p.kind.value,
                            "name": p.name,
                            "version": p.version,
                            "summary": p.summary,
                            "platforms": list(p.platforms),
                            "runs_here": p.runs_here(),
                        }
                        for p in loaded.plugin.procedures
                    ],
                    "ticket_backends": [
                        {"name": b.name, "summary": b.summary}
                        for b in loaded.plugin.ticket_backends
                    ],
                }
                for loaded in found.plugins
            ],
            "broken": [
                {"name": b.name, "origin": b.origin, "reason": b.reason} for b in found.broken
            ],
        }
        _print(json.dumps(body))
        _warn(found)
        return
    if not found.plugins:
        _print("No plugins installed.")
    for loaded in found.plugins:
        plugin = loaded.plugin
        where = loaded.distribution or "no distribution"
        _print(
            f"{printable(plugin.name)} {printable(plugin.version)}"
            f"  (from {printable(where)}: {printable(loaded.entry_point)})"
        )
        if plugin.summary:
            _print(f"  {printable(plugin.summary)}")
        for p in plugin.procedures:
            here = "" if p.runs_here() else f"  [not on this machine: {', '.join(p.platforms)}]"
            _print(
                f"  {p.kind.value:<10} {printable(p.name):<24} {printable(p.version):<8} "
                f"{printable(p.summary)}{printable(here)}"
            )
        for backend in plugin.ticket_backends:
            _print(
                f"  {'tickets':<10} {printable(backend.name):<24} {'':<8} "
                f"{printable(backend.summary)}"
            )
    if found.broken:
        _print("")
        _print("broken:")
        for b in found.broken:
            _print(f"  {printable(b.name)}  ({printable(b.origin)}): {printable(b.reason)}")
    _warn(found)


def _choose(found: Installed, name: str, kind: str | None) -> tuple[Procedure, Loaded]:
    """The procedure ``name`` (of ``kind``), on any platform; UsageError naming those that exist."""
    from toolkit.plugins import Kind

    if kind is not None and kind not in tuple(Kind):
        raise UsageError(f"--kind is diagnostic or fix, not {printable(kind)!r}.")
    matches = [
        (p, loaded)
        for loaded in found.plugins
        for p in loaded.plugin.procedures
        if p.name == name and (kind is None or p.kind.value == kind)
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(
            f"{printable(name)} is both a diagnostic and a fix.",
            hint=f"Say which: `toolkit plugins show {printable(name)} --kind fix`.",
        )
    names = sorted({p.name for loaded in found.plugins for p in loaded.plugin.procedures})
    what = f"{kind} " if kind else "procedure "
    for broken in found.broken:
        if (
            broken.refused
            and broken.refused[1] == name
            and broken.refused[0] in (kind or tuple(Kind))
        ):
            raise UsageError(
                f"{printable(name)!r} is not available: {printable(broken.reason)}",
                hint="Uninstall one of the plugins that give it (`toolkit plugins list`).",
            )
    raise UsageError(
        f"No {what}named {printable(name)!r} is installed.",
        hint=("Installed: " + ", ".join(names) + ".")
        if names
        else "No plugin gives any diagnostic or fix; `toolkit plugins list` shows the plugins.",
    )


@app.command("show")
def show_procedure(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="A diagnostic's or fix's name (`toolkit plugins list`)."
        ),
    ],
    kind: KindOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a diagnostic or fix: parameters, commands, files it reads."""
    from toolkit.plugins import Step
    from toolkit.plugins.loader import installed

    found = installed()
    procedure, loaded = _choose(found, name, kind)
    if as_json:
        body = {
            **procedure.to_dict(),
            "sha256": procedure.sha256,
            "runs_here": procedure.runs_here(),
            "from": _origin(loaded),
        }
        _print(json.dumps(body))
        return
    p = procedure
    _print(f"{p.kind.value} {printable(p.name)} {printable(p.version)}: {printable(p.summary)}")
    where = loaded.distribution or "no distribution"
    _print(
        f"  from       plugin {printable(loaded.plugin.name)} {printable(loaded.plugin.version)}"
        f" ({printable(where)}: {printable(loaded.entry_point)})"
    )
    here = "runs here" if p.runs_here() else "does not run on this machine"
    _print(f"  platforms  {printable(', '.join(p.platforms))} ({here})")
    _print(f"  sha256     {p.sha256}")
    for line in p.description.splitlines():
        _print(f"  {printable(line)}".rstrip())
    if p.parameters:
        _print("parameters:")
        for parameter in p.parameters:
            bounds = ""
            if parameter.minimum is not None or parameter.maximum is not None:
                bounds = f" {parameter.minimum or 0}..{parameter.maximum or 'any'}"
            default = "required" if parameter.default is None else f"default {parameter.default}"
            _print(
                f"  {printable(parameter.name)}  {parameter.type.value}{bounds}  "
                f"pattern {printable(parameter.pattern)}  {printable(default)}"
            )
            if parameter.description:
                _print(f"      {printable(parameter.description)}")
    if p.reads:
        _print("reads:")
        for path in p.reads:
            _print(f"  {printable(path)}")
    for step in Step:
        commands = p.commands(step)
        if commands:
            scope = "diagnostics" if step.read_only else "fixes, approved by the customer"
            _print(f"{step.value} ({scope}):")
            for argv in commands:
                _print(f"  {_command(argv)}")
