"""``python -m bench.fuzz [--examples N] [--minutes M] [-k EXPR]``: the fuzz targets, long.

``make test`` runs tests/fuzz with a small fixed budget (seconds, the same
examples every run). This runs the same targets with ``--examples`` random
examples each (default 20,000), round after round with fresh randomness until
``--minutes`` have passed (default: one round), and stops at the first
failure. Hypothesis keeps failing examples in .hypothesis/ (git-ignored) and
tries them first next time; add what it finds to the target's fixed cases
(tests/fuzz/test_transcripts.py ``FOUND``) so ``make test`` keeps it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--examples", type=int, default=20_000, help="per target and round")
    parser.add_argument("--minutes", type=float, default=0.0, help="keep going this long")
    parser.add_argument("-k", dest="select", help="only the targets pytest -k selects")
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "pytest", "-q", "-x", "--hypothesis-show-statistics"]
    command += ["-k", args.select] if args.select else []
    command.append("tests/fuzz")
    env = {**os.environ, "TOOLKIT_FUZZ_EXAMPLES": str(args.examples)}
    deadline = time.monotonic() + args.minutes * 60
    rounds = 0
    while True:
        rounds += 1
        started = time.monotonic()
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        took = time.monotonic() - started
        print(f"fuzz round {rounds}: {args.examples} examples a target, {took:.0f} s, exit {code}")
        if code != 0 or time.monotonic() + took > deadline:
            return code


if __name__ == "__main__":
    sys.exit(main())
