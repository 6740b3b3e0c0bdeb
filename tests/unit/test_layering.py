"""The core never imports the CLI's libraries; cheap commands stay cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "toolkit"


def _imports(path: Path) -> list[str]:
    """Every module ``path`` imports, at the top or inside a function (absolute imports)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [node.module]
    return names


def test_typer_and_rich_only_in_cli() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        names = _imports(path)
        offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in {"typer", "rich"}]
    assert offenders == []


#: Packages each side must not import: the agent never the technician's side or the CLI,
#: the technician's session never the agent. Both speak toolkit.protocol.
_FORBIDDEN = {
    "agent": ("toolkit.session", "toolkit.cli"),
    "session": ("toolkit.agent",),
    "protocol": ("toolkit.agent", "toolkit.session", "toolkit.cli"),
}


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_agent_and_the_technicians_session_import_only_the_shared_protocol() -> None:
    offenders = []
    for part, forbidden in _FORBIDDEN.items():
        for path in (PACKAGE / part).rglob("*.py"):
            names = _imports(path)
            offenders += [f"{path}: {n}" for n in names if any(_within(n, f) for f in forbidden)]
    assert offenders == []


def test_the_layering_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    # The agent's lazy imports sit inside functions: a check of the top lines would miss them.
    module = tmp_path / "m.py"
    module.write_text("def f() -> None:\n    from toolkit.session.commands import parse\n")
    assert _imports(module) == ["toolkit.session.commands"]
    assert _within("toolkit.session.commands", "toolkit.session")
    assert not _within("toolkit.sessions", "toolkit.session")


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from toolkit.cli import run; run(['--help']);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'asyncio','asyncssh','cryptography','keyring','rich','spake2'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
