"""A fake Linux machine for the first-party plugin's tests: stand-in programs and their state.

This machine has no running systemd, no systemd-resolved and no CUPS. The
stand-ins in tests/fakes/bin (tests/fakes/README.md) play them; each test
gets its own copy under ``tmp_path``, whose state the stand-ins find next to
themselves (the agent runs commands with PATH and LANG only). An agent
finds them first through its policy's ``[commands] search_path``::

    machine = FakeMachine.create(tmp_path)
    machine.unit("cups.service", "failed")
    policy = Policy.from_toml(machine.policy_toml(), source="test policy")
    ...  # run restart-unit through the agent
    assert machine.calls("systemctl")[-1] == ["systemctl", "is-active", ...]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from toolkit.plugins import Kind, Procedure, Step, StepOutput

FAKES = Path(__file__).resolve().parent / "fakes"
#: Every stand-in program tests/fakes/bin holds.
PROGRAMS = ("systemctl", "resolvectl", "lpstat", "cancel", "timedatectl", "journalctl")
#: What a machine gets by default: journalctl is real here (it works without systemd).
DEFAULT_PROGRAMS = ("systemctl", "resolvectl", "lpstat", "cancel", "timedatectl")


@dataclass(frozen=True)
class FakeMachine:
    """A directory ``root`` with ``bin/`` (the stand-ins), ``lib/`` and ``state/``."""

    root: Path

    @classmethod
    def create(cls, where: Path, programs: Iterable[str] = DEFAULT_PROGRAMS) -> FakeMachine:
        root = where / "fake-machine"
        (root / "bin").mkdir(parents=True)
        shutil.copytree(FAKES / "lib", root / "lib")
        for name in programs:
            if name not in PROGRAMS:
                raise ValueError(f"no stand-in for {name} in tests/fakes/bin")
            shutil.copy2(FAKES / "bin" / name, root / "bin" / name)
        (root / "state").mkdir()
        return cls(root)

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def policy_toml(self, extra: str = "") -> str:
        """An agent policy (TOML) whose ``[commands] search_path`` finds the stand-ins first.

        ``extra`` follows the search_path line: more ``[commands]`` keys first, then
        other tables (``[files]``, ``[procedures]``).
        """
        return f"[commands]\nsearch_path = {json.dumps([str(self.bin)])}\n{extra}"

    def refuse(self, program: str) -> None:
        """A stand-in for ``program`` that records its call and fails, so the real one never runs.

        For programs that must never run in a test, such as ``apt-get`` (as root, ``apt-get
        clean`` would empty this machine's real package cache).
        """
        path = self.bin / program
        path.write_text(
            "#!/bin/sh\n"
            '. "$(dirname -- "$0")/../lib/state.sh"\n'
            f'echo "{program} (stand-in): refused, the tests never run the real one" >&2\n'
            "exit 1\n"
        )
        path.chmod(0o755)

    def calls(self, program: str | None = None) -> list[list[str]]:
        """Every call the stand-ins got, in order, as argv lists (of ``program`` only, if given)."""
        path = self.state / "calls"
        lines = path.read_text().splitlines() if path.exists() else []
        argvs = [line.split(" ") for line in lines]
        return [argv for argv in argvs if program is None or argv[0] == program]

    # -- state --------------------------------------------------------------------------

    def unit(self, name: str, active_state: str, *, restart_fails: bool = False) -> None:
        """A systemd unit in ``active_state`` (active, failed, inactive)."""
        units = self.state / "units"
        units.mkdir(exist_ok=True)
        (units / name).write_text(active_state + "\n")
        if restart_fails:
            (units / f"{name}.restart-fails").touch()

    def unit_state(self, name: str) -> str:
        return (self.state / "units" / name).read_text().strip()

    def resolved(self, cached: int) -> None:
        """systemd-resolved running with ``cached`` entries in its cache."""
        (self.state / "resolved").mkdir(exist_ok=True)
        (self.state / "resolved" / "cache").write_text(f"{cached}\n")

    def cached(self) -> int:
        return int((self.state / "resolved" / "cache").read_text())

    def printer(self, name: str, jobs: Iterable[str] = (), *, cancel_fails: bool = False) -> None:
        """A CUPS queue ``name`` holding ``jobs`` (job ids, like office-12)."""
        queue = self.state / "cups" / name
        queue.mkdir(parents=True, exist_ok=True)
        lines = [f"{job} alice 1024 Mon 01 Jan 2024 09:00:00 UTC\n" for job in jobs]
        (queue / "jobs").write_text("".join(lines))
        if cancel_fails:
            (queue / "cancel-fails").touch()

    def jobs(self, printer: str) -> list[str]:
        text = (self.state / "cups" / printer / "jobs").read_text()
        return [line.split()[0] for line in text.splitlines() if line.strip()]

    def journal(
        self, usage: int, errors: Iterable[str] = (), *, vacuum_fails: bool = False
    ) -> None:
        """The journal taking ``usage`` bytes (needs the journalctl stand-in)."""
        journal = self.state / "journal"
        journal.mkdir(exist_ok=True)
        (journal / "usage").write_text(f"{usage}\n")
        (journal / "errors").write_text("".join(f"{line}\n" for line in errors))
        if vacuum_fails:
            (journal / "vacuum-fails").touch()

    def journal_usage(self) -> int:
        return int((self.state / "journal" / "usage").read_text())

    def clock(self, *, synchronized: bool, ntp: bool = True, timezone: str = "Etc/UTC") -> None:
        yes = {True: "yes", False: "no"}
        (self.state / "timedate").write_text(
            f"Timezone={timezone}\nNTP={yes[ntp]}\nNTPSynchronized={yes[synchronized]}\n"
        )


@contextmanager
def frozen(*paths: Path) -> Iterator[None]:
    """``paths`` cannot be written, truncated or deleted inside the block, root included.

    As root (whom file modes do not stop), the immutable flag (``chattr +i``); else the
    file read-only and its directory too. Everything is as it was after the block, so
    that pytest can delete the test's directory. Skips the test where neither works.
    """
    root = os.geteuid() == 0
    chattr = shutil.which("chattr")
    if root and chattr is None:
        pytest.skip("chattr is not installed (Debian package e2fsprogs)")
    modes = {p: p.stat().st_mode for path in paths for p in (path, path.parent)}
    done: list[Path] = []
    try:
        for path in paths:
            if root:
                assert chattr is not None
                flagged = subprocess.run(
                    [chattr, "+i", str(path)], capture_output=True, check=False
                )
                if flagged.returncode != 0:
                    pytest.skip(f"no immutable flag here: {flagged.stderr.decode().strip()}")
            else:
                path.chmod(0o444 if path.is_file() else 0o555)
                path.parent.chmod(0o555)
            done.append(path)
        yield
    finally:
        for path in done:
            if root:
                assert chattr is not None
                subprocess.run([chattr, "-i", str(path)], check=True)
        if not root:
            for path, mode in modes.items():
                path.chmod(mode)


def run_step(
    procedure: Procedure,
    step: Step,
    values: Mapping[str, str],
    *,
    home: Path,
    machine: FakeMachine | None = None,
) -> list[StepOutput]:
    """Run ``step`` as the agent would, without one: no shell, PATH and LANG only, cwd home.

    A fix's step stops at its first failing command; a diagnostic runs them all.
    With ``machine``, its stand-ins come first on PATH, as search_path puts them.
    """
    path = "/usr/sbin:/usr/bin:/sbin:/bin"
    if machine is not None:
        path = f"{machine.bin}{os.pathsep}{path}"
    outputs = []
    for argv in procedure.resolve(step, values, str(home)):
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                env={"PATH": path, "LANG": "C.UTF-8"},  # subprocess searches this PATH
                cwd=home,
                timeout=60,
                check=False,
            )
        except FileNotFoundError:  # as the agent answers a program it cannot start
            output = StepOutput(tuple(argv), 127, b"", f"{argv[0]}: not found\n".encode())
        else:
            output = StepOutput(tuple(argv), done.returncode, done.stdout, done.stderr)
        outputs.append(output)
        if procedure.kind is Kind.FIX and output.exit_status != 0:
            break
    return outputs


@pytest.fixture
def fake_machine(tmp_path: Path) -> FakeMachine:
    """A fake machine with the default stand-ins (import this fixture into a test module)."""
    return FakeMachine.create(tmp_path)


__all__ = [
    "DEFAULT_PROGRAMS",
    "FAKES",
    "PROGRAMS",
    "FakeMachine",
    "fake_machine",
    "frozen",
    "run_step",
]
