"""CLI start-up: wall time of short commands, and what ``--help`` imports.

toolkit runs two ways, side by side: as a regular install would (this
checkout installed with ``pip install --no-deps``, not editable, into a
scratch venv whose other packages are the project venv's; pip compiles every
module to ``.pyc``), which the goal is about, and as this checkout runs
(the venv's editable install, with ``PYTHONDONTWRITEBYTECODE=1``: toolkit's
own modules are compiled at every start, as here). Each command runs N times
as a subprocess, round-robin after two untimed warm-ups each; the table shows
the median (and min/max). ``python -c pass`` with the same interpreter is the
floor: what any Python CLI pays before its first import. The small
transcript is 12 commands with three checkpoints (about 5 KB).

Then ``python -X importtime VENV/bin/toolkit --help`` (the installed one)
runs 5 times; the per-module times are medians over those runs. Reported:
time per top-level package, the modules with the most own time, and which
third-party modules toolkit's own modules import directly (the edges to cut
or defer).
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import venv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    REPO,
    TOOLKIT,
    Options,
    new_signer,
    record_small_sample,
    run_child,
    say,
    scratch_dir,
    ssh_keygen_verify_argv,
    summary,
    table,
    verdict,
    write_allowed_signers,
)

GOAL_HELP_SECONDS = 0.100
IMPORTTIME_RUNS = 5
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)\s*$")


@dataclass
class Node:
    name: str
    self_us: int
    cumulative_us: int
    depth: int
    children: list[Node] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[Node]:
    """The import tree from ``-X importtime`` output (children are listed first)."""
    roots: list[Node] = []
    pending: dict[int, list[Node]] = defaultdict(list)  # depth -> nodes awaiting a parent
    for line in stderr.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        depth = len(m.group(3)) // 2
        node = Node(m.group(4), int(m.group(1)), int(m.group(2)), depth)
        node.children = pending.pop(depth + 1, [])
        if depth == 0:
            roots.append(node)
        else:
            pending[depth].append(node)
    return roots


def _walk(nodes: list[Node]) -> list[Node]:
    out: list[Node] = []
    for n in nodes:
        out.append(n)
        out.extend(_walk(n.children))
    return out


def importtime_report(runs: list[str]) -> dict[str, Any]:
    """Medians over several ``-X importtime`` runs of the same command."""
    self_us: dict[str, list[int]] = defaultdict(list)
    cum_us: dict[str, list[int]] = defaultdict(list)
    edges: dict[tuple[str, str], list[int]] = defaultdict(list)
    for stderr in runs:
        for node in _walk(parse_importtime(stderr)):
            self_us[node.name].append(node.self_us)
            cum_us[node.name].append(node.cumulative_us)
            if node.name.split(".")[0] == "toolkit":
                for child in node.children:
                    if child.name.split(".")[0] != "toolkit":
                        edges[(node.name, child.name)].append(child.cumulative_us)

    def med(values: list[int]) -> float:
        return statistics.median(values) / 1000  # ms

    packages: dict[str, float] = defaultdict(float)
    for name, values in self_us.items():
        packages[name.split(".")[0]] += med(values)
    total = sum(packages.values())
    return {
        "total_import_ms": total,
        "packages_ms": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
        "top_self_ms": sorted(((n, med(v)) for n, v in self_us.items()), key=lambda kv: -kv[1])[
            :15
        ],
        "top_cumulative_ms": sorted(
            ((n, med(v)) for n, v in cum_us.items()), key=lambda kv: -kv[1]
        )[:15],
        "toolkit_imports_ms": sorted(
            ((f"{a} -> {b}", med(v)) for (a, b), v in edges.items()), key=lambda kv: -kv[1]
        )[:15],
        "modules": len(self_us),
    }


def install(where: Path) -> Path:
    """This checkout, installed as a user would (not editable, compiled); its ``toolkit``.

    A scratch venv on the same interpreter gets the project venv's packages
    through a ``.pth`` line (so the dependencies are the same files, with the
    ``.pyc`` pip wrote when it installed them) and toolkit from ``pip install
    --no-deps`` of a copy of the checkout (so no build files land in it).
    Raises RuntimeError with pip's words if the install fails.
    """
    source = where / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "toolkit", source / "toolkit", ignore=ignore)
    target = where / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    paths = {"base": str(target), "platbase": str(target)}
    site = Path(sysconfig.get_path("purelib", vars=paths))
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = target / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    argv = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
    argv += ["--quiet", "--disable-pip-version-check", str(source)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pip install of the checkout failed:\n{done.stderr}")
    compiled = list((site / "toolkit").rglob("*.pyc"))
    if not compiled:
        raise RuntimeError("pip installed toolkit without .pyc files")
    return target / "bin" / "toolkit"


def run(opts: Options) -> dict[str, Any]:
    say(f"== startup: median wall time of {opts.startup_runs} runs each (subprocess) ==")
    n = opts.startup_runs
    with scratch_dir("startup", opts.scratch_root()) as d:
        installed = install(d / "installed")
        python = installed.with_name("python")  # the scratch venv's, for -X importtime
        # The checkout as it runs here: toolkit's modules compiled at every start.
        checkout_env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        stale = [str(c) for c in (REPO / "toolkit").rglob("__pycache__")]
        if stale:
            say(f"NOTE: {len(stale)} __pycache__ directories in toolkit/: the checkout rows "
                "read those .pyc files (delete them to measure none)")  # fmt: skip
        signer = new_signer()
        signers = write_allowed_signers(d / "allowed_signers", signer)
        cast = record_small_sample(d / "small.cast", signer)
        verify: list[str | Path] = ["verify", cast, "--allowed-signers", signers]
        Command = tuple[list[str | Path], Path | None, dict[str, str] | None]
        commands: dict[str, Command] = {
            "python -c pass (floor)": ([sys.executable, "-c", "pass"], None, None),
            "toolkit --help, installed": ([installed, "--help"], None, None),
            "toolkit --version, installed": ([installed, "--version"], None, None),
            "toolkit verify small, installed": ([installed, *verify], None, None),
            "toolkit --help, checkout (no .pyc)": ([TOOLKIT, "--help"], None, checkout_env),
            "toolkit verify small, checkout": ([TOOLKIT, *verify], None, checkout_env),
            "ssh-keygen -Y verify small": (list(ssh_keygen_verify_argv(signers, cast)), cast, None),
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(2):
            for name, (argv, stdin, env) in commands.items():
                child = run_child(argv, stdin=stdin, env=env)
                if child.returncode != 0:
                    raise RuntimeError(f"{name} failed (exit {child.returncode}):\n{child.stderr}")
        for _ in range(n):
            for name, (argv, stdin, env) in commands.items():
                walls[name].append(run_child(argv, stdin=stdin, env=env).wall)
        help_imports = [
            run_child([python, "-X", "importtime", installed, "--help"]).stderr
            for _ in range(IMPORTTIME_RUNS)
        ]
        checkout_imports = [
            run_child(
                [sys.executable, "-X", "importtime", TOOLKIT, "--help"], env=checkout_env
            ).stderr
            for _ in range(IMPORTTIME_RUNS)
        ]
        verify_argv: list[str | Path] = [python, "-X", "importtime", installed, *verify]
        verify_imports = [run_child(verify_argv).stderr for _ in range(IMPORTTIME_RUNS)]
    stats = {name: summary(values) for name, values in walls.items()}
    help_median = stats["toolkit --help, installed"]["median"]
    ok = help_median <= GOAL_HELP_SECONDS
    rows: list[list[object]] = []
    for name, s in stats.items():
        goal = "<= 100 ms: " + verdict(ok) if name == "toolkit --help, installed" else ""
        rows.append(
            [
                name,
                round(s["median"] * 1000, 1),
                round(s["min"] * 1000, 1),
                round(s["max"] * 1000, 1),
                goal,
            ]
        )
    say(table(["command", "median ms", "min ms", "max ms", "goal"], rows))
    help_report = importtime_report(help_imports)
    checkout_report = importtime_report(checkout_imports)
    verify_report = importtime_report(verify_imports)
    _print_imports("toolkit --help, installed", help_report)
    say()
    say("toolkit --help, checkout (no .pyc), import time by package (ms, median of 5):")
    say(
        "  "
        + ", ".join(f"{k} {v:.1f}" for k, v in list(checkout_report["packages_ms"].items())[:10])
    )
    say("toolkit verify small, installed, import time by package (ms, median of 5):")
    say(
        "  " + ", ".join(f"{k} {v:.1f}" for k, v in list(verify_report["packages_ms"].items())[:10])
    )
    return {
        "runs": n,
        "walls": walls,
        "stats": stats,
        "goal_help": verdict(ok),
        "importtime_help": help_report,
        "importtime_help_checkout": checkout_report,
        "importtime_verify": verify_report,
    }


def _print_imports(what: str, report: dict[str, Any]) -> None:
    say()
    say(
        f"{what}: -X importtime, median of {IMPORTTIME_RUNS} runs: "
        f"{report['total_import_ms']:.1f} ms in {report['modules']} modules"
    )
    say("by top-level package (own time summed, ms):")
    say("  " + ", ".join(f"{k} {v:.1f}" for k, v in list(report["packages_ms"].items())[:12]))
    say("top offenders, cumulative (ms):")
    say(table(["module", "ms"], [[n, round(v, 1)] for n, v in report["top_cumulative_ms"]]))
    say("non-toolkit modules that toolkit modules import directly (cumulative ms):")
    say(table(["import", "ms"], [[n, round(v, 1)] for n, v in report["toolkit_imports_ms"]]))


def main(argv: list[str]) -> int:
    from bench.__main__ import main as bench_main

    return bench_main(["startup", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


__all__ = ["Node", "importtime_report", "install", "parse_importtime", "run"]
