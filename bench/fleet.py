"""One fix's check on a fleet: ``toolkit run --inventory`` against Ansible and pyinfra.

Issue 17's benchmark: the check of a fix that is not needed, on N hosts (200
by default), each tool run as a whole process, cold, side by side in rounds:

- ``toolkit run FIX --check --inventory hosts.toml --forks 50 --grant G --ticket T``
  (:data:`TOOLKIT_ARGS`) against N grant-only service agents that run as tasks
  of one process (bench/fleet_agents.py), each on its own loopback port with
  its own persistent host key, pinned by fingerprint in the inventory; one
  grant names every host. Every host's transcript is sealed on both sides and
  attached to the ticket (the local ticket store, under a scratch home).
- ``ansible all -i INVENTORY -m command -a CHECK -f 50``: N inventory aliases
  of one local OpenSSH sshd (bench/sshd.py: sessions with an empty HOME, no
  start-up files), pipelining on, no fact gathering (the ad-hoc command
  gathers none), host key checking off, no config file, its defaults
  otherwise (interpreter discovery, ``ControlPersist=60s``). Each alias has a
  ControlPath of its own, as N machines would; after each run the masters are
  stopped (untimed), so every run connects anew. A second row sets
  ``ansible_python_interpreter`` (``-e``), which saves the discovery command on
  each host: Ansible at its fastest; the goal is judged against the faster row.
- ``pyinfra INVENTORY.py --parallel 50 -y exec -- CHECK``: the same aliases
  (paramiko; host key checking off).

The check is the Linux plugin's ``flush-dns`` (``resolvectl statistics``),
resolved by toolkit's plugin loader. This machine has no systemd-resolved, so
every tool runs the stand-in from tests/fakes/bin (tests/linux_support.py's
fake machine) with an empty cache, by its absolute path: the agents find it
through their policy's ``[commands] search_path``, exactly as the plugin's
tests do, and the baselines run that same file with the same arguments. The
fix is not needed ("systemd-resolved's cache is empty"). Every stand-in call
is logged (state/calls): after each run the benchmark checks that the check
ran exactly once per host, or it stops.

Measured per run: wall time; CPU of the runner with its children (wait4); the
server side's CPU (sshd and its reaped session processes; the agents'
process); the runner's peak memory: wait4's ``ru_maxrss`` (the largest single
process: for toolkit, the runner itself) and the peak sum of RSS over its
process tree, sampled every 0.1 s (Ansible's forks and ssh clients).

    .venv/bin/python -m bench fleet [--hosts 200[,500,1000]] [--only baselines|toolkit]
        [--rounds N] [--forks 50] [--checkout] [--toolkit-args TEMPLATE]
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench._common import (
    REPO,
    TreeRun,
    environment,
    median,
    run_tree,
    save,
    say,
    scratch_dir,
    summary,
    table,
    verdict,
)
from bench.sshd import Sshd, available, local_sshd

if TYPE_CHECKING:
    from bench.session import Technician

#: The fix whose check runs everywhere: no parameters, not needed on the fake machine.
FIX = "flush-dns"
#: The fake machine's stand-ins for the check (tests/fakes/bin).
PROGRAMS = ("resolvectl",)
TICKET = "BENCH-17"
FORKS = 50
HOSTS = 200
#: toolkit's command line after ``toolkit`` (a fleet run: docs/fleet.md).
TOOLKIT_ARGS = (
    "run {fix} --check --inventory {inventory} --forks {forks} --grant {grant} --ticket {ticket}"
)
#: Goals: times faster than each baseline; the runner's peak memory.
GOALS = {"ansible": 10.0, "pyinfra": 3.0}
MEMORY_GOAL = 200 * 10**6
#: sshd's defaults drop unauthenticated connections beyond 10 at a time (MaxStartups
#: 10:30:100), which 50 forks reach at once; a fleet's machines each have their own sshd.
SSHD_CONFIG = ("MaxStartups 2000", "MaxSessions 100")
LABELS = {
    "toolkit": f"toolkit run {FIX} --check --inventory",
    "ansible": "ansible -m command -f N, pipelining",
    "ansible python set": "  the same, ansible_python_interpreter set",
    "pyinfra": "pyinfra exec --parallel N",
}


def names(hosts: int) -> list[str]:
    """The hosts' inventory names (and, for the baselines, the sshd aliases)."""
    return [f"h{i:04d}" for i in range(1, hosts + 1)]


# -- the fake machine and the check ------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """The stand-ins every tool runs (tests/linux_support.py's FakeMachine) and the check."""

    root: Path
    check: tuple[str, ...]  # argv, argv[0] the stand-in's absolute path
    policy: Path  # the agents' policy: search_path finds the stand-ins

    @property
    def calls_file(self) -> Path:
        return self.root / "state" / "calls"

    def calls(self) -> int:
        """How many times a stand-in ran so far."""
        try:
            with open(self.calls_file, "rb") as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0


def fake_machine(root: Path) -> Machine:
    from tests.linux_support import FakeMachine
    from toolkit.plugins import Kind, Step
    from toolkit.plugins.loader import installed

    machine = FakeMachine.create(root, PROGRAMS)
    machine.resolved(0)  # resolved "runs", with nothing cached: flush-dns is not needed
    found = installed().find(Kind.FIX, FIX)
    if found is None:
        raise RuntimeError(f"no installed plugin has the fix {FIX}: make .venv/bin/toolkit")
    fix = found[0]
    commands = fix.resolve(Step.CHECK, fix.bind({}), str(root))
    if len(commands) != 1:
        raise RuntimeError(f"{FIX}'s check has {len(commands)} commands; the baselines run one")
    argv = list(commands[0])
    stand_in = machine.bin / argv[0]
    if not stand_in.exists():
        raise RuntimeError(f"{FIX}'s check runs {argv[0]}, which tests/fakes/bin does not fake")
    policy = root / "agent-policy.toml"
    policy.write_text(machine.policy_toml())
    return Machine(machine.root, (str(stand_in), *argv[1:]), policy)


# -- the baselines -------------------------------------------------------------------------


@dataclass
class Baselines:
    """Ansible and pyinfra on N aliases of one sshd."""

    root: Path
    bin: Path  # the baselines' venv (bench.run.baselines_venv)
    sshd: Sshd
    machine: Machine
    hosts: int
    forks: int
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        from bench.session import _homes

        env = _homes(self.root, "baselines")  # their own HOME: no ~/.ssh, ~/.ansible.cfg
        self.env = {k: v for k, v in env.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
        self.control_dir = self.root / "ansible-cp"
        self.control_dir.mkdir()
        self.ansible_env = {
            **self.env,
            "ANSIBLE_CONFIG": str(self.root / "no-ansible.cfg"),  # does not exist: no config file
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
        }
        self.inventory = self.root / "ansible-hosts.ini"
        self.inventory.write_text(self.ansible_inventory())
        self.pyinfra_inventory = self.root / "pyinfra_hosts.py"
        self.pyinfra_inventory.write_text(self.pyinfra_hosts())
        self.sshd_pid = int((self.sshd.client_key.parent / "sshd.pid").read_text().split()[0])

    def ansible_inventory(self) -> str:
        """INI: one alias a line, each with a ControlPath of its own (without it, all N
        aliases of 127.0.0.1 would share one master connection, which N machines cannot)."""
        lines = [
            f"{name} ansible_host=127.0.0.1 ansible_control_path=%(directory)s/{name}"
            for name in names(self.hosts)
        ]
        lines += [
            "",
            "[all:vars]",
            f"ansible_port={self.sshd.port}",
            f"ansible_ssh_private_key_file={self.sshd.client_key}",
            "",
        ]
        return "\n".join(lines)

    def pyinfra_hosts(self) -> str:
        data = {
            "ssh_hostname": "127.0.0.1",
            "ssh_port": self.sshd.port,
            "ssh_user": getpass.getuser(),
            "ssh_key": str(self.sshd.client_key),
            "ssh_strict_host_key_checking": "off",
            "ssh_known_hosts_file": "/dev/null",
        }
        return (
            "hosts = [\n" + "".join(f"    ({n!r}, {data!r}),\n" for n in names(self.hosts)) + "]\n"
        )

    def ansible(self, python: str | None = None) -> Sample:
        """``ansible all -m command``; with ``python``, no interpreter discovery."""
        argv = [str(self.bin / "ansible"), "all", "-i", str(self.inventory)]
        argv += ["-m", "command", "-a", shlex.join(self.machine.check), "-f", str(self.forks)]
        if python is not None:
            argv += ["-e", f"ansible_python_interpreter={python}"]
        try:
            return self._served(argv, self.ansible_env, "ansible")
        finally:
            self.stop_masters()

    def pyinfra(self) -> Sample:
        argv = [str(self.bin / "pyinfra"), str(self.pyinfra_inventory)]
        argv += ["--parallel", str(self.forks), "-y", "exec", "--"]
        argv.append(shlex.join(self.machine.check))  # pyinfra joins exec's words for sh
        return self._served(argv, self.env, "pyinfra")

    def stop_masters(self) -> None:
        """End Ansible's ControlPersist masters (untimed), so the next run connects anew and
        sshd's side of them ends (and is counted)."""
        stops = [
            subprocess.Popen(
                ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "x"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for sock in self.control_dir.iterdir()
        ]
        for stop in stops:
            stop.wait()

    def _served(self, argv: list[str], env: dict[str, str], name: str) -> Sample:
        from bench.session import process_cpu

        before, calls = process_cpu(self.sshd_pid), self.machine.calls()
        run = run_tree(argv, env=env, cwd=self.root)
        if run.returncode != 0:
            raise RuntimeError(f"{name} failed ({run.returncode}): {_tail(run)}")
        if name == "ansible":
            self.stop_masters()  # sshd reaps each connection's processes once it ends
        server = _settled_cpu(self.sshd_pid) - before
        return Sample(run, server, self.machine.calls() - calls)


def _settled_cpu(pid: int, limit: float = 10.0) -> float:
    """CPU of ``pid`` with its reaped children, once it has no children left (or ``limit``)."""
    from bench.session import _children, process_cpu

    deadline = time.monotonic() + limit
    while _children(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    return process_cpu(pid)


def _tail(run: TreeRun) -> str:
    return (run.stderr.strip() or run.stdout.strip())[-600:]


# -- toolkit -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One timed run of a tool on the whole fleet."""

    run: TreeRun
    server_cpu: float
    checks: int  # stand-in calls during the run: one per host when every host ran the check


class Fleet:
    """``bench.fleet_agents``: N service agents in one process, its inventory and grant."""

    def __init__(
        self,
        root: Path,
        python: Path,
        cwd: Path,
        machine: Machine,
        hosts: int,
        technician: str,
        uses: int,
    ) -> None:
        from bench.session import _homes

        self.dir = root / f"fleet-{hosts}"
        argv = [str(python), "-m", "bench.fleet_agents", str(self.dir), "--hosts", str(hosts)]
        argv += ["--policy", str(machine.policy), "--technician", technician]
        argv += ["--fix", FIX, "--ticket", TICKET, "--uses", str(uses)]
        self.log = open(root / f"fleet-{hosts}.log", "w+b")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,  # closing it ends the agents
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=_homes(root, "customer"),
            cwd=cwd,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        try:
            ready: dict[str, Any] = json.loads(line)
        except ValueError:
            self._stop()
            self.log.seek(0)
            why = self.log.read().decode(errors="replace").strip()[-1500:]
            self.log.close()
            raise RuntimeError(f"the fleet's agents did not start: {why}") from None
        self.ready = ready
        self.inventory = Path(ready["inventory"])
        self.grant = Path(ready["grant"])

    def close(self) -> None:
        """Stop the agents (end of stdin)."""
        self._stop()
        self.log.close()

    def _stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


@dataclass
class Toolkit:
    """toolkit's side: a technician, the fleet of agents, the timed ``toolkit run``."""

    root: Path
    machine: Machine
    hosts: int
    forks: int
    template: str
    checkout: bool
    uses: int
    #: The technician and their install, made once for every host count (None: make it).
    shared_tech: Technician | None = None
    fleet: Fleet | None = None

    def __post_init__(self) -> None:
        from bench.session import _technician

        if self.shared_tech is not None:
            self.tech: Technician = self.shared_tech
        else:
            self.tech = _technician(self.root, self.machine.policy, self.checkout)
            if not self.checkout:
                from bench.run import install_plugins

                install_plugins(self.tech.toolkit, self.root / "installed")
        shown = subprocess.run(
            [str(self.tech.toolkit), "keys", "show", "--json"],
            env=self.tech.env,
            capture_output=True,
            text=True,
            check=True,
        )
        self.key_line = " ".join(json.loads(shown.stdout)["public_key"].split()[:2])

    @property
    def python(self) -> Path:
        return self.tech.toolkit.with_name("python")

    @property
    def cwd(self) -> Path:
        """Where ``python -m bench...`` imports the same toolkit that ``toolkit`` runs."""
        return self.tech.bench if self.tech.bench is not None else REPO

    @contextmanager
    def started(self) -> Iterator[Fleet]:
        python, cwd = self.python, self.cwd
        self.fleet = Fleet(
            self.root, python, cwd, self.machine, self.hosts, self.key_line, self.uses
        )
        try:
            yield self.fleet
        finally:
            self.fleet.close()
            self.fleet = None

    def argv(self, *more: str) -> list[str]:
        assert self.fleet is not None
        fields = {
            "fix": FIX,
            "inventory": str(self.fleet.inventory),
            "grant": str(self.fleet.grant),
            "forks": str(self.forks),
            "ticket": TICKET,
        }
        words = [word.format(**fields) for word in shlex.split(self.template)]
        return [str(self.tech.toolkit), *words, *more]

    def run(self) -> Sample:
        from bench.session import process_cpu

        assert self.fleet is not None
        before, calls = process_cpu(self.fleet.proc.pid), self.machine.calls()
        run = run_tree(self.argv(), env=self.tech.env)
        server = process_cpu(self.fleet.proc.pid) - before
        self.tech.clean()  # the technician's transcripts, tickets and outbox (untimed)
        if run.returncode != 0:
            raise RuntimeError(f"toolkit run failed ({run.returncode}): {_tail(run)}")
        return Sample(run, server, self.machine.calls() - calls)

    def confirm_not_needed(self) -> str:
        """One untimed ``--json`` run: exit 0, and every host's result ``ok`` (not needed)."""
        run = run_tree(self.argv("--json"), env=self.tech.env)
        self.tech.clean()
        lines: list[dict[str, Any]] = []
        for text in run.stdout.splitlines():
            try:
                lines.append(json.loads(text))
            except ValueError:
                continue
        if run.returncode != 0:
            raise RuntimeError(f"toolkit run --json failed ({run.returncode}): {_tail(run)}")
        results = [line.get("result") for line in lines if "host" in line and "result" in line]
        if results.count("ok") < self.hosts:
            raise RuntimeError(
                f"toolkit run --json: {results.count('ok')} of {self.hosts} hosts ended ok "
                f"(results seen: {sorted(set(map(str, results)))}); last line: "
                f"{run.stdout.strip().splitlines()[-1:] or ['(none)']}"
            )
        return f"{results.count('ok')} hosts ok"


# -- the rounds ---------------------------------------------------------------------------


def compare(
    hosts: list[int],
    only: str,
    rounds: int,
    forks: int,
    template: str,
    checkout: bool,
) -> dict[str, Any]:
    from bench.run import PINS, SFTP_SERVER, _versions, baselines_venv

    say(f"{_load()} at the start")
    results: dict[str, Any] = {"fix": FIX, "forks": forks, "rounds": rounds, "by_hosts": {}}
    with scratch_dir("fleet") as root:
        root.chmod(0o755)
        machine = fake_machine(root)
        say(f"check command: {shlex.join(machine.check)} (the fix {FIX} is not needed)")
        results["check"] = list(machine.check)
        bin_dir: Path | None = None
        if only in ("all", "baselines"):
            bin_dir, why = baselines_venv()
            if why is not None:
                say(f"NOTE: no Ansible or pyinfra ({why}): their rows are skipped.")
            results["pins"] = list(PINS)
            results["versions"] = _versions(bin_dir)
        with_toolkit = only in ("all", "toolkit")
        with local_sshd(root / "sshd", [f"Subsystem sftp {SFTP_SERVER}", *SSHD_CONFIG]) as sshd:
            if sshd.note:
                say(f"NOTE: {sshd.note}.")
            techs: dict[str, Technician] = {}  # one technician for every host count
            for n in hosts:
                say(f"== {n} hosts, {forks} at a time, {rounds} rounds")
                steps: dict[str, Callable[[], Sample]] = {}
                with _toolkit_side(root, machine, n, forks, template, checkout, rounds,
                                   with_toolkit, techs) as kit:  # fmt: skip
                    if kit is not None:
                        steps["toolkit"] = kit.run
                    if bin_dir is not None:
                        base = Baselines(root / f"baselines-{n}", bin_dir, sshd, machine, n, forks)
                        steps["ansible"] = base.ansible
                        python = shutil.which("python3", path="/usr/bin:/bin")
                        if python is not None:  # the sessions' python3, as discovery finds
                            steps["ansible python set"] = functools.partial(base.ansible, python)
                        steps["pyinfra"] = base.pyinfra
                    results["by_hosts"][str(n)] = _rounds(steps, n, rounds)
    results["loadavg_after"] = list(os.getloadavg())
    return results


@contextmanager
def _toolkit_side(
    root: Path,
    machine: Machine,
    hosts: int,
    forks: int,
    template: str,
    checkout: bool,
    rounds: int,
    wanted: bool,
    techs: dict[str, Technician],
) -> Iterator[Toolkit | None]:
    if not wanted:
        yield None
        return
    uses = rounds + 3  # the warm-up, the --json confirmation, one to spare
    kit = Toolkit(
        root / f"toolkit-{hosts}", machine, hosts, forks, template, checkout, uses,
        techs.get("tech"),
    )  # fmt: skip
    techs["tech"] = kit.tech
    start = time.perf_counter()
    with kit.started() as fleet:
        say(f"{hosts} agents up in {time.perf_counter() - start:.1f} s "
            f"({fleet.ready.get('rss_mb', '?')} MB); inventory {fleet.inventory}")  # fmt: skip
        say(f"toolkit run {FIX} --check --json says: {kit.confirm_not_needed()}")
        yield kit


def _rounds(steps: dict[str, Callable[[], Sample]], hosts: int, rounds: int) -> dict[str, Any]:
    for name in list(steps):  # one untimed warm-up each; a baseline that fails is dropped
        try:
            _checked(name, steps[name](), hosts)
        except RuntimeError as exc:
            if name == "toolkit":
                raise
            say(f"NOTE: {name} failed its warm-up, its row is skipped: {exc}")
            del steps[name]
    samples: dict[str, list[Sample]] = {name: [] for name in steps}
    for r in range(rounds):
        for name, step in steps.items():
            samples[name].append(_checked(name, step(), hosts))
        say(f"  round {r + 1}/{rounds}: " + ", ".join(
            f"{name} {samples[name][-1].run.wall:.2f} s" for name in steps
        ))  # fmt: skip
    return _report(samples, hosts)


def _checked(name: str, sample: Sample, hosts: int) -> Sample:
    if sample.checks != hosts:
        raise RuntimeError(f"{name} ran the check {sample.checks} times on {hosts} hosts")
    return sample


def _report(samples: dict[str, list[Sample]], hosts: int) -> dict[str, Any]:
    walls = {name: median([s.run.wall for s in got]) for name, got in samples.items()}
    rows = []
    for name, got in samples.items():
        w = [s.run.wall for s in got]
        rows.append(
            [
                LABELS[name],
                f"{walls[name]:.2f}",
                f"{min(w):.2f}",
                f"{max(w):.2f}",
                f"{walls[name] / walls['toolkit']:.1f}" if "toolkit" in walls else "n/a",
                f"{median([s.run.cpu for s in got]):.1f}",
                f"{median([s.server_cpu for s in got]):.1f}",
                f"{max(s.run.max_rss for s in got) / 1e6:.0f}",
                f"{max(s.run.tree_rss for s in got) / 1e6:.0f}",
            ]
        )
    say(
        table(
            ["whole process", "median s", "min s", "max s", "it / toolkit", "CPU s: runner",
             "server", "peak MB: process", "tree"],
            rows,
        )
    )  # fmt: skip
    say("it / toolkit: how many times toolkit is faster. CPU: the runner with its children")
    say("(wait4); server: sshd and its sessions, or the agents' process. Peak MB: wait4's")
    say("ru_maxrss (the largest single process), and the sampled sum over the runner's tree.")
    report: dict[str, Any] = {
        "hosts": hosts,
        "seconds": {name: summary([s.run.wall for s in got]) for name, got in samples.items()},
        "runs": {
            name: [
                {
                    "wall": s.run.wall,
                    "cpu": s.run.cpu,
                    "server_cpu": s.server_cpu,
                    "max_rss": s.run.max_rss,
                    "tree_rss": s.run.tree_rss,
                }
                for s in got
            ]
            for name, got in samples.items()
        },
    }
    if "toolkit" in walls:
        goals = {}
        for name, goal in GOALS.items():
            rows_of = [t for row, t in walls.items() if row.startswith(name)]
            if rows_of:
                times = min(rows_of) / walls["toolkit"]  # Ansible's faster row
                goals[name] = times
                say(
                    f"{name} / toolkit {times:.1f}x (goal >= {goal:.0f}x): {verdict(times >= goal)}"
                )
        peak = max(s.run.max_rss for s in samples["toolkit"])
        say(f"toolkit runner's peak {peak / 1e6:.0f} MB (goal <= 200 MB): "
            f"{verdict(peak <= MEMORY_GOAL)}")  # fmt: skip
        report["times_faster"] = goals
        report["toolkit_peak_rss"] = peak
    return report


def _scaling(results: dict[str, Any]) -> None:
    """toolkit's time and memory per host count. Linear growth shows as the same cost for
    each host added (from one count to the next) whatever the count."""
    points = []
    for n, got in results["by_hosts"].items():
        runs = got["runs"].get("toolkit")
        if runs:
            wall = median([r["wall"] for r in runs])
            points.append((int(n), wall, max(r["max_rss"] for r in runs) / 1e6))
    if len(points) < 2:
        return
    rows = []
    for i, (n, wall, rss) in enumerate(points):
        added = ["", ""]
        if i:
            n0, wall0, rss0 = points[i - 1]
            added = [
                f"{(wall - wall0) / (n - n0) * 1000:.1f}",
                f"{(rss - rss0) / (n - n0) * 1000:.0f}",
            ]
        rows.append([n, f"{wall:.2f}", f"{wall / n * 1000:.1f}", added[0], f"{rss:.0f}", added[1]])
    say(table(["hosts", "toolkit s", "ms a host", "ms per host added", "peak MB",
               "kB per host added"], rows))  # fmt: skip
    results["scaling"] = [{"hosts": n, "seconds": w, "peak_mb": r} for n, w, r in points]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (5 min {five:.2f})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench fleet", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--hosts",
        default=str(HOSTS),
        metavar="N[,N...]",
        help=f"host counts, each measured in turn (default {HOSTS}; the scaling: 200,500,1000)",
    )
    p.add_argument(
        "--only",
        choices=("all", "baselines", "toolkit"),
        default="all",
        help="which side: all (default), baselines (ansible, pyinfra), toolkit",
    )
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (default 3)")
    p.add_argument("--forks", type=int, default=FORKS, help=f"hosts at a time (default {FORKS})")
    p.add_argument(
        "--checkout",
        action="store_true",
        help="run this checkout's toolkit, not a compiled install of it",
    )
    p.add_argument(
        "--toolkit-args",
        default=TOOLKIT_ARGS,
        metavar="TEMPLATE",
        help="toolkit's arguments; fields {fix} {inventory} {grant} {forks} {ticket} "
        f"(default {TOOLKIT_ARGS!r})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        hosts = [int(n) for n in args.hosts.split(",")]
    except ValueError:
        p.error(f"--hosts: {args.hosts!r} is not a comma-separated list of numbers")
    if any(n < 1 or n > 9999 for n in hosts) or args.rounds < 1 or args.forks < 1:
        p.error("--hosts takes 1 to 9999 hosts; --rounds and --forks at least 1")
    why = available()
    if why is not None:
        say(f"cannot compare with OpenSSH: {why}")
        return 1
    env = environment()
    say(f"toolkit {env['toolkit']} ({env['commit']}), Python {env['python']}, "
        f"{env['cpus']} CPUs ({env['cpu']}), {env['openssh']}")  # fmt: skip
    say(f"== toolkit run {FIX} --check on a fleet, against ansible and pyinfra")
    try:
        result = compare(
            hosts,
            args.only,
            args.rounds,
            args.forks,
            args.toolkit_args,
            args.checkout,
        )
    except RuntimeError as exc:
        say(f"benchmark stopped: {exc}")
        return 1
    _scaling(result)
    result = {"environment": env, "only": args.only, "toolkit_argv_template": args.toolkit_args,
              **result}  # fmt: skip
    say(f"results: {save('fleet', result)}")
    return 0


__all__ = ["FIX", "TOOLKIT_ARGS", "compare", "fake_machine", "main", "names"]

if __name__ == "__main__":
    sys.exit(main())
