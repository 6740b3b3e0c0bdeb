"""Every first-party Linux fix through `toolkit run` against a real `toolkit share` on loopback.

Each fix runs five ways, one share process each: needed (changed), not needed
(ok, the check alone), declined at the customer's prompt, a failing apply,
and ``--check`` while needed (would change, nothing that writes sent). The
customer's machine is a :class:`~tests.linux_support.FakeMachine` (stand-ins
for systemd, resolved and CUPS, found by the agent through its policy's
``[commands] search_path``) and real files in the customer's HOME (the log
of rotate-log, the thumbnail cache). What changed is asserted on that state,
and what ran on the agent's own copy of the transcript. Then bad parameters:
refused by the CLI before it connects, and by the agent in hand-built requests.

clean-package-cache works on this machine's real /var/cache/apt, which no
policy can point elsewhere: its check runs for real, and its ``apt-get`` is a
stand-in that refuses (``FakeMachine.refuse``; as root the real one would
empty this machine's cache). So it is tested as this machine's cache makes
it: not needed when the cache is empty; else --check, declined, and an apply
that fails (the refusing stand-in). Its "needed -> changed" is not tested.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import toolkit_linux

from tests.integration.share_process import RUN_TIMEOUT, Person, Share, end, sharing
from tests.integration.test_procedures_agent import BOTH, declared
from tests.integration.test_procedures_agent import session as procedure_session
from tests.integration.test_run_fix import fix_ops, recap, run, summary
from tests.integration.test_share_connect import (
    customer_copy,
    events,
    make_customer,
    make_technician,
    technician_transcript,
)
from tests.linux_support import DEFAULT_PROGRAMS, FakeMachine, frozen
from toolkit.plugins import Fix
from toolkit.transcript.models import Header

GiB, MiB = 1024**3, 1024**2
LOG_LINES = [f"2026-12-03T16:00:{n % 60:02d} app[42]: request {n} took 12 ms" for n in range(200)]
LOG_TEXT = "".join(f"{line}\n" for line in LOG_LINES)


@dataclass
class Scene:
    """One test's two people, the customer's fake machine, and a way to start their share."""

    technician: Person
    customer: Person
    machine: FakeMachine
    logs: Path

    @property
    def log(self) -> Path:
        return self.customer.home / "logs" / "app.log"

    @property
    def thumbnails(self) -> Path:
        return self.customer.home / ".cache" / "thumbnails"

    def policy(self) -> Path:
        """The stand-ins first on the agent's PATH; the log directory readable (rotate-log)."""
        allowed = json.dumps([str(self.log.parent), str(self.log.parent) + "/*"])
        path = self.customer.root / "linux-policy.toml"
        path.write_text(self.machine.policy_toml(f"[files]\nallow = {allowed}\n"))
        return path

    def share(self, terminal: bool = False) -> AbstractContextManager[Share]:
        scopes = ("--scope", "diagnostics", "--scope", "fixes")
        return sharing(
            self.customer, "--policy", self.policy(), *scopes, logs=self.logs, terminal=terminal
        )


@pytest.fixture
def scene(tmp_path: Path, identity: Path) -> Scene:
    customer = make_customer(tmp_path / "customer")
    machine = FakeMachine.create(tmp_path, programs=(*DEFAULT_PROGRAMS, "journalctl"))
    machine.refuse("apt-get")  # never this machine's real one (see the module's docstring)
    (customer.home / "logs").mkdir()
    return Scene(
        make_technician(tmp_path / "technician", identity), customer, machine, tmp_path / "logs"
    )


# -- the fixes, each with its machine states ----------------------------------------------


class Case:
    """One fix: its parameters, and the machine states that make it needed, or not, or fail."""

    fix: str = ""
    #: The plugin's diff for :meth:`needed`'s state.
    diff: str = ""

    def params(self, scene: Scene) -> dict[str, str]:
        return {}

    def needed(self, scene: Scene) -> None:
        raise NotImplementedError

    def not_needed(self, scene: Scene) -> None:
        raise NotImplementedError

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        """A needed state whose apply fails (inside the returned context)."""
        raise NotImplementedError

    def state(self, scene: Scene) -> Any:
        """What the fix would change, to compare before and after."""
        raise NotImplementedError

    def fixed(self, scene: Scene) -> bool:
        raise NotImplementedError

    def args(self, scene: Scene) -> list[str]:
        return [arg for k, v in self.params(scene).items() for arg in ("-p", f"{k}={v}")]

    def __repr__(self) -> str:
        return self.fix


class RestartUnit(Case):
    fix = "restart-unit"
    diff = "cups.service: failed (failed) -> active"

    def params(self, scene: Scene) -> dict[str, str]:
        return {"unit": "cups.service"}

    def needed(self, scene: Scene) -> None:
        scene.machine.unit("cups.service", "failed")

    def not_needed(self, scene: Scene) -> None:
        scene.machine.unit("cups.service", "active")

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        scene.machine.unit("cups.service", "failed", restart_fails=True)
        return nullcontext()

    def state(self, scene: Scene) -> Any:
        return scene.machine.unit_state("cups.service")

    def fixed(self, scene: Scene) -> bool:
        return bool(self.state(scene) == "active")


class JournalVacuum(Case):
    fix = "journal-vacuum"
    diff = "journal: 3.0 GiB -> at most 200.0 MiB (the oldest entries deleted)"

    def params(self, scene: Scene) -> dict[str, str]:
        return {"size": "200M"}

    def needed(self, scene: Scene) -> None:
        scene.machine.journal(3 * GiB)

    def not_needed(self, scene: Scene) -> None:
        scene.machine.journal(100 * MiB)

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        scene.machine.journal(3 * GiB, vacuum_fails=True)
        return nullcontext()

    def state(self, scene: Scene) -> Any:
        return scene.machine.journal_usage()

    def fixed(self, scene: Scene) -> bool:
        return bool(self.state(scene) <= 200 * MiB)


class FlushDns(Case):
    fix = "flush-dns"
    diff = "systemd-resolved's cache: 42 entries -> 0"

    def needed(self, scene: Scene) -> None:
        scene.machine.resolved(42)

    def not_needed(self, scene: Scene) -> None:
        scene.machine.resolved(0)

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        # resolved's cache cannot be written: the stand-in's flush-caches fails.
        scene.machine.resolved(42)
        return frozen(scene.machine.state / "resolved" / "cache")

    def state(self, scene: Scene) -> Any:
        return scene.machine.cached()

    def fixed(self, scene: Scene) -> bool:
        return bool(self.state(scene) == 0)


class ClearPrintQueue(Case):
    fix = "clear-print-queue"
    diff = "office: 2 jobs cancelled (office-12, office-13)"

    def params(self, scene: Scene) -> dict[str, str]:
        return {"printer": "office"}

    def needed(self, scene: Scene) -> None:
        scene.machine.printer("office", ["office-12", "office-13"])

    def not_needed(self, scene: Scene) -> None:
        scene.machine.printer("office")

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        scene.machine.printer("office", ["office-12", "office-13"], cancel_fails=True)
        return nullcontext()

    def state(self, scene: Scene) -> Any:
        return scene.machine.jobs("office")

    def fixed(self, scene: Scene) -> bool:
        return scene.machine.jobs("office") == []


class RotateLog(Case):
    fix = "rotate-log"

    # {log}: the log's path, which only the test knows
    diff = (
        f"{{log}}: {len(LOG_TEXT) / 1024:.1f} KiB -> empty; its last 2 lines kept in the transcript"
    )

    def params(self, scene: Scene) -> dict[str, str]:
        return {"path": str(scene.log), "lines": "2", "size": "1K"}

    def needed(self, scene: Scene) -> None:
        scene.log.write_text(LOG_TEXT)

    def not_needed(self, scene: Scene) -> None:
        scene.log.write_text(f"{LOG_LINES[0]}\n")

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        # A log nobody may write, root included: tail runs, truncate fails.
        self.needed(scene)
        return frozen(scene.log)

    def state(self, scene: Scene) -> Any:
        return scene.log.read_bytes()

    def fixed(self, scene: Scene) -> bool:
        return scene.log.read_bytes() == b""


class ClearThumbnails(Case):
    fix = "clear-thumbnails"
    diff = "~/.cache/thumbnails: 3 thumbnails (3.0 KiB) deleted"

    def needed(self, scene: Scene) -> None:
        for size in ("normal", "large"):
            (scene.thumbnails / size).mkdir(parents=True, exist_ok=True)
        for name in ("normal/a.png", "normal/b.png", "large/a.png"):
            (scene.thumbnails / name).write_bytes(b"\x89PNG" + b"\0" * 1020)

    def not_needed(self, scene: Scene) -> None:
        pass  # no thumbnail cache at all

    def failing(self, scene: Scene) -> AbstractContextManager[None]:
        # One thumbnail nobody may delete, root included: rm -rf fails.
        self.needed(scene)
        return frozen(scene.thumbnails / "large" / "a.png")

    def state(self, scene: Scene) -> Any:
        return sorted(p.relative_to(scene.thumbnails) for p in scene.thumbnails.rglob("*"))

    def fixed(self, scene: Scene) -> bool:
        return not scene.thumbnails.exists()


CASES = [
    RestartUnit(),
    JournalVacuum(),
    FlushDns(),
    ClearPrintQueue(),
    RotateLog(),
    ClearThumbnails(),
]
each_fix = pytest.mark.parametrize("case", CASES, ids=repr)


def diff_of(case: Case, scene: Scene) -> str:
    return case.diff.replace("{log}", str(scene.log))


def agent_copy(share: Share) -> Path:
    """The agent's copy of the transcript (its path is on share's stderr once it is sealed)."""
    return customer_copy(share.wait_for_stderr("Your copy of the transcript: "))


def fix_events(path: Path) -> list[dict[str, Any]]:
    return [e for e in events(path) if e.get("op") == "fix"]


# -- needed, not needed, failing, --check ----------------------------------------------------


@each_fix
def test_a_needed_fix_changes_the_machine_and_its_check_then_passes(
    case: Case, scene: Scene
) -> None:
    case.needed(scene)
    before = case.state(scene)
    with scene.share() as share:
        done, lines = run(scene.technician, share, case.fix, *case.args(scene))
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert (result["result"], result["decided_by"]) == ("changed", "plugin"), result
    assert result["message"] == "applied; the check now passes"  # the second check: not needed
    assert result["steps"] == ["check", "apply", "verify", "recheck"]
    assert result["plan"]["diff"] == diff_of(case, scene)
    assert result["plan"]["rollback"] == []
    assert result["procedure"]["source"] == "installed"
    assert result["verdict"] == "SEALED"
    assert recap(done.stderr) == f"recap: {share.address} result=changed steps=4 (exit 0)"
    assert case.state(scene) != before
    assert case.fixed(scene), case.state(scene)
    assert fix_ops(theirs) == [
        ("fix", "check"),
        ("fix", "apply"),
        ("fix", "verify"),
        ("fix", "check"),
    ]
    assert all(e["params"] == result["params"] for e in fix_events(theirs))


def test_rotate_log_keeps_the_last_lines_in_both_transcripts(scene: Scene) -> None:
    case = RotateLog()
    case.needed(scene)
    with scene.share() as share:
        done = scene.technician.toolkit(
            "run", case.fix, share.address, "--code", share.code, "--ticket", "T-1",
            *case.args(scene),
        )  # fmt: skip
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    # check's size, tail's two lines (apply), the second check's size; cmp -s says nothing
    assert done.stdout == f"{len(LOG_TEXT)}\n{LOG_LINES[-2]}\n{LOG_LINES[-1]}\n0\n"
    assert scene.log.read_bytes() == b""
    (apply,) = [e for e in fix_events(theirs) if e["step"] == "apply"]
    tail, truncate = apply["steps"]
    assert (tail["argv"][0], truncate["argv"][0]) == ("tail", "truncate")
    kept = f"{LOG_LINES[-2]}\n{LOG_LINES[-1]}\n".encode()
    assert tail["stdout_sha256"] == hashlib.sha256(kept).hexdigest()  # the agent's: by digest
    ours = technician_transcript(scene.technician).read_text()
    assert all(line in ours for line in LOG_LINES[-2:])  # the technician's: whole


@each_fix
def test_a_fix_that_is_not_needed_only_runs_its_check(case: Case, scene: Scene) -> None:
    case.not_needed(scene)
    before = case.state(scene)
    with scene.share() as share:
        done, lines = run(scene.technician, share, case.fix, *case.args(scene))
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert (result["result"], result["steps"], result["plan"]) == ("ok", ["check"], None), result
    assert recap(done.stderr) == f"recap: {share.address} result=ok steps=1 (exit 0)"
    assert fix_ops(theirs) == [("fix", "check")]
    assert not [e for e in events(theirs) if e["type"] == "approval"]
    assert case.state(scene) == before


@each_fix
def test_a_failing_apply_fails_without_a_rollback(case: Case, scene: Scene) -> None:
    with case.failing(scene):
        before = case.state(scene)
        with scene.share() as share:
            done, lines = run(scene.technician, share, case.fix, *case.args(scene))
            theirs = agent_copy(share)
        assert not case.fixed(scene)
        if case.fix != "clear-thumbnails":  # rm -rf deletes what it can before it fails
            assert case.state(scene) == before
    assert done.returncode == 1, done.stderr
    result = summary(lines)
    assert (result["result"], result["steps"]) == ("failed", ["check", "apply"]), result
    (apply,) = [e for e in fix_events(theirs) if e["step"] == "apply"]
    failed = f"apply failed (exit {apply['exit_status']}); {case.fix} has no rollback"
    assert apply["exit_status"] != 0
    assert result["message"] == failed
    assert recap(done.stderr).endswith(f" result=failed steps=2 (exit 1: {failed})")
    assert fix_ops(theirs) == [("fix", "check"), ("fix", "apply")]  # no rollback sent


@each_fix
def test_check_only_shows_the_plan_and_is_granted_diagnostics_only(
    case: Case, scene: Scene
) -> None:
    case.needed(scene)
    before = case.state(scene)
    with scene.share() as share:
        done, lines = run(scene.technician, share, case.fix, *case.args(scene), "--check")
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert (result["result"], result["check_only"], result["steps"]) == (
        "would change", True, ["check"],
    ), result  # fmt: skip
    assert recap(done.stderr) == f"recap: {share.address} result=would-change steps=1 (exit 0)"
    plan = result["plan"]
    assert plan["diff"] == diff_of(case, scene)
    assert f"plan: {case.fix} is needed: {plan['reason']}" in done.stderr
    for argv in plan["apply"]:
        assert f"  apply: {' '.join(argv)}\n" in done.stderr
    assert f"  diff:\n    {plan['diff']}\n" in done.stderr
    assert case.state(scene) == before
    header = Header.from_line(theirs.read_bytes().splitlines()[0])
    assert header.scope == ("diagnostics",)
    assert fix_ops(theirs) == [("fix", "check")]  # no apply, no rollback
    assert not [e for e in events(theirs) if e["type"] == "approval"]


# -- the customer says no ------------------------------------------------------------------


@contextmanager
def declining(scene: Scene, fix: str, *args: str) -> Iterator[tuple[int, str, str, Path]]:
    """`toolkit run` while the customer lets the technician in, then says no to the apply."""
    with scene.share(terminal=True) as share:
        proc = scene.technician.popen(
            "run", fix, share.address, "--code", share.code, "--ticket", "T-1", "--json", *args
        )
        try:
            share.wait_for_stderr("Allow this technician in? [y/n] (n): ")
            share.type("y\n")
            share.wait_for_stderr("Allow? [y/N]")
            share.type("n")
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(proc)
        yield proc.returncode, out, err, agent_copy(share)


@each_fix
def test_the_customer_declines_the_apply(case: Case, scene: Scene) -> None:
    case.needed(scene)
    before = case.state(scene)
    with declining(scene, case.fix, *case.args(scene)) as (code, out, err, theirs):
        pass
    assert code == 3, err
    result = summary([json.loads(line) for line in out.splitlines()])
    assert (result["result"], result["steps"]) == ("declined", ["check", "apply"]), result
    assert "result=declined steps=2 (exit 3" in recap(err)
    assert case.state(scene) == before
    (apply,) = [e for e in fix_events(theirs) if e["step"] == "apply"]
    assert "steps" not in apply  # refused before any command ran


# -- clean-package-cache: this machine's real /var/cache/apt ----------------------------------

ARCHIVES = Path("/var/cache/apt/archives")


def debs_here() -> bool:
    """Whether this machine's apt cache holds packages (clean-package-cache is then needed)."""
    return ARCHIVES.is_dir() and any(p.is_file() for p in ARCHIVES.glob("*.deb"))


needs_debs = pytest.mark.skipif(not debs_here(), reason=f"no packages in {ARCHIVES} here")


@pytest.mark.skipif(debs_here(), reason=f"{ARCHIVES} holds packages here: the fix is needed")
def test_clean_package_cache_not_needed_here(scene: Scene) -> None:
    with scene.share() as share:
        done, lines = run(scene.technician, share, "clean-package-cache")
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    assert (summary(lines)["result"], summary(lines)["steps"]) == ("ok", ["check"])
    assert fix_ops(theirs) == [("fix", "check")]
    assert scene.machine.calls("apt-get") == []


@needs_debs
def test_clean_package_cache_check_only(scene: Scene) -> None:
    debs = sorted(ARCHIVES.glob("*.deb"))
    with scene.share() as share:
        done, lines = run(scene.technician, share, "clean-package-cache", "--check")
        theirs = agent_copy(share)
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert result["result"] == "would change", result
    assert result["plan"]["apply"] == [["apt-get", "clean"]]
    assert result["plan"]["diff"].startswith(f"{ARCHIVES}: {len(debs)} downloaded packages (")
    assert "  apply: apt-get clean\n" in done.stderr
    assert Header.from_line(theirs.read_bytes().splitlines()[0]).scope == ("diagnostics",)
    assert fix_ops(theirs) == [("fix", "check")]
    assert scene.machine.calls("apt-get") == []
    assert sorted(ARCHIVES.glob("*.deb")) == debs


@needs_debs
def test_clean_package_cache_declined(scene: Scene) -> None:
    debs = sorted(ARCHIVES.glob("*.deb"))
    with declining(scene, "clean-package-cache") as (code, out, err, theirs):
        pass
    assert code == 3, err
    assert summary([json.loads(line) for line in out.splitlines()])["result"] == "declined"
    assert [e["step"] for e in fix_events(theirs)] == ["check", "apply"]
    assert scene.machine.calls("apt-get") == []
    assert sorted(ARCHIVES.glob("*.deb")) == debs


@needs_debs
def test_clean_package_cache_whose_apt_get_fails(scene: Scene) -> None:
    """The refusing stand-in plays an apt-get that fails: failed, no rollback."""
    debs = sorted(ARCHIVES.glob("*.deb"))
    with scene.share() as share:
        done, lines = run(scene.technician, share, "clean-package-cache")
        theirs = agent_copy(share)
    assert done.returncode == 1, done.stderr
    result = summary(lines)
    assert (result["result"], result["steps"]) == ("failed", ["check", "apply"]), result
    assert fix_ops(theirs) == [("fix", "check"), ("fix", "apply")]
    assert scene.machine.calls("apt-get") == [["apt-get", "clean"]]
    assert sorted(ARCHIVES.glob("*.deb")) == debs


# -- parameters that could reach a shell, widen a path or inject an option ---------------------

BAD_PARAMS = [
    ("clear-print-queue", "printer=office;reboot"),  # shell metacharacters
    ("restart-unit", "unit=$(id).service"),
    ("journal-vacuum", "size=200M|x"),
    ("rotate-log", "path=/var/log/../etc/shadow"),  # a path trick
    ("rotate-log", "path=var/log/app.log"),
    ("restart-unit", "unit=--force.service"),  # an option
    ("clear-print-queue", "printer=-a"),
    ("clear-print-queue", "nosuch=1"),  # no such parameter
]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that accepts nothing but counts: a connection attempt would wait in its queue."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.setblocking(False)
        yield sock


@pytest.mark.parametrize(("fix", "param"), BAD_PARAMS, ids=[p for _, p in BAD_PARAMS])
def test_a_bad_parameter_is_refused_before_connecting(
    fix: str, param: str, listener: socket.socket, tmp_path: Path, identity: Path
) -> None:
    technician = make_technician(tmp_path / "technician", identity)
    host, port = listener.getsockname()
    done = technician.toolkit(
        "run", fix, f"{host}:{port}", "--code", "123-456-789", "--ticket", "T-1",
        "-p", param, "--json",
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = [json.loads(raw) for raw in done.stdout.splitlines()]
    assert (line["type"], line["error"]["code"], line["fix"]) == ("error", "usage", fix), line
    assert "Connecting" not in done.stderr
    assert param.partition("=")[0] in line["error"]["message"], line
    with pytest.raises(BlockingIOError):  # the process is over: any connection would be queued
        listener.accept()


def test_the_agent_refuses_bad_parameters_of_installed_and_brought_fixes(tmp_path: Path) -> None:
    """The same values in hand-built requests (no CLI to check them first): the agent refuses
    them all, before asking the customer or running anything."""
    fixes = {p.name: p for p in toolkit_linux.plugin.procedures if isinstance(p, Fix)}
    installed = [fix for name, fix in fixes.items() if name != "restart-unit"]  # it is brought
    requests = []
    for fix, param in BAD_PARAMS:
        key, _, value = param.partition("=")
        brought = fixes[fix] not in installed
        for step in ("check", "apply"):
            body = {"step": step, "params": {key: value}}
            if brought:
                requests.append(declared(fix, fixes[fix], **body))
            else:  # installed: the request names it only
                requests.append(declared(fix, None, fix=True, **body))
    ran = procedure_session(tmp_path, requests, scopes=BOTH, procedures=installed)
    for request, result in zip(requests, ran.results, strict=True):
        assert result.status == "refused", (request, result)
        (key,) = request.args["params"]  # refused for that parameter, nothing else
        said = result.message or ""
        assert said.startswith(f"refused: -p {key}=") or f'no parameter "{key}"' in said, said
    assert ran.asked.questions == []
    records = ran.agent_ops()
    assert len(records) == len(requests)
    assert all(r["error"] == "refused" and "steps" not in r for r in records)  # nothing ran
    sources = {r["procedure"]["source"] for r in records if "procedure" in r}
    assert sources == {"installed", "brought"}, records
