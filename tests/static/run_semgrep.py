"""Run the project's semgrep rules (.semgrep.yml) over toolkit/ and plugins/, offline.

``python -m tests.static.run_semgrep [--semgrep PATH]`` (``make semgrep``, part of
``make test``) prints every finding and fails on any finding that
tests/static/semgrep_known.txt does not allow, and on any rule or file that
semgrep could not read. The known list holds the findings that were already in
the tree when a rule was added, as ``path rule count``: fixing one lowers its
count (the run says so); a new one anywhere fails.

semgrep runs with ``--metrics=off``, no registry and no version check: it
needs no network. ``make`` installs it in its own venv, .venv/semgrep, so its
many pinned dependencies stay out of the project's venv.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / ".semgrep.yml"
KNOWN = Path(__file__).resolve().with_name("semgrep_known.txt")
TARGETS = ("toolkit", "plugins")
OFFLINE = {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    code: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.code.strip()}"


def find_semgrep(given: str | None = None) -> str | None:
    """The semgrep to run: ``given``, $SEMGREP, .venv/semgrep's, or the one on PATH."""
    for candidate in (given, os.environ.get("SEMGREP"), str(ROOT / ".venv/semgrep/bin/semgrep")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("semgrep")


def scan(
    semgrep: str, targets: Sequence[str], cwd: Path, rules: Path = RULES
) -> tuple[list[Finding], list[str]]:
    """Findings and errors of ``rules`` on ``targets`` (paths relative to ``cwd``)."""
    done = subprocess.run(
        [
            semgrep,
            "scan",
            "--config",
            str(rules),
            "--metrics=off",
            "--disable-version-check",
            "--no-git-ignore",  # files not committed yet are checked too
            "--json",
            "--quiet",
            *targets,
        ],
        cwd=cwd,
        env={**os.environ, **OFFLINE},
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        output = json.loads(done.stdout)
    except ValueError:
        return [], [f"semgrep exited {done.returncode} without a report: {done.stderr.strip()}"]
    findings = [
        Finding(
            path=r["path"],
            line=r["start"]["line"],
            rule=r["check_id"].rsplit(".", 1)[-1],  # semgrep prefixes the config's path
            code=_line(cwd / r["path"], r["start"]["line"]),
        )
        for r in output.get("results", [])
    ]
    errors = [str(e.get("message", e)).strip() for e in output.get("errors", [])]
    return findings, errors


def _line(path: Path, number: int) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()[number - 1]
    except (OSError, IndexError):
        return ""


def read_known(path: Path = KNOWN) -> Counter[tuple[str, str]]:
    """``path rule count`` lines; ``#`` starts a comment."""
    known: Counter[tuple[str, str]] = Counter()
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            file, rule, count = line.split()
            known[file, rule] += int(count)
    return known


def judge(
    findings: list[Finding], known: Counter[tuple[str, str]]
) -> tuple[list[Finding], list[str]]:
    """The findings the known list does not allow, and the counts it could lower."""
    found = Counter((f.path, f.rule) for f in findings)
    new = [f for f in findings if found[f.path, f.rule] > known[f.path, f.rule]]
    lower = [
        f"{file} {rule}: {count} allowed, {found[file, rule]} found: lower the count"
        for (file, rule), count in sorted(known.items())
        if found[file, rule] < count
    ]
    return new, lower


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.static.run_semgrep")
    parser.add_argument("--semgrep", help="the semgrep to run (default: .venv/semgrep's)")
    args = parser.parse_args(argv)
    semgrep = find_semgrep(args.semgrep)
    if semgrep is None:
        print("semgrep is not installed: `make semgrep` installs it in .venv/semgrep.")
        return 2
    findings, errors = scan(semgrep, TARGETS, ROOT)
    new, lower = judge(findings, read_known())
    for finding in findings:
        print(("NEW   " if finding in new else "known ") + str(finding))
    for note in lower:
        print(f"note: {KNOWN.relative_to(ROOT)}: {note}")
    for error in errors:
        print(f"error: {error}")
    known = len(findings) - len(new)
    print(
        f"semgrep: {len(new)} new finding(s), {known} known (in {KNOWN.relative_to(ROOT)}), "
        f"{len(errors)} error(s). Fix the code, or mark a reviewed exception as .semgrep.yml says."
    )
    return 1 if new or errors else 0


if __name__ == "__main__":
    sys.exit(main())
