"""``toolkit verify`` against ``ssh-keygen -Y verify`` on the same 1 GiB transcript.

A worker process records a sealed transcript of about B bytes (file size, not
output size) into a scratch directory, with an allowed_signers file naming
its key. Then both tools verify it as subprocesses, alternately, after one
untimed warm-up each (so the file is in the page cache for both: this measures
CPU work, not the disk):

- ``.venv/bin/toolkit verify FILE --allowed-signers F``
- ``ssh-keygen -Y verify -f F -I alice@example.com -n toolkit-transcript -s FILE.sig < FILE``

The ratio is median(toolkit) / median(ssh-keygen) wall time. Shapes:

- ``output``: only output, in 4096-byte ``rec.output`` calls (a long ``cat``).
- ``session``: commands: ``rec.input(b"ls -l\\r")``, an ``operation`` event,
  then 4 x 4096 bytes of output; so one structured event per ~20 KB of file.

The scratch directory and the transcript are deleted afterwards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import (
    RESULTS,
    TOOLKIT,
    ChildRun,
    Options,
    fit_to_disk,
    median,
    new_recorder,
    new_signer,
    run_child,
    say,
    scratch_dir,
    ssh_keygen_verify_argv,
    summary,
    table,
    terminal_block,
    verdict,
    write_allowed_signers,
)

GOAL_RATIO = 1.2
# The floor for any verifier: SHA-512 of the file (what the final SSHSIG needs),
# with the same Python and OpenSSL toolkit uses, in a fresh process.
SHA512_FLOOR = (
    "import hashlib, sys\nwith open(sys.argv[1], 'rb') as f: hashlib.file_digest(f, 'sha512')"
)
PTY_READ = 4096
SHAPES = ("output", "session")


def generate(shape: str, size: int, directory: Path) -> dict[str, Any]:
    """Record a sealed transcript of about ``size`` bytes; return what was made."""
    signer = new_signer()
    signers = write_allowed_signers(directory / "allowed_signers", signer)
    cast = directory / f"{shape}.cast"
    block = terminal_block(PTY_READ)
    start = time.perf_counter()
    rec = new_recorder(cast, signer)
    calls = 0
    i = 0
    while True:
        if shape == "session":
            rec.input(b"ls -l\r")
            rec.event("operation", op="run", argv=["ls", "-l"], exit_status=0, index=i)
            for _ in range(4):
                rec.output(block)
            calls += 6
        else:
            rec.output(block)
            calls += 1
        i += 1
        if i % 256 == 0 and cast.stat().st_size >= size:
            break
    rec.close("completed")
    return {
        "shape": shape,
        "file": str(cast),
        "allowed_signers": str(signers),
        "file_bytes": cast.stat().st_size,
        "calls": calls,
        "checkpoints": getattr(rec, "_seq", None),
        "generate_seconds": time.perf_counter() - start,
    }


def _toolkit_argv(cast: Path, signers: Path) -> list[str]:
    return [str(TOOLKIT), "verify", str(cast), "--allowed-signers", str(signers)]


def _check(name: str, child: ChildRun, expect: str) -> None:
    if child.returncode != 0 or expect not in child.stdout + child.stderr:
        raise RuntimeError(
            f"{name} did not verify the transcript (exit {child.returncode}):\n"
            f"{child.stdout}\n{child.stderr}"
        )


def measure_shape(shape: str, size: int, opts: Options) -> dict[str, Any]:
    with scratch_dir("verify", opts.scratch_root()) as d:
        gen = run_child([sys.executable, "-m", "bench.verify", "worker", shape, str(size), str(d)])
        if gen.returncode != 0:
            raise RuntimeError(f"generating the {shape} transcript failed:\n{gen.stderr}")
        made: dict[str, Any] = json.loads(gen.stdout.strip().splitlines()[-1])
        cast, signers = Path(made["file"]), Path(made["allowed_signers"])
        say(
            f"  {shape}: {made['file_bytes'] / 1e6:,.0f} MB, {made['calls']:,} calls, "
            f"{made['checkpoints']} checkpoints, recorded in {made['generate_seconds']:.1f} s"
        )
        tk_argv = _toolkit_argv(cast, signers)
        ssh_argv = ssh_keygen_verify_argv(signers, cast)
        _check("toolkit verify", run_child(tk_argv), "SEALED")
        _check("ssh-keygen -Y verify", run_child(ssh_argv, stdin=cast), "Good")
        floor_argv = [sys.executable, "-c", SHA512_FLOOR, str(cast)]
        tk: list[ChildRun] = []
        ssh: list[ChildRun] = []
        floor: list[ChildRun] = []
        for i in range(opts.verify_runs):
            tk.append(run_child(tk_argv))
            ssh.append(run_child(ssh_argv, stdin=cast))
            floor.append(run_child(floor_argv))
            _check("toolkit verify", tk[-1], "SEALED")
            _check("ssh-keygen -Y verify", ssh[-1], "Good")
            say(
                f"    run {i + 1}/{opts.verify_runs}: toolkit {tk[-1].wall:.2f} s, "
                f"ssh-keygen {ssh[-1].wall:.2f} s, sha512 floor {floor[-1].wall:.2f} s"
            )
        profile: dict[str, Any] | None = None
        if opts.profile:
            profile = _profile(shape, tk_argv)
    ratio = median([r.wall for r in tk]) / median([r.wall for r in ssh])
    return {
        "shape": shape,
        "made": made,
        "toolkit": _stats(tk),
        "ssh_keygen": _stats(ssh),
        "sha512_floor": _stats(floor),
        "ratio": ratio,
        "goal": verdict(ratio <= GOAL_RATIO),
        "profile": profile,
    }


def _stats(runs: list[ChildRun]) -> dict[str, Any]:
    return {
        "wall": summary([r.wall for r in runs]),
        "user": summary([r.user for r in runs]),
        "sys": summary([r.sys for r in runs]),
        "max_rss": max(r.max_rss for r in runs),
    }


def _profile(shape: str, tk_argv: list[str]) -> dict[str, Any]:
    """One extra toolkit run under cProfile (main thread only; slower than unprofiled)."""
    import pstats

    from bench.recorder import top_functions

    RESULTS.mkdir(exist_ok=True)
    prof = RESULTS / f"verify-{shape}.prof"
    run_child([sys.executable, "-m", "cProfile", "-o", str(prof), *tk_argv])
    return {"file": str(prof), "top": top_functions(pstats.Stats(str(prof)))}


def run(opts: Options) -> dict[str, Any]:
    say("== verify: toolkit verify vs ssh-keygen -Y verify, same file, warm page cache ==")
    import shutil

    if not shutil.which("ssh-keygen"):
        say("ssh-keygen is not installed: nothing to compare against; skipped.")
        return {"skipped": "ssh-keygen not found"}
    size = fit_to_disk(opts.verify_bytes, opts.scratch_root(), 1.1, "the verify transcript")
    results = [measure_shape(shape, size, opts) for shape in opts.shapes]
    rows: list[list[object]] = []
    for r in results:
        tk, ssh = r["toolkit"], r["ssh_keygen"]
        rows.append(
            [
                r["shape"],
                round(r["made"]["file_bytes"] / 1e6),
                round(tk["wall"]["median"], 3),
                round(tk["user"]["median"] + tk["sys"]["median"], 2),
                round(tk["max_rss"] / 1e6, 1),
                round(ssh["wall"]["median"], 3),
                round(ssh["user"]["median"] + ssh["sys"]["median"], 2),
                round(r["sha512_floor"]["wall"]["median"], 3),
                round(r["ratio"], 2),
                r["goal"],
            ]
        )
    say()
    say(
        table(
            [
                "shape",
                "file MB",
                "toolkit s",
                "toolkit CPU s",
                "toolkit RSS MB",
                "ssh-keygen s",
                "ssh CPU s",
                "sha512 floor s",
                "ratio",
                "<=1.2x",
            ],
            rows,
        )
    )
    say(
        f"(medians of {opts.verify_runs} alternating runs; CPU = user + sys of the child; "
        "sha512 floor = python hashlib.file_digest of the file, the least any verifier does)"
    )
    for r in results:
        if r["profile"]:
            say()
            say(
                f"cProfile of toolkit verify, {r['shape']} (main thread, own time; "
                f"{r['profile']['file']}):"
            )
            for line in r["profile"]["top"]:
                say("  " + line)
    return {"size": size, "shapes": results}


def main(argv: list[str]) -> int:
    if len(argv) == 4 and argv[0] == "worker":
        print(json.dumps(generate(argv[1], int(argv[2]), Path(argv[3]))))
        return 0
    say("usage: python -m bench verify (this module is also the worker)", sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
