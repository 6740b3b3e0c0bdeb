"""Session benchmarks against OpenSSH, in one run on this machine.

``bulk``: an audited ``run`` whose command writes N MiB (default 512) of
terminal-like text, against ``ssh`` to a local sshd running the same command.
The agent is a real ``toolkit share`` process; the technician side runs in this
process through the library, records every byte into a signed transcript,
and is timed from sending the request to the response (the connection and
consent are not part of the throughput). ``ssh`` is timed as a whole process;
its connection set-up (the median of ``ssh host true``) is subtracted for the
"net" figure, which the ratio uses (the stricter comparison).

``latency``: ``toolkit share`` started, then ``toolkit connect --batch`` with
one operation, until both processes have exited; against ``ssh host true``.
Median of N runs (default 20).

    .venv/bin/python -m bench.session [bulk|latency] [--quick] [--mib N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench._common import (
    TOOLKIT,
    MiB,
    environment,
    median,
    save,
    say,
    scratch_dir,
    summary,
    table,
    terminal_block,
    verdict,
)
from bench.sshd import available, local_sshd

#: How a benchmark reaches the agent instead: ConsentAsk -> (connection, consent).
Connector = Callable[[Any], Awaitable[tuple[Any, Any]]]
BULK_GOAL = 0.8  # toolkit MB/s / OpenSSH MB/s, at least
LATENCY_GOAL = 2.0  # toolkit time / ssh true time, at most
POLICY = """\
[files]
allow = ["/etc/os-release"]
[commands]
diagnostics = [["cat", "{file}"], ["uptime"]]
[placeholders]
file = "^/[A-Za-z0-9._/-]{1,4000}$"
"""


def _homes(root: Path, who: str) -> dict[str, str]:
    """The environment of one person: their own home and XDG dirs, no ssh-agent."""
    home = root / who
    (home / ".ssh").mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        **{k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"},
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "NO_COLOR": "1",
    }


class Share:
    """A ``toolkit share --yes --json [ARGS]`` process; ``code`` and ``port`` once it is up."""

    def __init__(self, root: Path, policy: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [str(TOOLKIT), "share", "--yes", "--json", "--policy", str(policy), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_homes(root, "customer"),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("toolkit share did not start")
        shown = json.loads(line)
        self.code: str = shown["code"]
        self.port: int = shown["port"]

    def wait(self) -> None:
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _text_file(path: Path, size: int) -> Path:
    block = terminal_block(MiB)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(block)
    return path


async def _audited_cat(
    root: Path, share: Share, data: Path, connector: Connector | None = None
) -> tuple[float, int, int]:
    """Time one audited ``run cat FILE`` through the library; (seconds, bytes, file bytes).

    ``connector`` reaches the agent another way (bench.relay: through a relay).
    """
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from toolkit.consent import Scope, parse_code
    from toolkit.identity.signer import KeySigner
    from toolkit.identity.store import Identity
    from toolkit.session.commands import parse
    from toolkit.session.technician import TechnicianSession
    from toolkit.transport.ssh import ConsentAsk, connect

    who = Identity(
        "Bench Tech", "bench@example.com", KeySigner(ed25519.Ed25519PrivateKey.generate()), "bench"
    )
    ask = ConsentAsk(who, "BENCH-1", frozenset({Scope.DIAGNOSTICS}), parse_code(share.code))
    if connector is None:
        conn, consent = await connect("127.0.0.1", share.port, ask)
    else:
        conn, consent = await connector(ask)
    cast = root / "technician.cast"
    session = await TechnicianSession.start(conn, consent, who, "bench", path=cast)
    received = 0

    def sink(stream: int, chunk: bytes) -> None:
        nonlocal received
        received += len(chunk)

    command = parse(f"run cat {data}")
    assert command is not None
    start = time.perf_counter()
    result = await session.execute(command, sink)
    seconds = time.perf_counter() - start
    await session.end("bench done")
    if result.status != "ok":
        raise RuntimeError(f"the audited run failed: {result.message}")
    size = cast.stat().st_size
    cast.unlink()
    cast.with_name(cast.name + ".sig").unlink()
    return seconds, received, size


def bulk(mib: int, runs: int) -> dict[str, Any]:
    size = mib * MiB
    with scratch_dir("session") as root:
        data = _text_file(root / "output.txt", size)
        policy = root / "policy.toml"
        policy.write_text(POLICY)
        with local_sshd(root / "sshd") as sshd:
            setup = [_timed(sshd.ssh_argv("true")) for _ in range(5)]
            ssh = [_timed(sshd.ssh_argv("cat", str(data))) for _ in range(runs)]
        ours = []
        for _ in range(runs):
            share = Share(root, policy)
            try:
                seconds, received, cast_bytes = asyncio.run(_audited_cat(root, share, data))
            finally:
                share.wait()
            if received != size:
                raise RuntimeError(f"received {received} bytes of {size}")
            ours.append(seconds)
    ssh_net = [max(t - median(setup), 1e-9) for t in ssh]
    rate_ours = size / median(ours) / 1e6
    rate_ssh = size / median(ssh_net) / 1e6
    rate_whole = size / median(ssh) / 1e6
    ratio = rate_ours / rate_ssh
    say(
        table(
            ["what", "median s", "MB/s"],
            [
                [f"toolkit run (audited, {mib} MiB)", f"{median(ours):.2f}", f"{rate_ours:.0f}"],
                [
                    "ssh host cat (whole process)",
                    f"{median(ssh):.2f}",
                    f"{rate_whole:.0f}",
                ],
                ["ssh, minus connection set-up", f"{median(ssh_net):.2f}", f"{rate_ssh:.0f}"],
            ],
        )
    )
    say(f"ratio {ratio:.2f}x OpenSSH (goal >= {BULK_GOAL}x): {verdict(ratio >= BULK_GOAL)}")
    say(f"technician transcript for {mib} MiB of output: {cast_bytes / MiB:.0f} MiB")
    return {
        "mib": mib,
        "toolkit_seconds": summary(ours),
        "ssh_seconds": summary(ssh),
        "ssh_setup_seconds": summary(setup),
        "toolkit_mb_s": rate_ours,
        "ssh_net_mb_s": rate_ssh,
        "ratio": ratio,
        "goal": BULK_GOAL,
        "transcript_bytes": cast_bytes,
    }


def _timed(argv: list[str], **kwargs: Any) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def latency(runs: int) -> dict[str, Any]:
    with scratch_dir("latency") as root:
        policy = root / "policy.toml"
        policy.write_text(POLICY)
        tech = _homes(root, "technician")
        subprocess.run(
            [str(TOOLKIT), "keys", "init", "--name", "Bench Tech", "--email", "b@example.com",
             "--no-keyring", "--no-passphrase"],
            env=tech, check=True, capture_output=True,
        )  # fmt: skip
        batch = root / "batch.txt"
        batch.write_text("run uptime\n")
        with local_sshd(root / "sshd") as sshd:
            ssh = [_timed(sshd.ssh_argv("true")) for _ in range(runs)]
        ours = []
        for _ in range(runs):
            start = time.perf_counter()
            share = Share(root, policy)
            try:
                done = subprocess.run(
                    [str(TOOLKIT), "connect", f"127.0.0.1:{share.port}", "--code", share.code,
                     "--ticket", "BENCH-1", "--batch", str(batch)],
                    env=tech, capture_output=True, check=False,
                )  # fmt: skip
            finally:
                share.wait()
            if done.returncode != 0:
                raise RuntimeError(f"toolkit connect failed: {done.stderr.decode()}")
            ours.append(time.perf_counter() - start)
    ratio = median(ours) / median(ssh)
    say(
        table(
            ["what", "median s", "min s", "max s"],
            [
                ["toolkit share + connect + run + end", *_stats(ours)],
                ["ssh host true", *_stats(ssh)],
            ],
        )
    )
    say(f"ratio {ratio:.2f}x OpenSSH (goal <= {LATENCY_GOAL}x): {verdict(ratio <= LATENCY_GOAL)}")
    return {
        "toolkit_seconds": summary(ours),
        "ssh_seconds": summary(ssh),
        "ratio": ratio,
        "goal": LATENCY_GOAL,
    }


def _stats(values: list[float]) -> list[str]:
    return [f"{median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"]


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.session", description=__doc__)
    p.add_argument("which", nargs="*", help="bulk, latency (default: both)")
    p.add_argument("--quick", action="store_true", help="64 MiB, 3 bulk runs, 5 latency runs")
    p.add_argument("--mib", type=int, help="bulk output in MiB (default 512)")
    p.add_argument("--runs", type=int, help="bulk runs (default 3)")
    p.add_argument("--latency-runs", type=int, help="latency runs (default 20)")
    args = p.parse_args(argv)
    why = available()
    if why is not None:
        say(f"cannot compare with OpenSSH: {why}")
        return 1
    which = args.which or ["bulk", "latency"]
    result: dict[str, Any] = {"environment": environment()}
    if "bulk" in which:
        say("== bulk output of an audited run vs ssh")
        result["bulk"] = bulk(args.mib or (64 if args.quick else 512), args.runs or 3)
    if "latency" in which:
        say("== share + connect + first operation + end vs ssh host true")
        result["latency"] = latency(args.latency_runs or (5 if args.quick else 20))
    say(f"results: {save('session', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
