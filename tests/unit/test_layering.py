"""The core never imports the CLI's libraries; cheap commands stay cheap."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "toolkit"


def test_typer_and_rich_only_in_cli() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "cli" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path}: {n}" for n in names if n.split(".")[0] in {"typer", "rich"}]
    assert offenders == []


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from toolkit.cli import run; run(['--help']);"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'asyncio','asyncssh','cryptography','keyring','rich','spake2'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
