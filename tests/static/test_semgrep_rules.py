"""Each rule in .semgrep.yml flags what it is for, and not the safe forms.

The samples below are written to a scratch tree at the paths the rules cover
(toolkit/cli/, toolkit/agent/, ...) and scanned once, with the real rules
file. In a sample, ``# ruleid: RULE`` above a line says the line must be
flagged by RULE; every other line must not be flagged by any rule.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from tests.static.run_semgrep import Finding, find_semgrep, judge, read_known, scan

SHELL = "toolkit-no-shell"
PRINT = "toolkit-print-untrusted"
PATHS = "toolkit-path-decision"

SAMPLES: dict[str, str] = {
    # -- a: no command through a shell, anywhere in toolkit/ and plugins/
    "toolkit/agent/run_bad.py": f"""
        import asyncio, os, subprocess

        async def run(cmd: str, argv: list[str], loop: asyncio.AbstractEventLoop) -> None:
            # ruleid: {SHELL}
            subprocess.run(cmd, shell=True)
            # ruleid: {SHELL}
            subprocess.Popen(cmd, stdout=subprocess.PIPE, shell=1)
            # ruleid: {SHELL}
            subprocess.check_output(argv, shell=argv is not None)
            # ruleid: {SHELL}
            await asyncio.create_subprocess_shell(cmd)
            # ruleid: {SHELL}
            await loop.subprocess_shell(asyncio.SubprocessProtocol, cmd)
            # ruleid: {SHELL}
            os.system(cmd)
            # ruleid: {SHELL}
            os.popen(cmd)
            # ruleid: {SHELL}
            subprocess.getoutput(cmd)
            # ruleid: {SHELL}
            subprocess.run(["sh", "-c", cmd])
            # ruleid: {SHELL}
            subprocess.run(["/bin/bash", "-e", "-c", cmd], check=True)
            # ruleid: {SHELL}
            await asyncio.create_subprocess_exec("/usr/bin/zsh", "-c", cmd)
            # ruleid: {SHELL}
            os.execv("/bin/sh", ["sh", "-c", cmd])
        """,
    "plugins/tickets/hook_bad.py": f"""
        import subprocess

        def notify(ticket: str) -> None:
            # ruleid: {SHELL}
            subprocess.call("notify-send " + ticket, shell=True)
        """,
    "toolkit/agent/run_good.py": """
        import asyncio, subprocess

        async def run(argv: list[str], shell: str) -> None:
            subprocess.run(argv, shell=False, check=True)
            subprocess.run(["df", "-h"])
            await asyncio.create_subprocess_exec(*argv)
            await asyncio.create_subprocess_exec("-sh", executable=shell)  # a login shell, no -c
            subprocess.run(["grep", "-c", "x", "file"])  # -c of another program
        """,
    "toolkit/agent/run_marked.py": f"""
        import subprocess

        def run(cmd: str) -> None:
            subprocess.run(cmd, shell=True)  # nosemgrep: {SHELL} -- a reviewed exception
            # ruleid: {SHELL}
            subprocess.run(cmd, shell=True)  # nosemgrep: {PRINT} -- the wrong rule marks nothing
        """,
    # -- b: text from elsewhere reaches the terminal only through printable()
    "toolkit/cli/show_bad.py": f"""
        import sys
        from rich.table import Table
        from rich.text import Text

        def show(report, response, exc, console, table: Table, say, path) -> None:
            h = report.header
            # ruleid: {PRINT}
            console.print(f"ticket {{h.ticket}}")
            rows = [("ticket", h.ticket), ("ended", report.end_reason or "-")]
            for label, value in rows:
                # ruleid: {PRINT}
                print(f"  {{label:<12}} {{value}}")
            # ruleid: {PRINT}
            say(response.message)
            # ruleid: {PRINT}
            say(exc.diagnostics())
            # ruleid: {PRINT}
            sys.stdout.write(response.result.get("sha256") + "\\n")
            # ruleid: {PRINT}
            table.add_row("title", Text(response.title))
            # ruleid: {PRINT}
            console.print(Text(path.read_text()))
            shown = []
            shown.append(report.technician.name)
            # ruleid: {PRINT}
            say(", ".join(shown))
            try:
                path.unlink()
            except OSError as error:
                # ruleid: {PRINT}
                say(f"cannot read it: {{error}}")
            text = "ticket " + h.ticket
            # ruleid: {PRINT}
            sys.stderr.write(text)
        """,
    "toolkit/cli/show_good.py": f"""
        import json
        from toolkit.text import printable, printable_lines

        def show(report, response, exc, console, say, count: int) -> None:
            h = report.header
            console.print(f"ticket {{printable(h.ticket)}}")
            rows = [("ticket", printable(h.ticket)), ("ended", printable(report.end_reason))]
            for label, value in rows:
                print(f"  {{label:<12}} {{value}}")
            say(printable_lines(exc.diagnostics()))
            say(json.dumps(response.result))
            say(f"{{len(response.stdout)}} bytes, {{count}} lines, id {{int(response.id)}}")
            say(f"{{printable(response.message)!s}} ({{repr(response.message)}})")
            console.print("a constant")
            console.print(f"{{h.ticket}}")  # nosemgrep: {PRINT} -- reviewed: the sample's exception
        """,
    "toolkit/cli/show_still_bad.py": f"""
        import json

        def show(response, say) -> None:
            # ruleid: {PRINT}
            say(json.dumps(response.result, ensure_ascii=False))
        """,
    # The rule is about the terminal: the core never prints (STYLE.md), it is not checked.
    "toolkit/session/core_not_checked.py": """
        def record(event, log) -> None:
            log.print(event.message)
        """,
    # -- c: the agent and the policy decide on the opened descriptor, not on a resolved name
    "toolkit/agent/paths_bad.py": f"""
        import os
        import os.path
        from pathlib import Path

        def allowed(asked: str, root: Path) -> bool:
            # ruleid: {PATHS}
            real = os.path.realpath(asked)
            # ruleid: {PATHS}
            if os.path.abspath(asked).startswith(str(root)):
                return True
            # ruleid: {PATHS}
            return Path(asked).resolve().is_relative_to(root) or real == ""
        """,
    "toolkit/policy/paths_bad.py": f"""
        import os.path
        from pathlib import Path

        def under(asked: Path, root: Path) -> bool:
            # ruleid: {PATHS}
            return asked.resolve(strict=True).is_relative_to(root.absolute()) or bool(
                # ruleid: {PATHS}
                os.path.normpath(str(asked))
            )
        """,
    "toolkit/policy/paths_good.py": """
        import os
        from pathlib import Path

        class Policy:
            @classmethod
            def resolve(cls, path: Path | None, home: str) -> "Policy":
                return cls()

        def opened(asked: str) -> int:
            fd = os.open(asked, os.O_RDONLY | os.O_NOFOLLOW)
            os.fstat(fd)
            Policy.resolve(None, home="/home/x")
            return fd
        """,
    # Only the agent and the policy decide on paths; the CLI may show a resolved name.
    "toolkit/cli/paths_not_checked.py": """
        import os.path

        def shown(name: str) -> str:
            return os.path.realpath(name)
        """,
}


def expected_lines(source: str) -> Counter[tuple[int, str]]:
    """``(line, rule)`` for every ``# ruleid: RULE`` comment: the line after it."""
    expected: Counter[tuple[int, str]] = Counter()
    for number, line in enumerate(source.splitlines(), 1):
        marker = line.strip()
        if marker.startswith("# ruleid:"):
            expected[number + 1, marker.split(":", 1)[1].strip()] += 1
    return expected


@pytest.fixture(scope="module")
def semgrep() -> str:
    found = find_semgrep()
    if found is None:
        pytest.skip("semgrep is not installed: `make semgrep` installs it in .venv/semgrep")
    return found


@pytest.fixture(scope="module")
def sample_findings(
    semgrep: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Finding]]:
    root = tmp_path_factory.mktemp("semgrep-samples")
    for name, source in SAMPLES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"))
    findings, errors = scan(semgrep, ["."], root)
    assert errors == []
    by_file: dict[str, list[Finding]] = {name: [] for name in SAMPLES}
    for finding in findings:
        by_file[finding.path].append(finding)
    return by_file


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_rule_flags_exactly_the_marked_lines(
    name: str, sample_findings: dict[str, list[Finding]]
) -> None:
    source = textwrap.dedent(SAMPLES[name]).lstrip("\n")
    got = Counter((f.line, f.rule) for f in sample_findings[name])
    # A sink may be reported once per tainted argument: count lines, not reports.
    assert set(got) == set(expected_lines(source)), [str(f) for f in sample_findings[name]]


def test_every_rule_has_a_bad_and_a_good_sample() -> None:
    rules = Path(__file__).resolve().parents[2] / ".semgrep.yml"
    lines = rules.read_text().splitlines()
    ids = [line.split(":", 1)[1].strip() for line in lines if line.strip().startswith("- id:")]
    assert sorted(ids) == sorted([SHELL, PRINT, PATHS])
    for rule in ids:
        flagged = [n for n, s in SAMPLES.items() if f"# ruleid: {rule}" in s]
        clean = [n for n, s in SAMPLES.items() if "_good" in n and f"# ruleid: {rule}" not in s]
        assert flagged and clean, rule


def test_known_findings_only_allow_what_they_count(tmp_path: Path) -> None:
    known_file = tmp_path / "known.txt"
    known_file.write_text("# comment\ntoolkit/cli/a.py toolkit-print-untrusted 2  # two\n")
    known = read_known(known_file)
    a = [Finding("toolkit/cli/a.py", n, PRINT, "") for n in (1, 2)]
    assert judge(a, known) == ([], [])
    assert judge(a[:1], known)[1] == [
        "toolkit/cli/a.py toolkit-print-untrusted: 2 allowed, 1 found: lower the count"
    ]
    third = [*a, Finding("toolkit/cli/a.py", 3, PRINT, "")]
    assert len(judge(third, known)[0]) == 3  # over the count: the whole file is shown as new
    elsewhere = Finding("toolkit/cli/b.py", 1, PRINT, "")
    assert judge([*a, elsewhere], known)[0] == [elsewhere]
    shell = Finding("toolkit/cli/a.py", 1, SHELL, "")
    assert judge([shell], known)[0] == [shell]  # a count is for one rule only


def test_the_known_list_is_well_formed() -> None:
    for (path, rule), count in read_known().items():
        assert rule in (SHELL, PRINT, PATHS) and count > 0
        assert (Path(__file__).resolve().parents[2] / path).is_file(), path
