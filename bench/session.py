"""Session benchmarks against OpenSSH, side by side in one run on this machine.

Every benchmark runs in rounds: each round runs toolkit and each baseline once,
in turn, so that the load of this shared machine, which changes by the minute,
hits all of them alike; the figures are medians over the rounds. OpenSSH runs
against a throwaway sshd on loopback (bench/sshd.py) whose sessions run no
shell start-up file of the user's (a fair baseline).

``bulk``: an audited ``run cat FILE`` of N MiB (default 257) of terminal-like
text. The agent is a real ``toolkit share`` process; the technician side runs
in this process through the library, records every byte into its signed
transcript, and is timed from the request to the response (the transfer, not
the connection). Against, on the same file: ``ssh host cat FILE``, ``ssh``
under ``script`` (util-linux, writing a log file, as a support desk records a
session) and ``ssh`` under ``asciinema rec`` (inside ``script -qec``, which
gives it a terminal); each timed as a whole process minus the same command
line running ``true``. CPU seconds per GiB for each side: the technician and
the agent; ssh (with script or asciinema and their children) and sshd.

``end``: ``toolkit connect --batch`` running ``run cat FILE``, stdout to
/dev/null, as a whole process (against a ``toolkit share`` already waiting),
minus the same with ``run true``; against ``ssh host cat FILE`` and ``ssh``
under ``script``, each minus its ``true``. Also where connect's time goes
(one probe run a round, see below).

``latency``: ``toolkit connect --batch`` with one ``run uptime`` against a
``toolkit share`` already waiting (what the technician waits for), and the
two processes together (share started, then connect, until both exit);
against ``ssh host true``. Then probe runs: where connect's time goes.

A probe run is ``python -m bench.session probe OUT ARGS...``: toolkit's CLI
with timestamps around the steps of a session (the outbox sync at start, the
handshake, the session, the seal, the attach and its parts). It imports every
module it times first, so their import time shows as one step; Python's
start-up counts this module's own imports too.

    .venv/bin/python -m bench.session bulk|end|latency [--quick] [--mib N] [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import inspect
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import (
    TOOLKIT,
    GiB,
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
from bench.sshd import Sshd, available, local_sshd

#: How a benchmark reaches the agent instead: ConsentAsk -> (connection, consent).
Connector = Callable[[Any], Awaitable[tuple[Any, Any]]]
BULK_GOAL = 0.6  # audited MB/s / ``ssh host cat`` MB/s, at least
BULK_SCRIPT_GOAL = 4.0  # ssh under script's time / the audited transfer's, at least
END_GOAL = 0.5  # ``ssh host cat`` net time / audited connect's net time, at least
END_SCRIPT_GOAL = 3.0  # ssh under script's net time / audited connect's net time, at least
LATENCY_GOAL = 2.0  # connect alone / ssh host true, at most
POLICY = """\
[files]
allow = ["/etc/os-release"]
[commands]
diagnostics = [["cat", "{file}"], ["uptime"], ["true"]]
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

    def __init__(self, root: Path, policy: Path, *args: str, toolkit: Path = TOOLKIT) -> None:
        self.proc = subprocess.Popen(
            [str(toolkit), "share", "--yes", "--json", "--policy", str(policy), *args],
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

    def settle(self, quiet: float = 0.05, limit: float = 5.0) -> None:
        """Wait until the process has used no CPU for ``quiet`` seconds: it waits for a
        connection, done loading (a customer reads the code out meanwhile)."""
        deadline = time.monotonic() + limit
        last, since = process_cpu(self.proc.pid), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.01)
            now = process_cpu(self.proc.pid)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def wait(self, timeout: float = 30.0) -> float:
        """Wait for the process to end (killing it after ``timeout``); its CPU seconds.

        The CPU time is the process's and its children's (the commands it ran),
        from wait4: Popen.wait would not give it.
        """
        if self.proc.returncode is not None:
            return 0.0
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.proc.kill()
                _, status, usage = os.wait4(self.proc.pid, 0)
                break
            time.sleep(0.001)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return usage.ru_utime + usage.ru_stime

    def __enter__(self) -> Share:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            self.wait()


def _text_file(path: Path, size: int) -> Path:
    block = terminal_block(MiB)
    with open(path, "wb") as f:
        for _ in range(size // MiB):
            f.write(block)
    return path


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and of the children it waited for, from /proc (0.0 if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


async def _audited_cat(
    root: Path,
    share: Share,
    data: Path,
    connector: Connector | None = None,
    cpu: dict[str, float] | None = None,
) -> tuple[float, int, int]:
    """Time one audited ``run cat FILE`` through the library; (seconds, bytes, file bytes).

    ``connector`` reaches the agent another way (bench.relay: through a relay);
    ``cpu`` gets the technician's and the agent's CPU seconds during the transfer.
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
    before = (_self_cpu(), process_cpu(share.proc.pid))
    start = time.perf_counter()
    result = await session.execute(command, sink)
    seconds = time.perf_counter() - start
    if cpu is not None:
        cpu["technician"] = _self_cpu() - before[0]
        cpu["agent"] = process_cpu(share.proc.pid) - before[1]
    await session.end("bench done")
    if result.status != "ok":
        raise RuntimeError(f"the audited run failed: {result.message}")
    size = cast.stat().st_size
    cast.unlink()
    cast.with_name(cast.name + ".sig").unlink()
    return seconds, received, size


# -- processes, timed with their CPU ---------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One process run: wall seconds, its CPU seconds (children included), the server's."""

    wall: float
    cpu: float
    server_cpu: float = 0.0


def _run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run ``argv`` with stdout to /dev/null; its wall time and CPU (wait4: children too)."""
    with tempfile.TemporaryFile() as err, open(os.devnull, "r+b") as null:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=null, stdout=null, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            why = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{shlex.join(argv)[:200]} failed ({proc.returncode}): {why}")
    return Run(wall, usage.ru_utime + usage.ru_stime)


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


class Baseline:
    """The OpenSSH side: ``ssh host CMD`` bare, under ``script``, under ``asciinema rec``.

    sshd's CPU is the listener's own and its children's (each connection's
    processes, reaped by it), read from /proc once the connection's processes
    are gone.
    """

    def __init__(self, sshd: Sshd, root: Path) -> None:
        self.sshd = sshd
        self.root = root
        self.pid = int((root / "sshd.pid").read_text().split()[0])
        self.asciinema = shutil.which("asciinema")
        self.script = shutil.which("script")

    def _timed(self, argv: list[str]) -> Run:
        before = self._sshd_cpu()
        run = _run(argv)
        return Run(run.wall, run.cpu, self._sshd_cpu() - before)

    def _sshd_cpu(self) -> float:
        if not Path(f"/proc/{self.pid}/task/{self.pid}/children").exists():
            time.sleep(0.2)  # no list of children here: give the connection time to end
        deadline = time.monotonic() + 5
        while _children(self.pid) and time.monotonic() < deadline:
            time.sleep(0.01)  # the connection's processes end just after ssh does
        return process_cpu(self.pid)

    def ssh(self, *command: str) -> Run:
        return self._timed(self.sshd.ssh_argv(*command))

    def under_script(self, *command: str) -> Run:
        """``script -qec "ssh host CMD" LOG``: a terminal, and a log of what it showed."""
        assert self.script is not None
        log = self.root / "script.log"
        try:
            return self._timed(
                [self.script, "-qec", shlex.join(self.sshd.ssh_argv(*command)), str(log)]
            )
        finally:
            log.unlink(missing_ok=True)

    def under_asciinema(self, *command: str) -> Run:
        """``asciinema rec -c "ssh host CMD"`` inside ``script -qec``, which gives it a terminal."""
        assert self.script is not None and self.asciinema is not None
        cast = self.root / "asciinema.cast"
        rec = [self.asciinema, "rec", "-q", "--overwrite", "-c"]
        inner = shlex.join([*rec, shlex.join(self.sshd.ssh_argv(*command)), str(cast)])
        try:
            return self._timed([self.script, "-qec", inner, os.devnull])
        finally:
            cast.unlink(missing_ok=True)


@contextlib.contextmanager
def _baseline(root: Path) -> Iterator[Baseline]:
    with local_sshd(root / "sshd") as sshd:
        if sshd.note:
            say(f"NOTE: {sshd.note}.")
        yield Baseline(sshd, root / "sshd")


def _files(root: Path, size: int) -> tuple[Path, Path]:
    """``size`` bytes of terminal output (readable by anyone, sshd's sessions too), and the
    agent's policy."""
    data = _text_file(root / "output.txt", size)
    data.chmod(0o644)
    root.chmod(0o755)
    policy = root / "policy.toml"
    policy.write_text(POLICY)
    return data, policy


def _net(runs: list[Run], trivial: list[Run]) -> tuple[list[float], list[float], list[float]]:
    """Each run minus the median of the trivial runs: wall, client CPU, server CPU."""
    wall = median([r.wall for r in trivial])
    cpu = median([r.cpu for r in trivial])
    server = median([r.server_cpu for r in trivial])
    return (
        [max(r.wall - wall, 1e-9) for r in runs],
        [r.cpu - cpu for r in runs],
        [r.server_cpu - server for r in runs],
    )


def _measured(runs: dict[str, list[Run]], name: str, net: list[float]) -> dict[str, Any]:
    """Everything measured of one tool and its trivial runs, for the JSON result."""
    trivial = runs[f"{name} true"]
    return {
        "seconds": summary([r.wall for r in runs[name]]),
        "true_seconds": summary([r.wall for r in trivial]),
        "net_seconds": summary(net),
        "cpu": [r.cpu for r in runs[name]],
        "server_cpu": [r.server_cpu for r in runs[name]],
        "true_cpu": [r.cpu for r in trivial],
        "true_server_cpu": [r.server_cpu for r in trivial],
    }


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- bulk ---------------------------------------------------------------------------------


def bulk(mib: int, rounds: int, with_asciinema: bool = True) -> dict[str, Any]:
    size = mib * MiB
    say(f"{_load()} at the start")
    with scratch_dir("session") as root:
        data, policy = _files(root, size)
        ours: list[float] = []
        ours_cpu: list[dict[str, float]] = []
        runs: dict[str, list[Run]] = {}
        with _baseline(root) as base:
            if base.script is None:
                say("NOTE: no `script` (util-linux): the script and asciinema rows are skipped.")
            if with_asciinema and base.asciinema is None:
                say("NOTE: asciinema is not installed (Debian package asciinema, or pip install")
                say("      asciinema): its row is skipped.")
            tools: dict[str, Callable[..., Run]] = {"ssh": base.ssh}
            if base.script is not None:
                tools["script"] = base.under_script
                if with_asciinema and base.asciinema is not None:
                    tools["asciinema"] = base.under_asciinema
            for n in range(rounds):
                cast_bytes = _bulk_toolkit(root, policy, data, ours, ours_cpu)
                for name, tool in tools.items():
                    runs.setdefault(name, []).append(tool("cat", str(data)))
                    runs.setdefault(f"{name} true", []).append(tool("true"))
                    if name == "ssh":  # the stricter set-up figure: more samples
                        runs["ssh true"].append(tool("true"))
                say(f"  round {n + 1}/{rounds}: toolkit {ours[-1]:.2f} s, " + ", ".join(
                    f"{name} {runs[name][-1].wall:.2f} s" for name in tools
                ))  # fmt: skip
    toolkit_s = median(ours)
    rows = [
        [
            f"toolkit run, audited ({mib} MiB)",
            f"{toolkit_s:.2f}",
            f"{size / toolkit_s / 1e6:.0f}",
            "1.00x",
            *_per_gib([c["technician"] for c in ours_cpu], [c["agent"] for c in ours_cpu], size),
        ]
    ]
    report: dict[str, Any] = {
        "mib": mib,
        "rounds": rounds,
        "toolkit_seconds": summary(ours),
        "toolkit_cpu": ours_cpu,
        "toolkit_mb_s": size / toolkit_s / 1e6,
        "transcript_bytes": cast_bytes,
    }
    labels = {
        "ssh": "ssh host cat",
        "script": "ssh under script (log file)",
        "asciinema": "ssh under asciinema rec",
    }
    for name in [n for n in labels if n in runs]:
        wall, cpu, server = _net(runs[name], runs[f"{name} true"])
        seconds = median(wall)
        rows.append(
            [
                f"{labels[name]}, minus its `true`",
                f"{seconds:.2f}",
                f"{size / seconds / 1e6:.0f}",
                f"{seconds / toolkit_s:.2f}x",
                *_per_gib(cpu, server, size),
            ]
        )
        report[name] = {**_measured(runs, name, wall), "time_vs_toolkit": seconds / toolkit_s}
    say(
        table(
            ["what", "median s", "MB/s", "its time / toolkit's", "CPU s/GiB: client", "server"],
            rows,
        )
    )
    say("CPU per GiB of output, medians: client = the technician, or ssh with script or")
    say("asciinema and their children; server = the agent (with cat), or sshd (with cat).")
    ratio = report["ssh"]["net_seconds"]["median"] / toolkit_s
    report.update(ratio=ratio, goal=BULK_GOAL)
    say(f"audited transfer {ratio:.2f}x the speed of ssh host cat (goal >= {BULK_GOAL}x): "
        f"{verdict(ratio >= BULK_GOAL)}")  # fmt: skip
    if "script" in report:
        faster = report["script"]["time_vs_toolkit"]
        report["script_goal"] = BULK_SCRIPT_GOAL
        say(f"audited transfer {faster:.2f}x faster than ssh under script "
            f"(goal >= {BULK_SCRIPT_GOAL}x): {verdict(faster >= BULK_SCRIPT_GOAL)}")  # fmt: skip
    if "asciinema" in report:
        say(f"audited transfer {report['asciinema']['time_vs_toolkit']:.2f}x faster than ssh "
            "under asciinema rec")  # fmt: skip
    say(f"technician transcript for {mib} MiB of output: {cast_bytes / MiB:.0f} MiB")
    say(f"{_load()} at the end")
    return report


def _bulk_toolkit(
    root: Path, policy: Path, data: Path, ours: list[float], ours_cpu: list[dict[str, float]]
) -> int:
    cpu: dict[str, float] = {}
    with Share(root, policy) as share:
        try:
            seconds, received, cast_bytes = asyncio.run(_audited_cat(root, share, data, cpu=cpu))
        finally:
            share.wait()
    if received != data.stat().st_size:
        raise RuntimeError(f"received {received} bytes of {data.stat().st_size}")
    ours.append(seconds)
    ours_cpu.append(cpu)
    return cast_bytes


def _per_gib(client: list[float], server: list[float], size: int) -> list[str]:
    scale = GiB / size
    return [f"{median(client) * scale:.2f}", f"{median(server) * scale:.2f}"]


# -- the end of a session, as a user runs it ---------------------------------------------------


@dataclass
class Technician:
    """A technician's environment with a key, and a fresh ``toolkit share`` per session.

    ``toolkit`` is the command both sides run; ``bench`` a directory holding a
    copy of this package, for probe runs that import the same toolkit.
    """

    root: Path
    policy: Path
    toolkit: Path = TOOLKIT
    bench: Path | None = None
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.env = _homes(self.root, "technician")
        subprocess.run(
            [str(self.toolkit), "keys", "init", "--name", "Bench Tech", "--email", "b@example.com",
             "--no-keyring", "--no-passphrase"],
            env=self.env, check=True, capture_output=True,
        )  # fmt: skip

    def connect(self, command: str, *, probe: Path | None = None, together: bool = False) -> Run:
        """One ``toolkit connect --batch`` session running ``command``, against a fresh share.

        Timed: connect alone (the share already waits, done loading), or with
        ``together`` from the share's start until both have exited (connect
        starts as soon as the code shows). ``server_cpu`` is the share's.
        With ``probe``, connect runs under the probe, which writes its timestamps there.
        """
        batch = self.root / "batch.txt"
        batch.write_text(command + "\n")
        start = time.perf_counter()
        with Share(self.root, self.policy, toolkit=self.toolkit) as share:
            if not together:
                share.settle()
            argv = [str(self.toolkit)]
            if probe is not None:
                python = self.toolkit.with_name("python")
                argv = [str(python), "-m", "bench.session", "probe", str(probe)]
            argv += ["connect", f"127.0.0.1:{share.port}", "--code", share.code,
                     "--ticket", "BENCH-1", "--batch", str(batch)]  # fmt: skip
            try:
                env = dict(self.env, BENCH_SPAWNED=str(time.monotonic()))
                run = _run(argv, env=env, cwd=self.bench if probe is not None else None)
            finally:
                agent = share.wait()
        wall = time.perf_counter() - start if together else run.wall
        self.clean()
        return Run(wall, run.cpu, agent)

    def clean(self) -> None:
        """Remove both sides' transcripts, tickets and outbox (hundreds of MB a session)."""
        for who in ("technician", "customer"):
            data = self.root / who / ".local/share/toolkit"
            for name in ("transcripts", "tickets", "outbox"):
                shutil.rmtree(data / name, ignore_errors=True)


def _technician(root: Path, policy: Path, checkout: bool) -> Technician:
    """Both sides as a user runs them: this checkout installed (compiled), unless ``checkout``.

    The checkout itself runs editable and, with PYTHONDONTWRITEBYTECODE set as
    here, compiles toolkit's modules at every start (bench.startup).
    """
    if checkout:
        say("NOTE: --checkout: toolkit runs from this checkout (no .pyc if not written).")
        return Technician(root, policy)
    from bench.startup import install

    toolkit = install(root / "installed")
    bench = root / "probe"
    shutil.copytree(Path(__file__).parent, bench / "bench", ignore=shutil.ignore_patterns(
        "results", "__pycache__"
    ))  # fmt: skip
    return Technician(root, policy, toolkit, bench)


def end(mib: int, rounds: int, checkout: bool = False) -> dict[str, Any]:
    size = mib * MiB
    say(f"{_load()} at the start")
    with scratch_dir("end") as root:
        data, policy = _files(root, size)
        tech = _technician(root, policy, checkout)
        runs: dict[str, list[Run]] = {}
        phases: list[dict[str, float]] = []
        with _baseline(root) as base:
            tools: dict[str, Callable[..., Run]] = {"ssh": base.ssh}
            if base.script is not None:
                tools["script"] = base.under_script
            else:
                say("NOTE: no `script` (util-linux): its row is skipped.")
            for n in range(rounds):
                runs.setdefault("toolkit", []).append(tech.connect(f"run cat {data}"))
                runs.setdefault("toolkit true", []).append(tech.connect("run true"))
                for name, tool in tools.items():
                    runs.setdefault(name, []).append(tool("cat", str(data)))
                    runs.setdefault(f"{name} true", []).append(tool("true"))
                probe = root / "probe.json"
                tech.connect(f"run cat {data}", probe=probe)
                phases.append(_phases(probe))
                say(f"  round {n + 1}/{rounds}: " + ", ".join(
                    f"{name} {runs[name][-1].wall:.2f} s" for name in ("toolkit", *tools)
                ))  # fmt: skip
    labels = {
        "toolkit": "toolkit connect --batch, run cat",
        "ssh": "ssh host cat",
        "script": "ssh under script (log file)",
    }
    nets = {name: _net(runs[name], runs[f"{name} true"]) for name in labels if name in runs}
    toolkit_net = median(nets["toolkit"][0])
    rows = []
    report: dict[str, Any] = {"mib": mib, "rounds": rounds}
    for name, (wall, cpu, server) in nets.items():
        seconds = median(wall)
        rows.append(
            [
                labels[name],
                f"{median([r.wall for r in runs[name]]):.2f}",
                f"{median([r.wall for r in runs[f'{name} true']]):.2f}",
                f"{seconds:.2f}",
                f"{size / seconds / 1e6:.0f}",
                f"{seconds / toolkit_net:.2f}x",
                *_per_gib(cpu, server, size),
            ]
        )
        report[name] = _measured(runs, name, wall)
    say(
        table(
            ["whole process", "median s", "trivial s", "net s", "MB/s", "net / toolkit's",
             "CPU s/GiB: client", "server"],
            rows,
        )
    )  # fmt: skip
    say("trivial: the same with `run true` / `ssh host true`; net: median minus trivial.")
    ratio = median(nets["ssh"][0]) / toolkit_net
    report.update(ratio=ratio, goal=END_GOAL, phases=phases)
    say(f"audited connect {ratio:.2f}x the speed of ssh host cat, whole processes net "
        f"(goal >= {END_GOAL}x): {verdict(ratio >= END_GOAL)}")  # fmt: skip
    if "script" in nets:
        faster = median(nets["script"][0]) / toolkit_net
        report.update(script_ratio=faster, script_goal=END_SCRIPT_GOAL)
        say(f"audited connect {faster:.2f}x faster than ssh under script "
            f"(goal >= {END_SCRIPT_GOAL}x): {verdict(faster >= END_SCRIPT_GOAL)}")  # fmt: skip
    _show_phases(phases, "where connect's time goes (probe runs of run cat, medians)")
    say(f"{_load()} at the end")
    return report


# -- connection latency -----------------------------------------------------------------------


def latency(rounds: int, probes: int, checkout: bool = False) -> dict[str, Any]:
    say(f"{_load()} at the start")
    with scratch_dir("latency") as root:
        policy = root / "policy.toml"
        policy.write_text(POLICY)
        tech = _technician(root, policy, checkout)
        alone: list[Run] = []
        together: list[Run] = []
        ssh: list[Run] = []
        with _baseline(root) as base:
            base.ssh("true")  # warm-up, as toolkit's first run below
            tech.connect("run uptime")
            for _ in range(rounds):
                alone.append(tech.connect("run uptime"))
                together.append(tech.connect("run uptime", together=True))
                ssh.append(base.ssh("true"))
        phases = []
        for _ in range(probes):
            probe = root / "probe.json"
            tech.connect("run uptime", probe=probe)
            phases.append(_phases(probe))
    walls = {
        "toolkit connect (share waiting)": [r.wall for r in alone],
        "toolkit share + connect, both to exit": [r.wall for r in together],
        "ssh host true": [r.wall for r in ssh],
    }
    say(
        table(
            ["what", "median s", "min s", "max s", "CPU s"],
            [
                [name, *_stats(values), f"{median(cpu):.3f}"]
                for (name, values), cpu in zip(
                    walls.items(),
                    [[r.cpu for r in alone], [r.cpu for r in together], [r.cpu for r in ssh]],
                    strict=True,
                )
            ],
        )
    )
    ssh_s = median(walls["ssh host true"])
    ratio = median(walls["toolkit connect (share waiting)"]) / ssh_s
    both = median(walls["toolkit share + connect, both to exit"]) / ssh_s
    say(f"connect alone {ratio:.2f}x ssh host true (goal <= {LATENCY_GOAL}x): "
        f"{verdict(ratio <= LATENCY_GOAL)}; share + connect {both:.2f}x")  # fmt: skip
    _show_phases(phases, "where connect's time goes (probe runs, medians)")
    say(f"{_load()} at the end")
    return {
        "connect_seconds": summary(walls["toolkit connect (share waiting)"]),
        "together_seconds": summary(walls["toolkit share + connect, both to exit"]),
        "ssh_seconds": summary(walls["ssh host true"]),
        "connect_cpu": [r.cpu for r in alone],
        "ssh_cpu": [r.cpu for r in ssh],
        "ratio": ratio,
        "together_ratio": both,
        "goal": LATENCY_GOAL,
        "phases": phases,
    }


def _stats(values: list[float]) -> list[str]:
    return [f"{median(values):.3f}", f"{min(values):.3f}", f"{max(values):.3f}"]


# -- the probe: connect with timestamps around its steps ---------------------------------------

#: What the probe times: "module:attribute" (a function, or Class.method).
PROBED = (
    "toolkit.tickets.attach:sync_quietly",
    "toolkit.transport.ssh:connect",
    "toolkit.session.technician:TechnicianSession.start",
    "toolkit.session.technician:TechnicianSession.execute",
    "toolkit.session.technician:TechnicianSession.end",
    "toolkit.transcript.recorder:Recorder.close",
    "toolkit.tickets.attach:attach_transcript",
    "toolkit.tickets.plugins:open_backend",
    "toolkit.tickets.outbox:Outbox.enqueue",
    "toolkit.tickets.outbox:Outbox.deliver",
    "toolkit.tickets.summary:verdict",
    "toolkit.tickets.summary:comment",
)
#: The steps shown, each from one mark to the next: (name, the mark it ends at).
STEPS = (
    ("Python start-up", "started"),
    ("imports (all the session's, at once here)", "imported"),
    ("reading the command line", "toolkit.tickets.attach:sync_quietly >"),
    ("outbox sync at start", "toolkit.tickets.attach:sync_quietly <"),
    ("imports for the session", "toolkit.transport.ssh:connect >"),
    ("SSH handshake and consent", "toolkit.transport.ssh:connect <"),
    ("session start (hello, transcript)", "toolkit.session.technician:TechnicianSession.start <"),
    ("the command", "toolkit.session.technician:TechnicianSession.execute <"),
    ("end request", "toolkit.transcript.recorder:Recorder.close >"),
    ("seal", "toolkit.transcript.recorder:Recorder.close <"),
    ("open the ticket backend", "toolkit.tickets.plugins:open_backend <"),
    ("into the outbox", "toolkit.tickets.outbox:Outbox.enqueue <"),
    ("verify before upload", "toolkit.tickets.summary:verdict <"),
    ("the comment's operations", "toolkit.tickets.summary:comment <"),
    ("attach and read back", "toolkit.tickets.outbox:Outbox.deliver <"),
    ("after attach, to the command's return", "returned"),
    ("exit", "exited"),
)


def probe(out: Path, args: list[str]) -> int:
    """Run ``toolkit ARGS`` in this process with timestamps around :data:`PROBED`."""
    spawned = float(os.environ.pop("BENCH_SPAWNED", "nan"))
    marks: list[tuple[str, float]] = []

    def mark(name: str) -> None:
        marks.append((name, time.monotonic()))

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def timed_async(*a: Any, **k: Any) -> Any:
                mark(f"{name} >")
                try:
                    return await fn(*a, **k)
                finally:
                    mark(f"{name} <")

            return timed_async

        @functools.wraps(fn)
        def timed(*a: Any, **k: Any) -> Any:
            mark(f"{name} >")
            try:
                return fn(*a, **k)
            finally:
                mark(f"{name} <")

        return timed

    mark("started")
    patched: dict[int, Callable[..., Any]] = {}  # id of the original -> its timed stand-in
    for target in PROBED:
        module, _, attr = target.partition(":")
        owner: Any = __import__(module, fromlist=["_"])
        *path, last = attr.split(".")
        for part in path:
            owner = getattr(owner, part)
        raw = vars(owner).get(last)
        if raw is None:
            continue  # gone from the code: its step shows as nothing
        if isinstance(raw, classmethod):
            setattr(owner, last, classmethod(wrap(target, raw.__func__)))
        else:
            setattr(owner, last, wrap(target, raw))
            patched[id(raw)] = getattr(owner, last)
    for loaded in list(sys.modules.values()):  # names bound by `from X import f [as g]`
        for name, value in list(vars(loaded).items()):
            if id(value) in patched and callable(value) and value is not patched[id(value)]:
                setattr(loaded, name, patched[id(value)])
    mark("imported")
    import atexit

    from toolkit.cli import run

    def write() -> None:
        mark("exited")
        out.write_text(json.dumps({"spawned": spawned, "marks": marks}))

    atexit.register(write)
    code = run(args)
    mark("returned")
    return code


def _phases(path: Path) -> dict[str, float]:
    """A probe's marks as seconds per step of :data:`STEPS` (a step not seen is 0)."""
    raw = json.loads(path.read_text())
    seen: dict[str, float] = {}
    for name, t in raw["marks"]:
        seen.setdefault(name, t)  # the first time: sync's deliver comes before the session's
    out: dict[str, float] = {}
    last = raw["spawned"]
    for step, at in STEPS:
        if at in seen and seen[at] >= last:
            out[step] = seen[at] - last
            last = seen[at]
        else:
            out[step] = 0.0
    out["total"] = last - raw["spawned"]
    return out


def _show_phases(phases: list[dict[str, float]], title: str) -> None:
    if not phases:
        return
    say(title + ":")
    rows = [[name, f"{median([p[name] for p in phases]) * 1000:.0f}"] for name in phases[0]]
    say(table(["step", "ms"], rows))


def main(argv: list[str]) -> int:
    if argv[:1] == ["probe"]:  # one connect under the probe (see the module doc)
        return probe(Path(argv[1]), argv[2:])
    p = argparse.ArgumentParser(prog="python -m bench.session", description=__doc__)
    p.add_argument("which", nargs="*", help="bulk, end, latency (default: all three)")
    p.add_argument(
        "--quick", action="store_true", help="64 MiB and 2 rounds; latency: 5 rounds, 3 probes"
    )
    p.add_argument("--mib", type=int, help="output of bulk and end in MiB (default 257)")
    p.add_argument("--rounds", type=int, help="rounds (default: bulk 5, end 5, latency 20)")
    p.add_argument("--probes", type=int, help="latency's probe runs (default 10)")
    p.add_argument("--no-asciinema", action="store_true", help="bulk: skip the asciinema row")
    p.add_argument(
        "--checkout",
        action="store_true",
        help="end, latency: run this checkout's toolkit, not a compiled install of it",
    )
    args = p.parse_args(argv)
    why = available()
    if why is not None:
        say(f"cannot compare with OpenSSH: {why}")
        return 1
    which = args.which or ["bulk", "end", "latency"]
    for name in which:
        if name not in ("bulk", "end", "latency"):
            p.error(f"unknown benchmark {name!r}: choose from bulk, end, latency")
    mib = args.mib or (64 if args.quick else 257)
    rounds = args.rounds or (2 if args.quick else 5)
    result: dict[str, Any] = {"environment": environment()}
    if "bulk" in which:
        say("== bulk output: an audited run against ssh, ssh under script and asciinema")
        result["bulk"] = bulk(mib, rounds, not args.no_asciinema)
    if "end" in which:
        say("== the end of a session: connect --batch, run cat, as a user runs it")
        result["end"] = end(mib, rounds, args.checkout)
    if "latency" in which:
        say("== connection latency: connect (share waiting) against ssh host true")
        lat_rounds = args.rounds or (5 if args.quick else 20)
        probes = args.probes or (3 if args.quick else 10)
        result["latency"] = latency(lat_rounds, probes, args.checkout)
    result["loadavg_after"] = list(os.getloadavg())
    say(f"results: {save('session', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
