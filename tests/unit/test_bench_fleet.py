"""bench/fleet.py's own parts: the check every tool runs, the inventories, the memory probe."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench._common import run_tree, tree_rss
from bench.fleet import FIX, Baselines, fake_machine, names
from bench.sshd import Sshd
from toolkit.plugins import Fix, Kind, Step, StepOutput
from toolkit.plugins.loader import installed

MB = 10**6
#: A child that holds about 40 MB, says so on stdout, and ends when its stdin closes.
HOLDER = "import os, sys; b = b'x' * (40 * 10**6); os.write(1, b'ready\\n'); sys.stdin.read()"


def test_the_check_is_the_plugins_on_the_stand_in_and_says_not_needed(tmp_path: Path) -> None:
    machine = fake_machine(tmp_path)
    found = installed().find(Kind.FIX, FIX)
    assert found is not None
    fix = found[0]
    assert isinstance(fix, Fix)
    # The argv the agent resolves, its program the stand-in that the policy's search_path
    # makes the agent find first: the very file the baselines run.
    (resolved,) = fix.resolve(Step.CHECK, fix.bind({}), str(tmp_path))
    program = Path(machine.check[0])
    assert (program.name, *machine.check[1:]) == tuple(resolved)
    assert program.is_absolute() and program.is_file()
    assert json.dumps([str(program.parent)]) in machine.policy.read_text()
    done = subprocess.run(
        machine.check, capture_output=True, env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    )
    out = StepOutput(machine.check, done.returncode, done.stdout, done.stderr)
    decision = fix.decision([out], {})
    assert not decision.needed, decision.reason
    assert machine.calls() == 1  # every call is counted: what the benchmark checks per run


def test_the_stand_in_counts_each_call_and_a_needed_cache_would_show(tmp_path: Path) -> None:
    machine = fake_machine(tmp_path)
    (machine.root / "state" / "resolved" / "cache").write_text("3\n")
    found = installed().find(Kind.FIX, FIX)
    assert found is not None
    for _ in range(3):
        done = subprocess.run(machine.check, capture_output=True, check=True)
    out = StepOutput(machine.check, done.returncode, done.stdout, done.stderr)
    assert isinstance(found[0], Fix)
    assert found[0].decision([out], {}).needed  # the check does tell the two apart
    assert machine.calls() == 3


def test_the_inventories_name_every_alias_with_its_own_control_path(tmp_path: Path) -> None:
    machine = fake_machine(tmp_path)
    sshd = Sshd(2222, tmp_path / "sshd" / "client_key")
    (tmp_path / "sshd").mkdir()
    (tmp_path / "sshd" / "sshd.pid").write_text("1\n")
    base = Baselines(tmp_path / "b", tmp_path / "bin", sshd, machine, 7, 50)
    ini = base.inventory.read_text().splitlines()
    assert ini[:7] == [
        f"{n} ansible_host=127.0.0.1 ansible_control_path=%(directory)s/{n}" for n in names(7)
    ]
    assert "ansible_port=2222" in ini
    tree = ast.parse(base.pyinfra_inventory.read_text())
    hosts = ast.literal_eval(tree.body[0].value)  # type: ignore[attr-defined]
    assert [h[0] for h in hosts] == names(7)
    assert {h[1]["ssh_port"] for h in hosts} == {2222}
    assert all(h[1]["ssh_hostname"] == "127.0.0.1" for h in hosts)


def test_names_are_distinct_and_sort_as_numbers() -> None:
    got = names(1000)
    assert len(set(got)) == 1000
    assert got == sorted(got)
    assert got[0] == "h0001" and got[-1] == "h1000"


def test_tree_rss_adds_up_the_children_alive_at_once() -> None:
    argv = [sys.executable, "-c", HOLDER]
    shell = subprocess.Popen(
        # sh gives a command run with & /dev/null as stdin: fd 3 keeps the pipe for it.
        ["sh", "-c", f"exec 3<&0; {_q(argv)} <&3 & {_q(argv)}; wait"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert shell.stdin is not None and shell.stdout is not None
    try:
        assert shell.stdout.readline() == "ready\n"
        assert shell.stdout.readline() == "ready\n"
        assert tree_rss(shell.pid) >= 80 * MB  # both holders, below the shell
    finally:
        shell.stdin.close()
        shell.wait()
    assert tree_rss(shell.pid) == 0  # gone


def test_run_tree_reports_the_child_its_exit_and_its_output() -> None:
    done = run_tree([sys.executable, "-c", "b = b'x' * (30 * 10**6); print('hi')"])
    assert done.returncode == 0
    assert done.stdout == "hi\n"
    assert done.max_rss >= 30 * MB
    assert done.tree_rss >= done.max_rss
    failed = run_tree([sys.executable, "-c", "import sys; sys.exit('no')"])
    assert failed.returncode == 1
    assert "no" in failed.stderr


def _q(argv: list[str]) -> str:
    import shlex

    return shlex.join(argv)


@pytest.mark.parametrize("hosts", [1, 200])
def test_pyinfra_inventory_is_python_for_any_size(tmp_path: Path, hosts: int) -> None:
    machine = fake_machine(tmp_path)
    (tmp_path / "sshd").mkdir()
    (tmp_path / "sshd" / "sshd.pid").write_text("1\n")
    base = Baselines(
        tmp_path / "b", tmp_path / "bin", Sshd(22, tmp_path / "sshd" / "k"), machine, hosts, 50
    )
    scope: dict[str, object] = {}
    exec(compile(base.pyinfra_inventory.read_text(), "inventory", "exec"), scope)  # noqa: S102
    assert len(scope["hosts"]) == hosts  # type: ignore[arg-type]
