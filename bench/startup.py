"""CLI start-up: wall time of short commands, and what ``--help`` imports.

Each command runs N times as a subprocess of the venv's ``toolkit`` script,
round-robin after two untimed warm-ups each; the table shows the median (and
min/max). ``python -c pass`` with the same interpreter is the floor: what
any Python CLI pays before its first import. The small transcript is 12
commands with three checkpoints (about 5 KB).

Then ``python -X importtime .venv/bin/toolkit --help`` runs 5 times; the
per-module times are medians over those runs. Reported: time per top-level
package, the modules with the most own time, and which third-party modules
toolkit's own modules import directly (the edges to cut or defer).
"""

from __future__ import annotations

import re
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
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


def run(opts: Options) -> dict[str, Any]:
    say(f"== startup: median wall time of {opts.startup_runs} runs each (subprocess) ==")
    n = opts.startup_runs
    with scratch_dir("startup", opts.scratch_root()) as d:
        signer = new_signer()
        signers = write_allowed_signers(d / "allowed_signers", signer)
        cast = record_small_sample(d / "small.cast", signer)
        commands: dict[str, tuple[list[str | Path], Path | None]] = {
            "python -c pass (floor)": ([sys.executable, "-c", "pass"], None),
            "toolkit --help": ([TOOLKIT, "--help"], None),
            "toolkit --version": ([TOOLKIT, "--version"], None),
            "toolkit verify small": (
                [TOOLKIT, "verify", cast, "--allowed-signers", signers],
                None,
            ),
            "ssh-keygen -Y verify small": (list(ssh_keygen_verify_argv(signers, cast)), cast),
        }
        walls: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(2):
            for name, (argv, stdin) in commands.items():
                child = run_child(argv, stdin=stdin)
                if child.returncode != 0:
                    raise RuntimeError(f"{name} failed (exit {child.returncode}):\n{child.stderr}")
        for _ in range(n):
            for name, (argv, stdin) in commands.items():
                walls[name].append(run_child(argv, stdin=stdin).wall)
        help_imports = [
            run_child([sys.executable, "-X", "importtime", TOOLKIT, "--help"]).stderr
            for _ in range(IMPORTTIME_RUNS)
        ]
        verify_argv: list[str | Path] = [sys.executable, "-X", "importtime", TOOLKIT]
        verify_argv += ["verify", cast, "--allowed-signers", signers]
        verify_imports = [run_child(verify_argv).stderr for _ in range(IMPORTTIME_RUNS)]
    stats = {name: summary(values) for name, values in walls.items()}
    help_median = stats["toolkit --help"]["median"]
    ok = help_median <= GOAL_HELP_SECONDS
    rows: list[list[object]] = []
    for name, s in stats.items():
        goal = "<= 100 ms: " + verdict(ok) if name == "toolkit --help" else ""
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
    verify_report = importtime_report(verify_imports)
    _print_imports("toolkit --help", help_report)
    say()
    say("toolkit verify small, import time by package (ms, median of 5):")
    say(
        "  " + ", ".join(f"{k} {v:.1f}" for k, v in list(verify_report["packages_ms"].items())[:10])
    )
    return {
        "runs": n,
        "walls": walls,
        "stats": stats,
        "goal_help": verdict(ok),
        "importtime_help": help_report,
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


__all__ = ["Node", "importtime_report", "parse_importtime", "run"]
