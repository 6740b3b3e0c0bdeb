"""``python -m bench [recorder|verify|startup ...] [--quick] [options]``.

``python -m bench run [--quick] ...`` is toolkit run against Ansible and pyinfra
(bench/run.py, options of its own); it is not part of the default set, since it
installs those two into bench/.cache first. ``python -m bench fleet ...`` is the
same on a fleet of hosts (bench/fleet.py, issue 17), not in the default set either.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._common import GiB, MiB, Options, environment, save, say

BENCHMARKS = ("recorder", "verify", "startup")


def _runner(name: str) -> Callable[[Options], dict[str, Any]]:
    if name == "recorder":
        from bench.recorder import run as recorder_run

        return recorder_run
    if name == "verify":
        from bench.verify import run as verify_run

        return verify_run
    from bench.startup import run as startup_run

    return startup_run


def parse(argv: list[str]) -> tuple[list[str], Options]:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="toolkit benchmarks: recorder throughput and memory, verify vs "
        "ssh-keygen, CLI start-up. Results go to bench/results/*.json.",
        epilog="python -m bench run --help: toolkit run --check against Ansible and pyinfra; "
        "python -m bench fleet --help: the same on a fleet of hosts (neither is in the "
        "default set).",
    )
    p.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)} (default: all)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: 100k events, 128 MiB output and transcript, fewer runs",
    )
    p.add_argument("--events", type=int, help="small/mixed events per run (default 1,000,000)")
    p.add_argument("--output-mib", type=int, help="bulk output per run in MiB (default 1024)")
    p.add_argument("--verify-mib", type=int, help="verify transcript size in MiB (default 1024)")
    p.add_argument("--repeat", type=int, help="fresh recorder processes per scenario (default 5)")
    p.add_argument("--verify-runs", type=int, help="timed runs of each verifier (default 5)")
    p.add_argument("--startup-runs", type=int, help="timed runs of each command (default 20)")
    p.add_argument(
        "--shapes", help="verify transcript shapes, comma-separated (output,session; default both)"
    )
    p.add_argument("--tmpdir", type=Path, help="where scratch files go (default: system temp)")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also one cProfile run of each recorder scenario and verify shape",
    )
    a = p.parse_args(argv)
    for name in a.benchmarks:
        if name not in BENCHMARKS:
            p.error(f"unknown benchmark {name!r}: choose from {', '.join(BENCHMARKS)}")
    base = (
        Options(
            events=100_000,
            output_bytes=128 * MiB,
            verify_bytes=128 * MiB,
            repeat=1,
            verify_runs=3,
            startup_runs=5,
        )
        if a.quick
        else Options()
    )
    opts = Options(
        events=a.events or base.events,
        output_bytes=a.output_mib * MiB if a.output_mib else base.output_bytes,
        verify_bytes=a.verify_mib * MiB if a.verify_mib else base.verify_bytes,
        repeat=a.repeat or base.repeat,
        verify_runs=a.verify_runs or base.verify_runs,
        startup_runs=a.startup_runs or base.startup_runs,
        shapes=tuple(a.shapes.split(",")) if a.shapes else base.shapes,
        tmpdir=a.tmpdir,
        profile=a.profile,
    )
    return list(a.benchmarks) or list(BENCHMARKS), opts


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["run"]:
        from bench.run import main as run_main

        return run_main(argv[1:])
    if argv[:1] == ["fleet"]:
        from bench.fleet import main as fleet_main

        return fleet_main(argv[1:])
    names, opts = parse(argv)
    env = environment()
    dirty = ", toolkit/ modified" if env["toolkit_tree_dirty"] else ""
    say(
        f"toolkit {env['toolkit']} ({env['commit']}{dirty}), "
        f"Python {env['python']}, {env['cpus']} CPUs ({env['cpu']}), {env['openssh']}"
    )
    say(f"load average {env['loadavg'][0]:.2f}: other work on this machine adds timing noise")
    say()
    for name in names:
        result = _runner(name)(opts)
        result = {
            "benchmark": name,
            "environment": env,
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
            "loadavg_after": list(os.getloadavg()),
            **result,
        }
        say(f"-> {save(name, result)}")
        say()
    if opts.output_bytes < GiB or opts.verify_bytes < GiB:
        say("Note: smaller than the issue's 1 GiB sizes; use the full run for the README.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
