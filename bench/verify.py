"""``toolkit verify`` against ``ssh-keygen -Y verify`` on the same 1 GiB transcript.

A worker process records a sealed transcript of about B bytes (file size, not
output size) into a scratch directory, with an allowed_signers file naming
its key, once in format 2 (SHA-256 throughout) and once in format 1 (SHA-512
seal) with the same content. Then the tools verify them as subprocesses, in
turn, after one untimed warm-up each (so the files are in the page cache:
this measures CPU work, not the disk):

- ``.venv/bin/toolkit verify FILE --allowed-signers F``, format 2 and format 1
- ``ssh-keygen -Y verify -f F -I alice@example.com -n toolkit-transcript -s FILE.sig < FILE``
  of the format 2 file (so it hashes SHA-256 too)
- the floor: Python's ``hashlib.file_digest(f, "sha256")`` of the format 2 file

Goals (issue 14): median(toolkit, format 2) / median(ssh-keygen) <= 1.3, and
toolkit verifies format 2 faster than format 1 of the same content. Shapes:

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

GOAL_RATIO = 1.3
# The floor for any verifier of format 2: SHA-256 of the file (what the final
# SSHSIG signs), with the same Python and OpenSSL toolkit uses, in a fresh process.
SHA256_FLOOR = (
    "import hashlib, sys\nwith open(sys.argv[1], 'rb') as f: hashlib.file_digest(f, 'sha256')"
)
FORMATS = (2, 1)
PTY_READ = 4096
SHAPES = ("output", "session")


def generate(shape: str, size: int, directory: Path, format: int = 2) -> dict[str, Any]:
    """Record a sealed transcript of about ``size`` bytes; return what was made."""
    signer = new_signer()
    signers = write_allowed_signers(directory / f"allowed_signers{format}", signer)
    cast = directory / f"{shape}{format}.cast"
    block = terminal_block(PTY_READ)
    start = time.perf_counter()
    rec = new_recorder(cast, signer, format=format)
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
        "format": format,
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
        made: dict[int, dict[str, Any]] = {}
        for format in FORMATS:
            argv = [sys.executable, "-m", "bench.verify", "worker", shape, str(size), str(d)]
            gen = run_child([*argv, str(format)])
            if gen.returncode != 0:
                raise RuntimeError(f"generating the {shape} transcript failed:\n{gen.stderr}")
            made[format] = json.loads(gen.stdout.strip().splitlines()[-1])
            say(
                f"  {shape}, format {format}: {made[format]['file_bytes'] / 1e6:,.0f} MB, "
                f"{made[format]['calls']:,} calls, {made[format]['checkpoints']} checkpoints, "
                f"recorded in {made[format]['generate_seconds']:.1f} s"
            )
        cast = {f: Path(made[f]["file"]) for f in FORMATS}
        signers = {f: Path(made[f]["allowed_signers"]) for f in FORMATS}
        tk2_argv = _toolkit_argv(cast[2], signers[2])
        tk1_argv = _toolkit_argv(cast[1], signers[1])
        ssh_argv = ssh_keygen_verify_argv(signers[2], cast[2])
        for argv in (tk2_argv, tk1_argv):
            _check("toolkit verify", run_child(argv), "SEALED")
        _check("ssh-keygen -Y verify", run_child(ssh_argv, stdin=cast[2]), "Good")
        floor_argv = [sys.executable, "-c", SHA256_FLOOR, str(cast[2])]
        tk2: list[ChildRun] = []
        tk1: list[ChildRun] = []
        ssh: list[ChildRun] = []
        floor: list[ChildRun] = []
        for i in range(opts.verify_runs):
            tk2.append(run_child(tk2_argv))
            ssh.append(run_child(ssh_argv, stdin=cast[2]))
            tk1.append(run_child(tk1_argv))
            floor.append(run_child(floor_argv))
            for run_ in (tk2[-1], tk1[-1]):
                _check("toolkit verify", run_, "SEALED")
            _check("ssh-keygen -Y verify", ssh[-1], "Good")
            say(
                f"    run {i + 1}/{opts.verify_runs}: toolkit format 2 {tk2[-1].wall:.2f} s, "
                f"ssh-keygen {ssh[-1].wall:.2f} s, toolkit format 1 {tk1[-1].wall:.2f} s, "
                f"sha256 floor {floor[-1].wall:.2f} s"
            )
        profile: dict[str, Any] | None = None
        if opts.profile:
            profile = _profile(shape, tk2_argv)
    ratio = median([r.wall for r in tk2]) / median([r.wall for r in ssh])
    versus_format1 = median([r.wall for r in tk2]) / median([r.wall for r in tk1])
    return {
        "shape": shape,
        "made": made[2],
        "made_format1": made[1],
        "toolkit": _stats(tk2),
        "toolkit_format1": _stats(tk1),
        "ssh_keygen": _stats(ssh),
        "sha256_floor": _stats(floor),
        "ratio": ratio,
        "versus_format1": versus_format1,
        "goal": verdict(ratio <= GOAL_RATIO),
        "goal_format1": verdict(versus_format1 < 1.0),
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
        tk, ssh, tk1 = r["toolkit"], r["ssh_keygen"], r["toolkit_format1"]
        rows.append(
            [
                r["shape"],
                round(r["made"]["file_bytes"] / 1e6),
                round(tk["wall"]["median"], 3),
                round(tk["user"]["median"] + tk["sys"]["median"], 2),
                round(tk["max_rss"] / 1e6, 1),
                round(ssh["wall"]["median"], 3),
                round(ssh["user"]["median"] + ssh["sys"]["median"], 2),
                round(r["sha256_floor"]["wall"]["median"], 3),
                round(r["ratio"], 2),
                r["goal"],
                round(tk1["wall"]["median"], 3),
                round(r["versus_format1"], 2),
                r["goal_format1"],
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
                "sha256 floor s",
                "ratio",
                "<=1.3x",
                "format 1 s",
                "f2/f1",
                "<1",
            ],
            rows,
        )
    )
    say(
        f"(format 2 unless said; medians of {opts.verify_runs} runs in turn; CPU = user + sys of "
        "the child; sha256 floor = python hashlib.file_digest of the file, the least any "
        "verifier of format 2 does; format 1 s = toolkit verify of the same content in format 1)"
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
    if len(argv) in (4, 5) and argv[0] == "worker":
        format = int(argv[4]) if len(argv) == 5 else 2
        print(json.dumps(generate(argv[1], int(argv[2]), Path(argv[3]), format)))
        return 0
    say("usage: python -m bench verify (this module is also the worker)", sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
