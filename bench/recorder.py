"""Recorder throughput and memory: many small events, and 1 GiB of output.

Each scenario runs in a fresh process (``python -m bench.recorder worker ...``)
so that peak RSS belongs to that scenario alone. The timed part is from the
first event to the return of ``close()`` (the seal and its fsyncs included);
making the key, the header and the file is not timed. The recorder runs with
its defaults: a signed checkpoint and an fsync every 1000 events or 5 s.

Scenarios:

- ``small``: N x ``rec.output(b"x" * 16)``.
- ``mixed``: N events in a repeating pattern of ten: 7 x ``rec.output`` of a
  16-byte line (``b"total 42 files\\r\\n"``), 2 x ``rec.input(b"l")``, and
  1 x ``rec.event("operation", op="run", argv=["ls", "-l"], exit_status=0,
  index=i)``.
- ``bulk``: B bytes of terminal-like output (ASCII lines with CR LF, some
  UTF-8 and ANSI colour) as ``rec.output`` calls of 4096 bytes (a PTY read).
  RSS is sampled every 128 MiB of output to show it stays flat.
"""

from __future__ import annotations

import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path
from typing import Any

from bench._common import (
    MiB,
    Options,
    fit_to_disk,
    mb,
    median,
    new_recorder,
    new_signer,
    peak_rss,
    rss_now,
    run_worker,
    say,
    scratch_dir,
    table,
    terminal_block,
    verdict,
)

GOAL_EVENTS_PER_S = 300_000
GOAL_PEAK_RSS = 100_000_000  # bytes ("100 MB")
FLAT_TOLERANCE = 4_000_000  # bytes: RSS samples from 128 MiB on may differ this much
PTY_READ = 4096
SAMPLE_EVERY = 128 * MiB
SCENARIOS = ("small", "mixed", "bulk")


# -- the worker: one scenario in this (fresh) process ------------------------------


def _small(rec: Any, n: int, samples: list[tuple[int, int | None]]) -> int:
    output = rec.output
    data = b"x" * 16
    every = max(n // 8, 1)
    for i in range(n):
        output(data)
        if i % every == every - 1:
            samples.append((i + 1, rss_now()))
    return 16 * n


def _mixed(rec: Any, n: int, samples: list[tuple[int, int | None]]) -> int:
    line = b"total 42 files\r\n"
    key = b"l"
    every = max(n // 8, 1)
    n_bytes = 0
    for i in range(n):
        kind = i % 10
        if kind < 7:
            rec.output(line)
            n_bytes += len(line)
        elif kind < 9:
            rec.input(key)
            n_bytes += 1
        else:
            rec.event("operation", op="run", argv=["ls", "-l"], exit_status=0, index=i)
        if i % every == every - 1:
            samples.append((i + 1, rss_now()))
    return n_bytes


def _bulk(rec: Any, total: int, samples: list[tuple[int, int | None]]) -> int:
    block = terminal_block(PTY_READ)
    output = rec.output
    done = 0
    next_sample = SAMPLE_EVERY
    while done < total:
        output(block)
        done += PTY_READ
        if done >= next_sample:
            samples.append((done, rss_now()))
            next_sample += SAMPLE_EVERY
    return done


def worker(scenario: str, count: int, directory: Path, profile_to: Path | None) -> dict[str, Any]:
    body = {"small": _small, "mixed": _mixed, "bulk": _bulk}[scenario]
    signer = new_signer()
    path = directory / f"{scenario}.cast"
    rec = new_recorder(path, signer)
    samples: list[tuple[int, int | None]] = [(0, rss_now())]
    profiler = cProfile.Profile() if profile_to else None
    start = time.perf_counter()
    cpu_start = time.process_time()
    if profiler:
        profiler.enable()
    n_bytes = body(rec, count, samples)
    rec.close("completed")
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak = peak_rss()
    # After the measurement: events actually written (for bulk, lines).
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(MiB):
            lines += chunk.count(b"\n")
    result: dict[str, Any] = {
        "scenario": scenario,
        "count": count,
        "calls": count if scenario != "bulk" else count // PTY_READ,
        "input_bytes": n_bytes,
        "file_bytes": path.stat().st_size,
        "lines": lines,
        "checkpoints": getattr(rec, "_seq", None),
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss": peak,
        "rss_samples": samples,
    }
    if profiler and profile_to:
        profiler.dump_stats(profile_to)
        result["profile_file"] = str(profile_to)
        result["profile_top"] = top_functions(pstats.Stats(str(profile_to)))
    return result


def top_functions(stats: pstats.Stats, limit: int = 15) -> list[str]:
    """The ``limit`` functions with the most own time, as pstats prints them."""
    buf = io.StringIO()
    stats.stream = buf  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(limit)
    text = buf.getvalue()
    start = text.find("ncalls")
    return [line for line in text[start:].splitlines() if line.strip()] if start >= 0 else []


# -- the parent: fresh processes, medians, the table -------------------------------------


def run(opts: Options) -> dict[str, Any]:
    say("== recorder: events/s, MB/s and peak RSS (each run a fresh process) ==")
    root = opts.scratch_root()
    output_bytes = fit_to_disk(opts.output_bytes, root, 1.3, "the bulk recording")
    counts = {"small": opts.events, "mixed": opts.events, "bulk": output_bytes}
    runs: dict[str, list[dict[str, Any]]] = {}
    profiles: dict[str, Any] = {}
    for scenario in SCENARIOS:
        runs[scenario] = []
        for i in range(opts.repeat):
            with scratch_dir("recorder", root) as d:
                r = run_worker("bench.recorder", scenario, str(counts[scenario]), str(d))
            runs[scenario].append(r)
            say(
                f"  {scenario} run {i + 1}/{opts.repeat}: {r['seconds']:.2f} s, "
                f"peak RSS {mb(r['peak_rss']):.1f} MiB"
            )
        if opts.profile:
            from bench._common import RESULTS

            RESULTS.mkdir(exist_ok=True)
            prof = RESULTS / f"recorder-{scenario}.prof"
            with scratch_dir("recorder", root) as d:
                r = run_worker(
                    "bench.recorder",
                    scenario,
                    str(counts[scenario]),
                    str(d),
                    "--profile",
                    str(prof),
                )
            profiles[scenario] = {"file": str(prof), "top": r["profile_top"]}

    rows: list[list[object]] = []
    summary: dict[str, Any] = {}
    for scenario, results in runs.items():
        secs = [r["seconds"] for r in results]
        eps = [r["lines"] / r["seconds"] for r in results]
        calls_ps = [r["calls"] / r["seconds"] for r in results]
        calls_cpu = [r["calls"] / r["cpu_seconds"] for r in results]
        in_mbs = [r["input_bytes"] / r["seconds"] / 1e6 for r in results]
        file_mbs = [r["file_bytes"] / r["seconds"] / 1e6 for r in results]
        peak = max(r["peak_rss"] for r in results)
        samples = [s for r in results for s in _flat_part(r)]
        spread = (max(samples) - min(samples)) if samples else None
        ok_rate = median(calls_ps) >= GOAL_EVENTS_PER_S if scenario != "bulk" else None
        ok_rss = peak < GOAL_PEAK_RSS and (spread is None or spread <= FLAT_TOLERANCE)
        summary[scenario] = {
            "seconds_median": median(secs),
            "calls_per_s_median": median(calls_ps),
            "calls_per_cpu_s_median": median(calls_cpu),
            "lines_per_s_median": median(eps),
            "input_mb_per_s_median": median(in_mbs),
            "file_mb_per_s_median": median(file_mbs),
            "peak_rss_max": peak,
            "rss_spread_after_first_sample": spread,
            "goal_events_per_s": verdict(ok_rate),
            "goal_rss": verdict(ok_rss),
        }
        rows.append(
            [
                scenario,
                results[0]["calls"],
                round(median(secs), 2),
                round(median(calls_ps)),
                round(median(calls_cpu)),
                round(median(in_mbs), 1),
                round(median(file_mbs), 1),
                round(peak / 1e6, 1),
                "-" if spread is None else round(spread / 1e6, 2),
                verdict(ok_rate),
                verdict(ok_rss),
            ]
        )
    say()
    say(
        table(
            [
                "scenario",
                "calls",
                "s",
                "calls/s",
                "calls/CPU-s",
                "in MB/s",
                "file MB/s",
                "peak RSS MB",
                "RSS spread MB",
                ">=300k/s",
                "RSS<100MB flat",
            ],
            rows,
        )
    )
    bulk = runs["bulk"][len(runs["bulk"]) // 2]
    say()
    say("bulk: RSS every 128 MiB of output (one run):")
    say(
        table(
            ["output MiB", "RSS MB"],
            [[done // MiB, round((rss or 0) / 1e6, 1)] for done, rss in bulk["rss_samples"]],
        )
    )
    say(
        f"(MB = 10^6 bytes; calls = recorder method calls; the file also holds "
        f"{bulk['checkpoints']} checkpoints for bulk; median of {opts.repeat} fresh processes; "
        "calls/CPU-s divides by the process's CPU time, which other work disturbs less)"
    )
    for scenario, prof in profiles.items():
        say()
        say(f"cProfile of one {scenario} run (own time, top 15; {prof['file']}):")
        for line in prof["top"]:
            say("  " + line)
    return {"counts": counts, "summary": summary, "runs": runs, "profiles": profiles}


def _flat_part(result: dict[str, Any]) -> list[int]:
    """RSS samples from the first in-loop sample on (the first 1/8 or 128 MiB)."""
    return [rss for _, rss in result["rss_samples"][1:] if rss is not None]


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "worker":
        profile_to = Path(argv[5]) if len(argv) >= 6 and argv[4] == "--profile" else None
        result = worker(argv[1], int(argv[2]), Path(argv[3]), profile_to)
        print(json.dumps(result))
        return 0
    say("usage: python -m bench recorder (this module is also the worker)", sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
