"""Relay benchmarks, in one run on this machine (docs/relay.md, issue 5).

``bulk``: an audited ``run cat FILE`` (N MiB, default 256, terminal-like text)
through ``toolkit relay`` and through an OpenSSH bastion (docs/relay.md's
exact configuration), against plain OpenSSH through the same bastion: the
customer's ``ssh -R SOCKET:127.0.0.1:SSHD`` exposes an sshd, and the
technician's ``ssh -L PORT:SOCKET bastion`` and ``ssh -p PORT customer cat FILE``
run the same command through it (OpenSSH 9.2's ``-W`` takes no socket path).
The agent is a real ``toolkit share --relay`` process; the technician side
runs in this process through the library (recording every byte into a signed
transcript) and is timed from the request to the response. ``ssh`` is timed
as a whole process, minus its set-up (the median of the same chain running
``true``). Each round runs the three paths in turn, so that load on this
machine hits them alike; the medians of the rounds are compared.

``idle``: a ``toolkit relay`` process holding 1,000 idle rendezvous (agents
that registered and wait), then 100 active sessions on top (agents and
technicians in a client process, each session running a command every
second): the relay's RSS per rendezvous and its CPU use.

    .venv/bin/python -m bench.relay [bulk|idle] [--quick] [--mib N] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import resource
import select
import shutil
import socket as socketlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

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
from bench.session import Share, _audited_cat, _children, _homes, _self_cpu, process_cpu
from bench.sshd import Bastion, available, bastion_sshd, free_port, local_sshd

#: Audited toolkit MB/s / plain OpenSSH MB/s through the same relay, at least.
BULK_GOALS = {"toolkit relay": 1.5, "OpenSSH relay": 1.0}
IDLE_GOAL_MB = 200.0  # relay RSS with 1,000 idle rendezvous, at most
POLICY = """\
[commands]
diagnostics = [["cat", "{file}"], ["true"], ["head", "-c", "{n}", "/dev/zero"]]
[placeholders]
file = "^/[A-Za-z0-9._/-]{1,4000}$"
n = "^[0-9]{1,9}$"
"""
ALIAS = "bench-bastion"


# -- people and processes ------------------------------------------------------------


def _ssh_key(env: dict[str, str]) -> tuple[Path, str]:
    path = Path(env["HOME"]) / ".ssh" / "id_ed25519"
    if not path.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path, path.with_name("id_ed25519.pub").read_text()


def _trust(env: dict[str, str], line: str) -> None:
    with (Path(env["HOME"]) / ".ssh" / "known_hosts").open("a") as f:
        f.write(line)


@contextmanager
def toolkit_relay(env: dict[str, str], key: Path, *extra: str) -> Iterator[tuple[int, int]]:
    """A ``toolkit relay`` process on loopback; (port, pid)."""
    proc = subprocess.Popen(
        [str(TOOLKIT), "relay", "--listen", "127.0.0.1:0", "--host-key", str(key), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("toolkit relay did not start")
        # Nobody reads the log from here on: keep it from filling the pipe.
        drain = subprocess.Popen(["cat"], stdin=proc.stdout, stdout=subprocess.DEVNULL)
        yield int(json.loads(line)["port"]), proc.pid
    finally:
        proc.terminate()
        proc.wait(10)
        drain.wait(10)


def _through(
    root: Path,
    technician: dict[str, str],
    relay: list[str],
    route: Any,
    data: Path,
    relay_cpu: Callable[[], float],
) -> tuple[float, dict[str, float]]:
    """One audited run through a relay, with a fresh share; the technician is this process.

    Returns the seconds and each side's CPU seconds from the connection to the
    session's end: technician, agent, and the relay (``relay_cpu``).
    """
    from toolkit.transport.relay import connect_through

    share = Share(root, root / "policy.toml", *relay)  # the customer's own environment
    saved = {k: os.environ.get(k) for k in ("HOME", "SSH_AUTH_SOCK")}
    os.environ["HOME"] = technician["HOME"]  # its known_hosts, its ssh key
    os.environ.pop("SSH_AUTH_SOCK", None)
    before: dict[str, float] = {}

    async def through(ask: Any) -> tuple[Any, Any]:
        before.update(technician=_self_cpu(), agent=process_cpu(share.proc.pid), relay=relay_cpu())
        return await connect_through(route, ask)

    try:
        try:
            seconds, received, _ = asyncio.run(_audited_cat(root, share, data, through))
            after = {
                "technician": _self_cpu(),
                "agent": process_cpu(share.proc.pid),  # a zombie until reaped: still there
                "relay": relay_cpu(),
            }
        finally:
            share.wait()
        if received != data.stat().st_size:
            raise RuntimeError(f"received {received} bytes of {data.stat().st_size}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return seconds, {k: after[k] - before[k] for k in after}


def _timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {done.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 on: [0] state, [1] ppid, [11:15] CPU ticks, [19] start."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


class CpuWatch:
    """CPU seconds of process trees, counting processes that have ended (sshd's sessions).

    An sshd session's processes end without their time reaching the listener
    (the privileged monitor does not wait for its child), so a helper process
    (``python -m bench.relay watch PID...``) samples every process under each
    root every 0.1 s and keeps the last CPU time seen of each: a process loses
    at most its last 0.1 s, and one shorter than that is missed (for ``ssh
    host cat`` of 256 MiB, 0.24-0.33 s sampled against 0.33-0.38 s that its
    sshd reaped). Exact for processes that run throughout.
    """

    def __init__(self, roots: list[int | None]) -> None:
        self.roots = [r for r in roots if r is not None]
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.relay", "watch", *map(str, self.roots)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self) -> dict[int, float]:
        """CPU seconds so far under each root."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write("\n")
        self._proc.stdin.flush()
        return {int(k): v for k, v in json.loads(self._proc.stdout.readline()).items()}

    def of(self, root: int | None) -> float:
        """CPU seconds so far under one root (0.0 for None: not known)."""
        return 0.0 if root is None else self.read().get(root, 0.0)

    def close(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        self._proc.wait(10)


def _watch(roots: list[int]) -> int:
    """CpuWatch's helper: a sample every 0.1 s; each line on stdin gets the sums as JSON."""
    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[int, dict[tuple[int, str], float]] = {root: {} for root in roots}

    def sample() -> None:
        stats: dict[int, list[str]] = {}
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    stats[int(entry)] = fields = _stat(int(entry))
                    children.setdefault(int(fields[1]), []).append(int(entry))
        for root, times in seen.items():
            stack = [root] if root in stats else []
            while stack:
                pid = stack.pop()
                fields = stats[pid]
                times[(pid, fields[19])] = (int(fields[11]) + int(fields[12])) / tick
                stack += children.get(pid, [])

    while True:
        asked, _, _ = select.select([sys.stdin], [], [], 0.1)
        sample()
        if asked:
            if not sys.stdin.readline():
                return 0
            print(json.dumps({r: sum(t.values()) for r, t in seen.items()}), flush=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _sshd_pid(workdir: Path) -> int | None:
    """The listening sshd of bench.sshd's ``local_sshd(workdir)`` (its PidFile), if known."""
    with contextlib.suppress(OSError, ValueError):
        return int((workdir / "sshd.pid").read_text().split()[0])
    return None


@dataclass
class Plain:
    """Plain OpenSSH through the bastion: the ssh argv, and the processes that carry it."""

    argv: list[str]
    pids: tuple[int, int, int | None]  # ssh -R, ssh -L, the customer's sshd


@contextmanager
def _plain_openssh(root: Path, bastion: Bastion, key: Path) -> Iterator[Plain]:
    """An sshd behind ``ssh -R SOCKET`` at the bastion, reached with ``ssh -L``."""
    socket = bastion.socket_dir / "plain-ssh"
    common = [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "LogLevel=ERROR",
        "-o",
        f"UserKnownHostsFile={root / 'bastion_known_hosts'}",
        "-i",
        str(key),
    ]
    (root / "bastion_known_hosts").write_text(bastion.known_hosts_line())
    with local_sshd(root / "customer-sshd") as customer:
        if customer.note is not None:
            say(f"NOTE: {customer.note}")

        def forwarding(flag: str, spec: str) -> subprocess.Popen[bytes]:
            argv = ["ssh", *common, "-N", "-o", "ExitOnForwardFailure=yes"]
            return subprocess.Popen(
                [*argv, "-p", str(bastion.port), flag, spec, f"{bastion.user}@127.0.0.1"]
            )

        reverse = forwarding("-R", f"{socket}:127.0.0.1:{customer.port}")
        try:
            for _ in range(100):
                if socket.exists():
                    break
                time.sleep(0.05)
            else:
                raise RuntimeError("ssh -R did not bind its socket at the bastion")
            local = free_port()
            forward = forwarding("-L", f"127.0.0.1:{local}:{socket}")
            try:
                for _ in range(100):
                    with contextlib.suppress(OSError):
                        socketlib.create_connection(("127.0.0.1", local), timeout=1).close()
                        break
                    time.sleep(0.05)
                argv = customer.ssh_argv()
                at = argv.index("-p")
                argv[at + 1] = str(local)  # the customer's sshd, through the bastion
                sshd = _sshd_pid(root / "customer-sshd")
                yield Plain(argv, (reverse.pid, forward.pid, sshd))
            finally:
                forward.terminate()
                forward.wait(10)
        finally:
            reverse.terminate()
            reverse.wait(10)


def bulk(mib: int, runs: int) -> dict[str, Any]:
    from toolkit.transport.relay import RelayAddress, RelayRoute

    size = mib * MiB
    with scratch_dir("relay") as root:
        root.chmod(0o755)
        data = root / "output.txt"
        block = terminal_block(MiB)
        with data.open("wb") as f:
            for _ in range(mib):
                f.write(block)
        (root / "policy.toml").write_text(POLICY)
        # "customer" is where bench.session's Share keeps the customer's HOME.
        technician, customer, operator = (_homes(root, w) for w in ("tech", "customer", "oper"))
        keys = [_ssh_key(technician), _ssh_key(customer)]
        relay_key = root / "relay_host_key"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(relay_key)], check=True
        )
        public = " ".join(relay_key.with_name("relay_host_key.pub").read_text().split()[:2])
        paths: dict[str, tuple[list[str], RelayRoute, int | None]] = {}
        setup: list[float] = []
        plain: list[float] = []
        setup_cpu: list[dict[str, float]] = []
        plain_cpu: list[dict[str, float]] = []
        with (
            toolkit_relay(operator, relay_key) as (port, relay_pid),
            bastion_sshd([k[1] for k in keys]) as bastion,
        ):
            bastion_pid = _sshd_pid(bastion.socket_dir.parent / "sshd")
            paths["toolkit relay"] = (
                ["--relay", f"127.0.0.1:{port}"],
                RelayRoute(RelayAddress("127.0.0.1", port=port)),
                relay_pid,
            )
            paths["OpenSSH relay"] = (
                ["--relay", ALIAS, "--relay-dir", str(bastion.socket_dir)],
                RelayRoute(RelayAddress(ALIAS), socket_dir=str(bastion.socket_dir)),
                bastion_pid,
            )
            for env in (technician, customer):
                _trust(env, f"[127.0.0.1]:{port} {public}\n")
                _trust(env, bastion.known_hosts_line())
                (Path(env["HOME"]) / ".ssh" / "config").write_text(bastion.ssh_config(ALIAS))
            results: dict[str, list[float]] = {name: [] for name in paths}
            cpu: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
            with _plain_openssh(root, bastion, keys[0][0]) as ssh:
                reverse, forward, customer_sshd = ssh.pids
                watch = CpuWatch([relay_pid, bastion_pid])

                def sides() -> dict[str, float]:
                    """CPU so far, by machine: the technician's, the customer's, the bastion.

                    ssh -R and ssh -L run throughout; the customer's sshd reaps the
                    processes of each ``ssh host CMD`` (unlike the bastion's
                    forwarding sessions: see CpuWatch), once they have ended.
                    """
                    ended = time.monotonic() + 5
                    while customer_sshd and _children(customer_sshd) and time.monotonic() < ended:
                        time.sleep(0.01)  # the connection's processes end just after ssh does
                    return {
                        "technician": _children_cpu() + process_cpu(forward),
                        "agent": process_cpu(customer_sshd or 0) + process_cpu(reverse),
                        "relay": watch.of(bastion_pid),
                    }

                def timed(*command: str) -> tuple[float, dict[str, float]]:
                    before = sides()
                    seconds = _timed([*ssh.argv, *command])
                    after = sides()
                    return seconds, {k: after[k] - before[k] for k in after}

                # Rounds take each path in turn, so that this machine's load, which
                # changes by the minute, hits all three alike.
                for _ in range(runs):
                    for name, (relay, route, pid) in paths.items():
                        relay_cpu = functools.partial(watch.of, pid)
                        seconds, used = _through(root, technician, relay, route, data, relay_cpu)
                        results[name].append(seconds)
                        cpu[name].append(used)
                    for _ in range(2):
                        seconds, used = timed("true")
                        setup.append(seconds)
                        setup_cpu.append(used)
                    seconds, used = timed("cat", str(data))
                    plain.append(seconds)
                    plain_cpu.append(used)
                watch.close()
    plain_net = [max(t - median(setup), 1e-9) for t in plain]
    rate_plain = size / median(plain_net) / 1e6
    rows: list[list[str]] = []
    report: dict[str, dict[str, Any]] = {}
    for name, times in results.items():
        rate = size / median(times) / 1e6
        ratio = rate / rate_plain
        rows.append(
            [
                f"toolkit run, audited, via {name}",
                f"{median(times):.2f}",
                f"{rate:.0f}",
                f"{ratio:.2f}x",
            ]
        )
        report[name] = {
            "seconds": summary(times),
            "mb_s": rate,
            "ratio": ratio,
            "goal": BULK_GOALS[name],
            "cpu": cpu[name],
        }
    rows.append(
        [
            "ssh -R + ssh -L: ssh host cat (whole)",
            f"{median(plain):.2f}",
            f"{size / median(plain) / 1e6:.0f}",
            "",
        ]
    )
    rows.append(
        [
            "  minus its set-up (ssh host true)",
            f"{median(plain_net):.2f}",
            f"{rate_plain:.0f}",
            "1.00x",
        ]
    )
    say(table(["what", "median s", "MB/s", "vs ssh"], rows))
    # CPU by machine, medians: what each side would spend on a machine of its own.
    sides_of = ("technician", "agent", "relay")
    plain_net_cpu = [
        {k: max(used[k] - median([s[k] for s in setup_cpu]), 0.0) for k in sides_of}
        for used in plain_cpu
    ]
    cpu_rows = []
    for name, used_list in [*cpu.items(), ("plain OpenSSH, minus set-up", plain_net_cpu)]:
        meds = [median([u[k] for u in used_list]) for k in sides_of]
        cpu_rows.append([name, *(f"{m:.2f}" for m in meds), f"{sum(meds):.2f}"])
    say(f"CPU seconds per {mib} MiB, medians (plain OpenSSH: technician = ssh and ssh -L, "
        "customer = sshd and ssh -R, relay = the bastion's sshd):")  # fmt: skip
    say(table(["path", "technician", "customer", "relay", "sum"], cpu_rows))
    for name, numbers in report.items():
        goal = numbers["goal"]
        ok = numbers["ratio"] >= goal
        say(f"{name}: {numbers['ratio']:.2f}x plain OpenSSH (goal >= {goal}x): {verdict(ok)}")
    return {
        "mib": mib,
        "runs": runs,
        "plain_ssh_seconds": summary(plain),
        "plain_ssh_setup_seconds": summary(setup),
        "plain_ssh_net_mb_s": rate_plain,
        "plain_ssh_cpu": plain_cpu,
        "plain_ssh_setup_cpu": setup_cpu,
        "relays": report,
    }


# -- idle rendezvous and active sessions ----------------------------------------------


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _hold(route: Any, idle: int, active: int, root: Path, measure: Any) -> dict[str, Any]:
    """``idle`` registrations that wait, then ``active`` sessions; measure() at each stage."""
    import asyncssh

    from toolkit.agent.server import Agent, AgentSettings
    from toolkit.consent import ApprovalRequest, Decision, Scope, parse_code
    from toolkit.identity.signer import KeySigner
    from toolkit.identity.store import Identity
    from toolkit.policy import Policy
    from toolkit.relay._wire import register_host
    from toolkit.session.commands import parse
    from toolkit.session.technician import TechnicianSession
    from toolkit.transport.relay import AgentRendezvous, connect_through, dial
    from toolkit.transport.ssh import ConsentAsk

    stages: dict[str, Any] = {"empty": measure()}
    idle_conns = []
    for i in range(0, idle, 50):  # in batches, as agents would arrive
        batch = await asyncio.gather(*(dial(route) for _ in range(min(50, idle - i))))
        for conn in batch:
            await conn.create_server(lambda *_: None, register_host(600), 0)
        idle_conns += batch
    await asyncio.sleep(2)
    stages["idle"] = measure()
    await asyncio.sleep(10)
    stages["idle_10s"] = measure()

    class Quiet:
        """Shows the customer nothing (every Observer method does nothing)."""

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kwargs: None

    class Yes:
        def ask(self, request: ApprovalRequest) -> Decision:
            return request.grant()

    policy = Policy.from_toml(POLICY, source="bench")

    async def session(i: int, stop: asyncio.Event) -> int:
        agent = Agent(
            AgentSettings(
                policy=policy,
                approver=Yes(),
                approve_fix=_no,
                transcripts=root / "agents",
                hostname=f"pc-{i}",
            ),
            cast(Any, Quiet()),
        )
        rendezvous = AgentRendezvous(
            route, ttl=600, say=lambda _: None, in_session=lambda: agent.session is not None
        )
        await rendezvous.open()
        await agent.start(tunnel=rendezvous)
        from cryptography.hazmat.primitives.asymmetric import ed25519

        who = Identity(
            "Bench", "b@example.com", KeySigner(ed25519.Ed25519PrivateKey.generate()), "bench"
        )
        code = parse_code(agent.codes.current.display.reveal())
        conn, consent = await connect_through(
            route, ConsentAsk(who, f"B-{i}", frozenset({Scope.DIAGNOSTICS}), code)
        )
        tech = await TechnicianSession.start(conn, consent, who, "b", path=root / f"t{i}.cast")
        command = parse("run head -c 65536 /dev/zero")
        assert command is not None
        ran = 0
        while not stop.is_set():
            await tech.execute(command)
            ran += 1
            await asyncio.sleep(1.0)
        await tech.end("bench done")
        await asyncio.wait_for(agent.wait(), 10)
        return ran

    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(session(i, stop)) for i in range(active)]
    await asyncio.sleep(8)
    stages["active_start"] = measure()
    await asyncio.sleep(10)
    stages["active_10s"] = measure()
    stop.set()
    ran = await asyncio.gather(*tasks)
    stages["operations"] = sum(ran)
    for conn in idle_conns:
        conn.close()
    del asyncssh
    return stages


async def _no(question: Any) -> bool:
    return False


def idle(count: int, active: int) -> dict[str, Any]:
    from toolkit.transport.relay import RelayAddress, RelayRoute

    with scratch_dir("relay-idle") as root:
        operator, client = _homes(root, "oper"), _homes(root, "client")
        key = root / "relay_host_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        public = " ".join(key.with_name("relay_host_key.pub").read_text().split()[:2])
        # Every agent here comes from 127.0.0.1: lift the per-address limits on names
        # (docs/relay.md, "Limits") that would stop the benchmark at 32 rendezvous.
        names = str(count + active)
        extra = ["--lookup-burst", str(active * 4), "--names-per-address", names]
        extra += ["--names-per-key", names, "--register-burst", names, "--register-rate", "1000"]
        with toolkit_relay(operator, key, *extra) as (port, pid):
            _trust(client, f"[127.0.0.1]:{port} {public}\n")
            route = RelayRoute(RelayAddress("127.0.0.1", port=port))

            def measure() -> dict[str, float]:
                return {"rss": _rss(pid), "cpu": _cpu(pid), "t": time.monotonic()}

            os.environ["HOME"] = client["HOME"]
            os.environ["XDG_DATA_HOME"] = client["XDG_DATA_HOME"]
            os.environ.pop("SSH_AUTH_SOCK", None)
            stages = asyncio.run(_hold(route, count, active, root, measure))
    base, held = stages["empty"], stages["idle"]
    per = (held["rss"] - base["rss"]) / count
    idle_cpu = (stages["idle_10s"]["cpu"] - held["cpu"]) / (stages["idle_10s"]["t"] - held["t"])
    act0, act1 = stages["active_start"], stages["active_10s"]
    active_cpu = (act1["cpu"] - act0["cpu"]) / (act1["t"] - act0["t"])
    mb = 1e6
    say(
        table(
            ["relay process", "RSS MB", "CPU %"],
            [
                ["empty", f"{base['rss'] / mb:.1f}", ""],
                [f"{count} idle rendezvous", f"{held['rss'] / mb:.1f}", f"{idle_cpu * 100:.2f}"],
                [
                    f"+ {active} active sessions",
                    f"{act1['rss'] / mb:.1f}",
                    f"{active_cpu * 100:.1f}",
                ],
            ],
        )
    )
    say(
        f"RSS per idle rendezvous: {per / 1024:.1f} KiB; "
        f"{count} in {held['rss'] / mb:.0f} MB (goal < {IDLE_GOAL_MB:.0f} MB): "
        f"{verdict(held['rss'] / mb < IDLE_GOAL_MB)}"
    )
    say(f"{stages['operations']} operations in the active sessions")
    return {
        "rendezvous": count,
        "active": active,
        "stages": stages,
        "rss_per_rendezvous": per,
        "idle_cpu": idle_cpu,
        "active_cpu": active_cpu,
        "goal_mb": IDLE_GOAL_MB,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["watch"]:  # CpuWatch's helper process
        return _watch([int(pid) for pid in argv[1:]])
    p = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    p.add_argument("which", nargs="*", help="bulk, idle (default: both)")
    p.add_argument("--quick", action="store_true", help="64 MiB, 2 runs; 200 idle, 20 active")
    p.add_argument("--mib", type=int, help="bulk output in MiB (default 256)")
    p.add_argument("--runs", type=int, help="bulk rounds, each path once a round (default 5)")
    p.add_argument("--rendezvous", type=int, help="idle rendezvous (default 1000)")
    p.add_argument("--active", type=int, help="active sessions (default 100)")
    args = p.parse_args(argv)
    why = available()
    if why is not None or shutil.which("ssh") is None:
        say(f"cannot compare with OpenSSH: {why}")
        return 1
    which = args.which or ["bulk", "idle"]
    result: dict[str, Any] = {"environment": environment()}
    if "bulk" in which:
        say("== bulk output of an audited run through a relay vs ssh -R + ssh -L")
        mib = args.mib or (64 if args.quick else 256)
        result["bulk"] = bulk(mib, args.runs or (2 if args.quick else 5))
    if "idle" in which:
        say("== toolkit relay holding idle rendezvous, then active sessions")
        count = args.rendezvous or (200 if args.quick else 1000)
        result["idle"] = idle(count, args.active or (20 if args.quick else 100))
    say(f"results: {save('relay', result)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
