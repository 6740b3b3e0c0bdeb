"""``toolkit run FIX --check`` of a fix that is not needed, against Ansible and pyinfra.

What a technician waits for, whole processes, cold: each run is a fresh
process, as a person types it. toolkit's side includes the customer's code
exchange (``--code`` given) against a ``toolkit share --yes`` that is already
waiting (started before each run, done loading, so nobody is asked); the
transcript is sealed and attached to the local ticket store under a scratch
data directory. The others run the same check command on one host through a
throwaway OpenSSH sshd on loopback (bench/sshd.py, sessions with an empty
HOME):

- ``ansible all -i INVENTORY -m command -a CHECK``: inventory ``127.0.0.1``
  with ``ansible_port`` and ``ansible_ssh_private_key_file``, host key checking
  off, no config file (nothing but these ``ANSIBLE_*`` variables), its defaults
  otherwise: no fact gathering (the ad-hoc command gathers none), Python
  interpreter discovery, no pipelining, ``ControlPersist=60s``. "cold" stops the
  ControlPersist master after each run (untimed), so each run makes a new SSH
  connection as toolkit does; "warm" runs again while the master is up (a second
  command within a minute), for scale.
- ``pyinfra 127.0.0.1 --ssh-port P --ssh-key K ... exec -- CHECK``, host key
  checking off.
- ``ssh host CHECK``: the floor, as in the other session benchmarks.

Ansible and pyinfra are installed for the benchmark only, pinned (:data:`PINS`),
into a venv cached under bench/.cache (git-ignored by a ``.gitignore`` the
benchmark writes there), never into the project's venv.

Rounds are paired and interleaved (toolkit, ansible cold, ansible warm, pyinfra,
ssh; again), so the load of this shared machine hits all alike. After each round
one more toolkit run goes under bench.session's probe, untimed in the table, to
show where its time goes.

The check is the Linux plugin's ``clear-thumbnails`` check step, resolved by
toolkit's plugin loader, in a customer home whose thumbnail cache is empty.

toolkit's command line is one template, :data:`TOOLKIT_ARGS` (``--toolkit-args``
for another). :data:`CONNECT_ARGS` is the stand-in used before ``toolkit run``
existed: ``toolkit connect --batch FILE`` with the one line ``fix clear-thumbnails
--step check`` (:data:`BATCH`), the same check step over the same session.

    .venv/bin/python -m bench run [--quick] [--rounds N] [--checkout] [--toolkit-args T]
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import REPO, environment, median, save, say, scratch_dir, summary, table, verdict
from bench.session import (
    Baseline,
    Run,
    Share,
    Technician,
    _homes,
    _load,
    _phases,
    _run,
    _show_phases,
    _technician,
    process_cpu,
)
from bench.sshd import Sshd, available, local_sshd

#: The fix whose check runs: the Linux plugin's clear-thumbnails. Not needed here: the
#: customer's scratch home has an empty thumbnail cache (its check finds no file, exit 0).
FIX = "clear-thumbnails"
TICKET = "BENCH-1"
#: toolkit's command line after ``toolkit``: the fix's check only, as the issue asks.
TOOLKIT_ARGS = "run {fix} --check --code {code} --ticket {ticket} {address}"
#: The stand-in before ``toolkit run`` was merged: ``connect --batch`` of one line,
#: :data:`BATCH`, which runs the installed fix's check step only (``--toolkit-args``).
CONNECT_ARGS = "connect {address} --code {code} --ticket {ticket} --batch {batch}"
BATCH = f"fix {FIX} --step check\n"
#: The customer's policy: the defaults (installed procedures within the granted scope).
POLICY = ""
#: As Debian's sshd_config has it: Ansible copies its module with sftp (without it, it
#: tries sftp, then scp, then falls back to piping, each an extra round).
SFTP_SERVER = next(
    (p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server") if Path(p).exists()),
    "internal-sftp",
)
#: What is installed for the baselines (bench/.cache/baselines-VERSIONS).
PINS = ("ansible-core==2.19.14", "pyinfra==3.10.0")
CACHE = Path(__file__).resolve().parent / ".cache"
LABELS = {
    "toolkit": f"toolkit run {FIX} --check",
    "ansible": "ansible -m command, cold",
    "ansible warm": "ansible -m command, warm master",
    "pyinfra": "pyinfra exec",
    "ssh": "ssh host CMD (floor)",
}


def toolkit_argv(toolkit: Path, template: str, *, port: int, code: str, batch: Path) -> list[str]:
    """The technician's command line: ``template`` (:data:`TOOLKIT_ARGS`) filled in."""
    fields = {
        "address": f"127.0.0.1:{port}",
        "code": code,
        "ticket": TICKET,
        "batch": str(batch),
        "fix": FIX,
    }
    return [str(toolkit), *(word.format(**fields) for word in shlex.split(template))]


def installed_check(home: str) -> tuple[tuple[str, ...], ...] | None:
    """:data:`FIX`'s check commands as the agent runs them, from the installed plugins
    (toolkit's own loader), so that the baselines run exactly those; None if none has it."""
    from toolkit.plugins import Kind, Step
    from toolkit.plugins.loader import installed

    found = installed().find(Kind.FIX, FIX)
    if found is None:
        return None
    fix = found[0]
    return fix.resolve(Step.CHECK, fix.bind({}), home)


def install_plugins(toolkit: Path, where: Path) -> None:
    """The first-party plugins (plugins/*) into the scratch venv of ``toolkit``, installed as
    a user installs them (not editable, compiled). That venv sees the project venv's packages
    through a ``.pth`` line, which does not read the ``.pth`` files the editable installs there
    rely on: without this their entry points are found but their modules are not."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    junk = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build")
    for project in sorted((REPO / "plugins").glob("*/pyproject.toml")):
        source = where / "plugins" / project.parent.name
        shutil.copytree(project.parent, source, ignore=junk)  # no build files in the checkout
        argv = [sys.executable, "-m", "pip", "--python", str(toolkit.with_name("python"))]
        argv += ["install", "--no-deps", "--quiet", "--disable-pip-version-check", str(source)]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pip install of {source.name} failed:\n{done.stderr[-500:]}")


# -- the baselines' own venv ----------------------------------------------------------------


def baselines_venv() -> tuple[Path | None, str | None]:
    """The cached venv holding :data:`PINS`, made on first use; (its bin, None) or (None, why)."""
    name = "baselines-" + "-".join(p.replace("==", "-") for p in PINS)
    target = CACHE / name
    bin_dir = target / "bin"
    if (bin_dir / "ansible").exists() and (bin_dir / "pyinfra").exists():
        return bin_dir, None
    CACHE.mkdir(exist_ok=True)
    (CACHE / ".gitignore").write_text("*\n")  # nothing of the cache goes into git
    say(f"installing {', '.join(PINS)} into {target} (once) ...")
    shutil.rmtree(target, ignore_errors=True)
    venv.EnvBuilder(with_pip=True).create(target)
    done = subprocess.run(
        [str(bin_dir / "pip"), "install", "--quiet", "--disable-pip-version-check", *PINS],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(target, ignore_errors=True)
        return None, f"pip install {' '.join(PINS)} failed: {done.stderr.strip()[-300:]}"
    return bin_dir, None


# -- the tools -------------------------------------------------------------------------------


@dataclass
class Tools:
    """Every command of the comparison, set up in one scratch directory."""

    root: Path
    tech: Technician
    sshd: Sshd
    baselines: Path | None
    template: str

    def __post_init__(self) -> None:
        self.policy = self.tech.policy
        home = self.root / "customer"  # the agent's HOME (bench.session._homes)
        (home / ".cache/thumbnails").mkdir(parents=True, exist_ok=True)  # empty: not needed
        commands = installed_check(str(home))
        if commands is None:
            raise RuntimeError(
                f"no installed plugin has the fix {FIX}: install plugins/linux "
                "(make .venv/bin/toolkit does)"
            )
        # The baselines' one command: the check's, or all of them in a row (sh stops at a no).
        self.check = (
            list(commands[0])
            if len(commands) == 1
            else ["sh", "-c", " && ".join(shlex.join(c) for c in commands)]
        )
        self.batch = self.root / "batch.txt"
        self.batch.write_text(BATCH)
        self.env = _homes(self.root, "baselines")  # their own HOME: no ~/.ssh, ~/.ansible.cfg
        self.env = {k: v for k, v in self.env.items() if not k.startswith(("ANSIBLE_", "PYINFRA_"))}
        inventory = self.root / "inventory.ini"
        inventory.write_text(
            f"127.0.0.1 ansible_port={self.sshd.port} "
            f"ansible_ssh_private_key_file={self.sshd.client_key}\n"
        )
        self.control_dir = self.root / "ansible-cp"
        self.ansible_env = {
            **self.env,
            "ANSIBLE_CONFIG": str(self.root / "no-ansible.cfg"),  # does not exist: no config file
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir),
        }
        self.inventory = inventory
        # sshd's CPU as bench.session reads it. Not for ansible: its ControlPersist master
        # keeps a connection (and sshd's processes for it) up across runs.
        self.sshd_side = Baseline(self.sshd, self.root / "sshd")

    def toolkit(self, probe: Path | None = None) -> Run:
        """One technician run against a fresh, waiting ``toolkit share --yes``."""
        with Share(self.root, self.policy, toolkit=self.tech.toolkit) as share:
            share.settle()
            idle = process_cpu(share.proc.pid)  # its CPU from here to its exit: this session's
            argv = toolkit_argv(
                self.tech.toolkit, self.template, port=share.port, code=share.code, batch=self.batch
            )
            cwd = None
            if probe is not None:
                python = self.tech.toolkit.with_name("python")
                argv = [str(python), "-m", "bench.session", "probe", str(probe), *argv[1:]]
                cwd = self.tech.bench
            env = dict(self.tech.env, BENCH_SPAWNED=str(time.monotonic()))  # the probe's zero
            try:
                run = _run(argv, env=env, cwd=cwd)
            finally:
                agent = share.wait() - idle
        self.tech.clean()
        return Run(run.wall, run.cpu, agent)

    def confirm_not_needed(self) -> str:
        """One untimed run with ``--json``: toolkit's own verdict must be ``ok`` (not needed),
        else the comparison would time another path; its message."""
        with Share(self.root, self.policy, toolkit=self.tech.toolkit) as share:
            share.settle()
            argv = toolkit_argv(
                self.tech.toolkit, self.template, port=share.port, code=share.code, batch=self.batch
            )
            try:
                done = subprocess.run(
                    [*argv, "--json"],
                    env=self.tech.env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
            finally:
                share.wait()
        self.tech.clean()
        try:
            last: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            last = {}
        if done.returncode != 0 or last.get("result") != "ok":
            why = last.get("message") or done.stderr.strip()[-300:]
            raise RuntimeError(
                f"toolkit's check did not say ok (exit {done.returncode}, "
                f"result {last.get('result')!r}): {why}"
            )
        return str(last.get("message", "ok"))

    def ansible(self) -> Run:
        """``ansible all -m command -a CHECK``; leaves its ControlPersist master up."""
        assert self.baselines is not None
        argv = [str(self.baselines / "ansible"), "all", "-i", str(self.inventory)]
        argv += ["-m", "command", "-a", shlex.join(self.check)]
        return _run(argv, env=self.ansible_env, cwd=self.root)

    def stop_master(self) -> None:
        """End ansible's ControlPersist master(s), so that the next run connects anew."""
        for sock in self.control_dir.glob("*") if self.control_dir.exists() else []:
            subprocess.run(
                ["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "127.0.0.1"],
                capture_output=True,
                check=False,
            )

    def ansible_cold(self) -> Run:
        self.stop_master()
        return self.ansible()

    def ansible_warm(self) -> Run:
        """Again through the master the run before left; then that master ends (untimed), or
        sshd's side of the next tool would wait for its connection to close."""
        try:
            return self.ansible()
        finally:
            self.stop_master()

    def pyinfra(self) -> Run:
        assert self.baselines is not None
        argv = [str(self.baselines / "pyinfra"), "127.0.0.1", "--ssh-port", str(self.sshd.port)]
        argv += ["--ssh-key", str(self.sshd.client_key), "--ssh-user", getpass.getuser()]
        argv += ["--data", "ssh_strict_host_key_checking=off"]
        argv += ["--data", "ssh_known_hosts_file=/dev/null", "-y", "exec", "--"]
        argv.append(shlex.join(self.check))  # pyinfra joins exec's words for sh: quoted as one
        return self._served(argv, self.env)

    def ssh(self) -> Run:
        return self._served(self.sshd.ssh_argv(shlex.join(self.check)), self.env)

    def _served(self, argv: list[str], env: dict[str, str]) -> Run:
        """``argv`` timed, with sshd's CPU for its connection (once that has ended)."""
        before = self.sshd_side._sshd_cpu()
        run = _run(argv, env=env, cwd=self.root)
        return Run(run.wall, run.cpu, self.sshd_side._sshd_cpu() - before)


def _versions(baselines: Path | None) -> dict[str, str | None]:
    if baselines is None:
        return {}

    def first_line(argv: list[str]) -> str | None:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        return (
            (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else None
        )

    return {
        "ansible": first_line([str(baselines / "ansible"), "--version"]),
        "pyinfra": first_line([str(baselines / "pyinfra"), "--version"]),
    }


#: The issue's phases of a toolkit run, each a group of bench.session's probe steps.
PHASES = {
    "process start to connect": (
        "Python start-up",
        "imports (all the session's, at once here)",
        "reading the command line",
        "outbox sync at start",
        "imports for the session",
    ),
    "SSH handshake and consent": ("SSH handshake and consent",),
    "the check": ("session start (hello, transcript)", "the command"),
    "end, seal and attach": (
        "end request",
        "seal",
        "open the ticket backend",
        "into the outbox",
        "verify before upload",
        "the comment's operations",
        "attach and read back",
        "after attach, to the command's return",
    ),
    "exit": ("exit",),
}


def compare(rounds: int, template: str, checkout: bool) -> dict[str, Any]:
    say(f"{_load()} at the start")
    stand_in = template == CONNECT_ARGS
    if stand_in:
        say(f"NOTE: toolkit's side is the stand-in: `toolkit connect --batch` with one line, "
            f"`{BATCH.strip()}`, not `toolkit run {FIX} --check`.")  # fmt: skip
    elif template != TOOLKIT_ARGS:
        say(f"NOTE: toolkit runs --toolkit-args {template!r}, not bench/run.py's TOOLKIT_ARGS.")
    baselines, why = baselines_venv()
    if why is not None:
        say(f"NOTE: no Ansible or pyinfra ({why}): their rows are skipped.")
    with scratch_dir("run") as root:
        policy = root / "policy.toml"
        policy.write_text(POLICY)
        root.chmod(0o755)  # the baselines' check looks in the customer's home under it
        tech = _technician(root, policy, checkout)
        if not checkout:
            install_plugins(tech.toolkit, root / "installed")
        with local_sshd(root / "sshd", [f"Subsystem sftp {SFTP_SERVER}"]) as sshd:
            if sshd.note:
                say(f"NOTE: {sshd.note}.")
            tools = Tools(root, tech, sshd, baselines, template)
            return _rounds(tools, rounds, stand_in, _versions(baselines))


def _rounds(tools: Tools, rounds: int, stand_in: bool, versions: dict[str, Any]) -> dict[str, Any]:
    say(f"check command: {shlex.join(tools.check)} (the fix {FIX} is not needed)")
    say("ansible cold: a new SSH connection each run, as toolkit's; warm: it reuses the")
    say("ControlPersist master of the run before (its default, within 60 s), no handshake.")
    if tools.template == TOOLKIT_ARGS:
        say(f"toolkit run {FIX} --check says: {tools.confirm_not_needed()}")
    steps: dict[str, Callable[[], Run]] = {"toolkit": tools.toolkit}
    if tools.baselines is not None:
        steps.update({"ansible": tools.ansible_cold, "ansible warm": tools.ansible_warm})
        steps["pyinfra"] = tools.pyinfra
    steps["ssh"] = tools.ssh
    for name in list(steps):  # one untimed warm-up each; a tool that fails is dropped
        if name not in steps:
            continue
        try:
            steps[name]()
        except RuntimeError as exc:
            if name == "toolkit":
                raise RuntimeError(f"toolkit failed its warm-up (--toolkit-args?): {exc}") from None
            say(f"NOTE: {name} failed its warm-up, its row is skipped: {exc}")
            del steps[name]
            if name == "ansible":  # warm needs the master a cold run leaves
                steps.pop("ansible warm", None)
    runs: dict[str, list[Run]] = {name: [] for name in steps}
    phases: list[dict[str, float]] = []
    probe_failed = False
    for n in range(rounds):
        for name, step in steps.items():
            runs[name].append(step())
        if not probe_failed:
            probe = tools.root / "probe.json"
            try:
                tools.toolkit(probe=probe)
                phases.append(_phases(probe))
            except (RuntimeError, OSError, ValueError) as exc:
                say(f"NOTE: the probe run failed, no phases: {str(exc)[:300]}")
                probe_failed = True
        say(f"  round {n + 1}/{rounds}: " + ", ".join(
            f"{name} {runs[name][-1].wall:.2f} s" for name in steps
        ))  # fmt: skip
    return _report(runs, phases, rounds, stand_in, versions, tools)


def _report(
    runs: dict[str, list[Run]],
    phases: list[dict[str, float]],
    rounds: int,
    stand_in: bool,
    versions: dict[str, Any],
    tools: Tools,
) -> dict[str, Any]:
    toolkit_s = median([r.wall for r in runs["toolkit"]])
    toolkit_cpu = median([r.cpu + r.server_cpu for r in runs["toolkit"]])
    rows = []
    for name, got in runs.items():
        walls = [r.wall for r in got]
        served = not name.startswith("ansible")
        both = median([r.cpu + r.server_cpu for r in got])
        label = LABELS[name]
        if name == "toolkit" and tools.template != TOOLKIT_ARGS:
            label = "toolkit, stand-in: connect --batch" if stand_in else "toolkit --toolkit-args"
        rows.append(
            [
                label,
                f"{median(walls):.3f}",
                f"{min(walls):.3f}",
                f"{max(walls):.3f}",
                f"{toolkit_s / median(walls):.2f}",
                f"{median([r.cpu for r in got]):.2f}",
                f"{median([r.server_cpu for r in got]):.2f}" if served else "n/a",
                f"{toolkit_cpu / both:.2f}" if served else "n/a",
            ]
        )
    say(
        table(
            ["whole process", "median s", "min s", "max s", "toolkit / it",
             "CPU s: client", "server", "toolkit / it, CPU"],
            rows,
        )
    )  # fmt: skip
    say("toolkit / it < 1: toolkit is faster. CPU: the client and its children (wait4);")
    say("server: the agent (toolkit share) during the session, or sshd for the connection;")
    say("n/a for ansible, whose ControlPersist master (not counted) keeps sshd's side alive.")
    report: dict[str, Any] = {
        "rounds": rounds,
        "stand_in": stand_in,
        "toolkit_argv_template": tools.template,
        "fix": FIX,
        "check": tools.check,
        "pins": list(PINS),
        "versions": versions,
        "seconds": {name: summary([r.wall for r in got]) for name, got in runs.items()},
        "runs": {
            name: [{"wall": r.wall, "cpu": r.cpu, "server_cpu": r.server_cpu} for r in got]
            for name, got in runs.items()
        },
        "phases": phases,
    }
    ratios = {
        name: toolkit_s / median([r.wall for r in runs[name]])
        for name in ("ansible", "pyinfra")
        if name in runs
    }
    report["ratios"] = ratios
    for name, ratio in ratios.items():
        say(f"toolkit / {name} {ratio:.2f} (goal < 1, faster): {verdict(ratio < 1)}")
    if len(ratios) < 2:
        say("NOTE: a baseline is missing: the goal cannot be judged in full.")
    if phases:
        _show_phases(phases, "where toolkit's time goes (probe runs, medians)")
        grouped = {
            phase: median([sum(p.get(s, 0.0) for s in names) for p in phases])
            for phase, names in PHASES.items()
        }
        report["phases_grouped"] = grouped
        say(
            "in short: "
            + ", ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in grouped.items())
        )
    say(f"{_load()} at the end")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 rounds instead of 10")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 10)")
    p.add_argument(
        "--checkout",
        action="store_true",
        help="run this checkout's toolkit, not a compiled install of it",
    )
    p.add_argument(
        "--toolkit-args",
        default=TOOLKIT_ARGS,
        metavar="TEMPLATE",
        help="toolkit's arguments; fields {address} {code} {ticket} {batch} {fix} "
        f"(default {TOOLKIT_ARGS!r}; the stand-in before toolkit run: {CONNECT_ARGS!r})",
    )
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    why = available()
    if why is not None:
        say(f"cannot compare with OpenSSH: {why}")
        return 1
    rounds = args.rounds or (3 if args.quick else 10)
    env = environment()
    say(f"toolkit {env['toolkit']} ({env['commit']}), Python {env['python']}, "
        f"{env['cpus']} CPUs ({env['cpu']}), {env['openssh']}")  # fmt: skip
    say("== toolkit run --check of a fix not needed, against ansible and pyinfra")
    try:
        result = compare(rounds, args.toolkit_args, args.checkout)
    except RuntimeError as exc:
        say(f"benchmark stopped: {exc}")
        return 1
    result = {"environment": env, **result, "loadavg_after": list(os.getloadavg())}
    say(f"results: {save('run', result)}")
    return 0


__all__ = ["BATCH", "CONNECT_ARGS", "FIX", "TOOLKIT_ARGS", "compare", "main", "toolkit_argv"]

if __name__ == "__main__":
    sys.exit(main())
