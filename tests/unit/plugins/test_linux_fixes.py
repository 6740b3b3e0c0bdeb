"""The Linux fixes end to end without an agent: check, decision, apply, verify, check again.

Each step's commands run as the agent runs them (no shell, PATH and LANG
only): the real stat, tail, truncate, cmp, find, rm, test and journalctl
where this machine has them, the stand-ins of tests/fakes for systemd,
resolved and CUPS. The decision after apply and verify must be "not needed":
the proof of idempotence `toolkit run` records.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import toolkit_linux
from toolkit_linux import _fixes as fixes

from tests.linux_support import FakeMachine, fake_machine, run_step
from toolkit.plugins import Decision, Fix, Step, StepOutput

__all__ = ["fake_machine"]  # the fixture, used by name

PROCEDURES = {p.name: p for p in toolkit_linux.plugin.procedures}


class Steps:
    """One fix with bound values, run step by step on this machine."""

    def __init__(
        self, name: str, values: dict[str, str], home: Path, machine: FakeMachine | None = None
    ) -> None:
        fix = PROCEDURES[name]
        assert isinstance(fix, Fix)
        self.fix, self.values, self.home, self.machine = fix, fix.bind(values), home, machine

    def run(self, step: Step) -> list[StepOutput]:
        return run_step(self.fix, step, self.values, home=self.home, machine=self.machine)

    def decision(self) -> Decision:
        return self.fix.decision(self.run(Step.CHECK), self.values)

    def status(self, step: Step) -> int | None:
        outputs = self.run(step)
        return next((o.exit_status for o in outputs if o.exit_status != 0), 0)


def test_restart_unit(tmp_path: Path, fake_machine: FakeMachine) -> None:
    fake_machine.unit("cups.service", "failed")
    steps = Steps("restart-unit", {"unit": "cups.service"}, tmp_path, fake_machine)
    assert steps.decision() == Decision(
        True,
        diff="cups.service: failed (failed) -> active",
        reason="cups.service is failed (failed)",
    )
    assert fake_machine.unit_state("cups.service") == "failed"  # the check changed nothing
    assert steps.status(Step.APPLY) == 0
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason="cups.service is active (running)")
    assert fake_machine.calls("systemctl") == [
        ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", "cups.service"],
        ["systemctl", "restart", "--", "cups.service"],
        ["systemctl", "is-active", "--quiet", "--", "cups.service"],
        ["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", "cups.service"],
    ]


def test_restart_unit_that_fails_again_fails_apply_and_verify(
    tmp_path: Path, fake_machine: FakeMachine
) -> None:
    fake_machine.unit("cups.service", "failed", restart_fails=True)
    steps = Steps("restart-unit", {"unit": "cups.service"}, tmp_path, fake_machine)
    assert steps.decision().needed
    assert steps.status(Step.APPLY) == 1
    assert steps.status(Step.VERIFY) == 3
    assert steps.decision().needed


def test_restart_unit_of_no_such_unit_fails_the_check(
    tmp_path: Path, fake_machine: FakeMachine
) -> None:
    steps = Steps("restart-unit", {"unit": "nope.service"}, tmp_path, fake_machine)
    with pytest.raises(ValueError, match=r"this machine has no unit nope\.service"):
        steps.decision()


def test_restart_unit_without_systemd_fails_the_check(tmp_path: Path) -> None:
    steps = Steps("restart-unit", {"unit": "cups.service"}, tmp_path)  # the real systemctl
    with pytest.raises(ValueError, match="the check failed: systemctl exited 1"):
        steps.decision()


def test_journal_vacuum_with_the_real_journalctl_is_not_needed(tmp_path: Path) -> None:
    steps = Steps("journal-vacuum", {"size": "200M"}, tmp_path)
    outputs = steps.run(Step.CHECK)
    assert outputs[0].exit_status == 0 and b"take up" in outputs[0].stdout
    decided = steps.fix.decision(outputs, steps.values)
    # This machine keeps no journal worth 200M: not needed, and says what it found.
    assert decided.needed == (fixes.journal_usage(outputs[0].text) > 200 * 1024**2)


def test_journal_vacuum(tmp_path: Path) -> None:
    machine = FakeMachine.create(tmp_path, programs=["journalctl"])
    machine.journal(3 * 1024**3)
    steps = Steps("journal-vacuum", {"size": "200M"}, tmp_path, machine)
    assert steps.decision() == Decision(
        True,
        diff="journal: 3.0 GiB -> at most 200.0 MiB (the oldest entries deleted)",
        reason="the journal takes 3.0 GiB, over 200M",
    )
    assert machine.journal_usage() == 3 * 1024**3
    assert steps.status(Step.APPLY) == 0
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason="the journal takes 200.0 MiB, within 200M")
    assert ["journalctl", "--rotate", "--vacuum-size=200M"] in machine.calls()


def test_journal_vacuum_that_fails(tmp_path: Path) -> None:
    machine = FakeMachine.create(tmp_path, programs=["journalctl"])
    machine.journal(3 * 1024**3, vacuum_fails=True)
    steps = Steps("journal-vacuum", {"size": "1G"}, tmp_path, machine)
    assert steps.decision().needed
    assert steps.status(Step.APPLY) == 1
    assert steps.decision().needed


@pytest.mark.parametrize(
    ("said", "size"),
    [
        ("Archived and active journals take up 0B in the file system.", 0),
        ("Archived and active journals take up 1.5G in the file system.", 3 * 1024**3 // 2),
        ("Journals take up 24.0M on disk.", 24 * 1024**2),
    ],
)
def test_journal_usage_parses_journalctl_s_sizes(said: str, size: int) -> None:
    assert fixes.journal_usage(said) == size


def test_journal_usage_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError):
        fixes.journal_usage("No journal files were found.")


def _package_cache_check(archives: Path, home: Path) -> tuple[Decision, list[StepOutput]]:
    """clean-package-cache's own check command, pointed at ``archives`` instead."""
    fix = PROCEDURES["clean-package-cache"]
    assert isinstance(fix, Fix)
    argv = [
        str(archives) if word == fixes.APT_ARCHIVES else word
        for word in fix.commands(Step.CHECK)[0]
    ]
    moved = Fix(name="moved", summary="moved", check=[argv], apply=[["true"]])
    outputs = run_step(moved, Step.CHECK, {}, home=home)
    return fix.decision(outputs, {}), outputs


def test_clean_package_cache_counts_the_downloaded_packages(tmp_path: Path) -> None:
    archives = tmp_path / "archives"
    (archives / "partial").mkdir(parents=True)
    (archives / "lock").touch()
    (archives / "partial" / "half.deb").write_bytes(b"x" * 10)  # not a finished download
    decided, _ = _package_cache_check(archives, tmp_path)
    assert decided == Decision(False, reason=f"no packages in {fixes.APT_ARCHIVES}")
    (archives / "a_1.0_amd64.deb").write_bytes(b"x" * 1024)
    (archives / "b_2.0_all.deb").write_bytes(b"x" * 2048)
    decided, outputs = _package_cache_check(archives, tmp_path)
    assert outputs[0].stdout == b"1024\n2048\n" or outputs[0].stdout == b"2048\n1024\n"
    assert decided == Decision(
        True,
        diff=f"{fixes.APT_ARCHIVES}: 2 downloaded packages (3.0 KiB) deleted",
        reason="2 downloaded packages take 3.0 KiB",
    )


def test_clean_package_cache_reads_the_real_cache(tmp_path: Path) -> None:
    """The check as declared, on this machine's cache: read-only, and it agrees with Python."""
    steps = Steps("clean-package-cache", {}, tmp_path)
    outputs = steps.run(Step.CHECK)
    archives = Path(fixes.APT_ARCHIVES)
    debs = [p for p in archives.glob("*.deb") if p.is_file() and not p.is_symlink()]
    assert sorted(fixes.sizes(outputs[0].text)) == sorted(p.stat().st_size for p in debs)
    assert steps.fix.decision(outputs, {}).needed == bool(debs)
    assert steps.status(Step.VERIFY) == 0


def test_flush_dns(tmp_path: Path, fake_machine: FakeMachine) -> None:
    fake_machine.resolved(cached=12)
    steps = Steps("flush-dns", {}, tmp_path, fake_machine)
    assert steps.decision() == Decision(
        True,
        diff="systemd-resolved's cache: 12 entries -> 0",
        reason="systemd-resolved caches 12 entries",
    )
    assert steps.status(Step.APPLY) == 0
    assert fake_machine.cached() == 0
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason="systemd-resolved's cache is empty")


def test_flush_dns_without_resolved_fails_the_check(
    tmp_path: Path, fake_machine: FakeMachine
) -> None:
    steps = Steps("flush-dns", {}, tmp_path, fake_machine)
    with pytest.raises(ValueError, match="resolvectl exited 1: Failed to get global data"):
        steps.decision()


def test_clear_print_queue(tmp_path: Path, fake_machine: FakeMachine) -> None:
    fake_machine.printer("office", jobs=["office-12", "office-13"])
    steps = Steps("clear-print-queue", {"printer": "office"}, tmp_path, fake_machine)
    assert steps.decision() == Decision(
        True,
        diff="office: 2 jobs cancelled (office-12, office-13)",
        reason="2 jobs wait for office",
    )
    assert fake_machine.jobs("office") == ["office-12", "office-13"]
    assert steps.status(Step.APPLY) == 0
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason="no jobs wait for office")


def test_clear_print_queue_refused_by_cups(tmp_path: Path, fake_machine: FakeMachine) -> None:
    fake_machine.printer("office", jobs=["office-12"], cancel_fails=True)
    steps = Steps("clear-print-queue", {"printer": "office"}, tmp_path, fake_machine)
    assert steps.status(Step.APPLY) == 1
    assert steps.decision().needed
    unknown = Steps("clear-print-queue", {"printer": "attic"}, tmp_path, fake_machine)
    with pytest.raises(ValueError, match="Invalid destination name"):
        unknown.decision()


def test_clear_print_queue_lists_at_most_ten_jobs() -> None:
    said = "".join(f"office-{n} alice 1 Mon\n" for n in range(12)).encode()
    decided = fixes.decide_print_queue([StepOutput(("lpstat",), 0, said)], {"printer": "office"})
    assert decided.diff.endswith("office-9 and 2 more)")


def test_rotate_log(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    lines = [f"line {n}: {'x' * 40}" for n in range(100)]
    log.write_text("".join(f"{line}\n" for line in lines))
    steps = Steps("rotate-log", {"path": str(log), "lines": "3", "size": "1K"}, tmp_path)
    decided = steps.decision()
    assert decided.needed
    size = f"{log.stat().st_size / 1024:.1f} KiB"
    assert decided.diff == f"{log}: {size} -> empty; its last 3 lines kept in the transcript"
    assert steps.status(Step.VERIFY) == 1  # larger than 1K: verify would fail before apply
    with log.open("a") as writer:  # a program that goes on writing, as a logger does
        outputs = steps.run(Step.APPLY)
        assert [o.exit_status for o in outputs] == [0, 0]
        assert outputs[0].text.splitlines() == lines[-3:]  # the kept tail, in the output
        writer.write("after\n")
    assert log.read_text() == "after\n"  # emptied in place: the writer's file, its new line
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason=f"{log} holds 6 B, within 1K")


def test_rotate_log_of_a_small_or_missing_file(tmp_path: Path) -> None:
    log = tmp_path / "quiet.log"
    log.write_text("one line\n")
    steps = Steps("rotate-log", {"path": str(log)}, tmp_path)
    assert not steps.decision().needed
    missing = Steps("rotate-log", {"path": str(tmp_path / "absent.log")}, tmp_path)
    with pytest.raises(ValueError, match="stat exited 1"):
        missing.decision()
    assert missing.status(Step.APPLY) == 1  # tail fails first: truncate never runs
    assert not (tmp_path / "absent.log").exists()


def test_clear_thumbnails(tmp_path: Path) -> None:
    steps = Steps("clear-thumbnails", {}, tmp_path)
    assert steps.decision() == Decision(False, reason="there is no thumbnail cache")
    cache = tmp_path / ".cache" / "thumbnails"
    (cache / "normal").mkdir(parents=True)
    assert steps.decision() == Decision(False, reason="the thumbnail cache is empty")
    assert steps.status(Step.VERIFY) == 1  # it exists: verify would fail before apply
    (cache / "normal" / "a.png").write_bytes(b"x" * 2048)
    (cache / "normal" / "b.png").write_bytes(b"x" * 1024)
    assert steps.decision() == Decision(
        True,
        diff="~/.cache/thumbnails: 2 thumbnails (3.0 KiB) deleted",
        reason="the thumbnail cache holds 2 files (3.0 KiB)",
    )
    assert steps.status(Step.APPLY) == 0
    assert not cache.exists()
    assert steps.status(Step.VERIFY) == 0
    assert steps.decision() == Decision(False, reason="there is no thumbnail cache")
    assert (tmp_path / ".cache").is_dir()  # only the thumbnails went


def test_a_decision_refuses_a_check_that_could_not_run() -> None:
    missing = StepOutput(("resolvectl", "statistics"), 127, b"", b"resolvectl: not found\n")
    with pytest.raises(ValueError, match="resolvectl exited 127"):
        fixes.decide_flush([missing], {})
    with pytest.raises(ValueError, match="did not run"):
        fixes.decide_restart([], {"unit": "a.service"})
