"""`toolkit run FIX` end to end: real `toolkit share` and `toolkit run` processes on loopback.

The fixes are a test plugin's: a distribution (its ``.dist-info`` with an
entry point in ``toolkit.plugins``, and its module) in a directory on each
side's PYTHONPATH, as an installed plugin would be. The customer's side and
the technician's side may get different directories: that is how a test
gives the customer's machine a fix, or not, or its own version of it.
The fixes work on files in the customer's HOME, so that a test can see what
each step did.
"""

from __future__ import annotations

import json
import socket
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.share_process import RUN_TIMEOUT, Person, Share, end, sharing
from tests.integration.test_share_connect import (
    customer_copy,
    events,
    make_customer,
    make_technician,
    technician_transcript,
)
from toolkit.transcript.models import Header

PLUGIN = """\
from toolkit.plugins import Decision, Fix, Parameter, Plugin


def _decide(outputs, values):
    text = outputs[0].text
    if "stale" in text:
        return Decision(True, diff="- stale\\n+ fresh", reason="the file says stale")
    return Decision(False, reason="the file is fresh")


NAME = Parameter("name", pattern=r"[a-z]{{1,20}}", description="a file name")

plugin = Plugin(
    name="run-test",
    version="{version}",
    procedures=(
        Fix(
            name="mark",
            summary="Leave a mark file in the home directory",
            version="{version}",
            parameters=(NAME,),
            check=[["test", "-e", "{{home}}/{{name}}"]],
            apply=[["touch", "{{home}}/{{name}}"]],
            verify=[["test", "-e", "{{home}}/{{name}}"]],
            rollback=[["rm", "-f", "--", "{{home}}/{{name}}"]],
        ),
        Fix(
            name="half-mark",
            summary="Leave half a mark, then fail",
            version="{version}",
            check=[["test", "-e", "{{home}}/done"]],
            apply=[["touch", "{{home}}/half"], ["false"]],
            verify=[["test", "-e", "{{home}}/done"]],
            rollback=[["rm", "-f", "--", "{{home}}/half"]],
        ),
        Fix(
            name="blind-mark",
            summary="Leave a mark without checking first",
            version="{version}",
            apply=[["touch", "{{home}}/blind"]],
        ),
        Fix(
            name="freshen",
            summary="Make a stale file fresh",
            version="{version}",
            check=[["cat", "{{home}}/state"]],
            apply=[["cp", "{{home}}/fresh", "{{home}}/state"]],
            decide=_decide,
        ),
    ),
)
"""


def plugin_dir(root: Path, version: str = "1.0") -> Path:
    """A directory that holds the test plugin as an installed distribution."""
    root.mkdir(parents=True)
    (root / "toolkit_run_test_plugin.py").write_text(PLUGIN.format(version=version))
    info = root / f"toolkit_run_test_plugin-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: toolkit-run-test-plugin\nVersion: {version}\n"
    )
    (info / "entry_points.txt").write_text(
        "[toolkit.plugins]\nrun-test = toolkit_run_test_plugin:plugin\n"
    )
    return root


@dataclass(frozen=True)
class WithPlugins(Person):
    """A person whose toolkit finds the plugins in ``path`` (None: no test plugin)."""

    path: Path | None = None

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("PYTHONPATH", None)
        if self.path is not None:
            env["PYTHONPATH"] = str(self.path)
        return env


@dataclass
class Sides:
    technician: WithPlugins
    customer: WithPlugins
    logs: Path


def sides(tmp_path: Path, identity: Path, *, mine: str | None, theirs: str | None) -> Sides:
    """Both people, with the test plugin of version ``mine`` / ``theirs`` (None: without)."""
    tech = make_technician(tmp_path / "technician", identity)
    cust = make_customer(tmp_path / "customer")
    return Sides(
        WithPlugins(tech.root, plugin_dir(tmp_path / "tech-plugins", mine) if mine else None),
        WithPlugins(cust.root, plugin_dir(tmp_path / "cust-plugins", theirs) if theirs else None),
        tmp_path / "logs",
    )


@pytest.fixture
def both(tmp_path: Path, identity: Path) -> Sides:
    return sides(tmp_path, identity, mine="1.0", theirs="1.0")


@pytest.fixture
def scopes() -> tuple[str, ...]:
    return ("--scope", "diagnostics", "--scope", "fixes")


@pytest.fixture
def share(both: Sides, scopes: tuple[str, ...]) -> Iterator[Share]:
    policy = both.customer.root / "policy.toml"
    with sharing(both.customer, "--policy", policy, *scopes, logs=both.logs) as running:
        yield running


def run(
    technician: Person, share: Share, fix: str, *args: str, json_lines: bool = True
) -> tuple[Any, list[dict[str, Any]]]:
    done = technician.toolkit(
        "run", fix, share.address, "--code", share.code, "--ticket", "T-1",
        *(("--json",) if json_lines else ()), *args,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done, lines


def summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    assert lines and lines[-1]["type"] == "summary", lines
    return lines[-1]


def fix_ops(path: Path) -> list[tuple[str, str]]:
    """The (op, step) of every operation event (and refusal) in a transcript."""
    return [
        (e["op"], e.get("step", ""))
        for e in events(path)
        if e["type"] in ("operation", "refusal") and e.get("op") not in ("hello", "end")
    ]


def recap(stderr: str) -> str:
    lines = stderr.rstrip("\n").splitlines()
    assert lines and lines[-1].startswith("recap: "), stderr
    return lines[-1]


# -- results ------------------------------------------------------------------------


def test_a_needed_fix_is_applied_verified_and_checked_again(both: Sides, share: Share) -> None:
    done, lines = run(both.technician, share, "mark", "-p", "name=marked")
    assert done.returncode == 0, done.stderr
    assert (both.customer.home / "marked").exists()
    result = summary(lines)
    assert result["result"] == "changed", result
    assert result["steps"] == ["check", "apply", "verify", "recheck"]
    assert [line["step"] for line in lines[:-1]] == ["check", "apply", "verify", "check"]
    assert result["procedure"]["source"] == "installed"
    assert result["procedure"]["version"] == "1.0"
    ((program, path),) = result["plan"]["apply"]  # resolved as the agent runs it
    assert (program, Path(path).name) == ("touch", "marked")
    assert result["verdict"] == "SEALED"
    assert recap(done.stderr).endswith("result=changed steps=4 (exit 0)")
    # Both copies record each step with its parameters.
    ours = technician_transcript(both.technician)
    assert Path(result["transcript"]).name == ours.name
    theirs = customer_copy(share.stderr())
    # The customer's log names each step, the change too.
    for step in ("check", "apply", "verify"):
        assert f"fix mark ({step}) -> exit 0" in share.stderr()
    for copy in (ours, theirs):
        assert fix_ops(copy) == [
            ("fix", "check"),
            ("fix", "apply"),
            ("fix", "verify"),
            ("fix", "check"),
        ], copy
        fixes = [e for e in events(copy) if e.get("op") == "fix"]
        assert all(e["params"] == {"name": "marked"} for e in fixes)


def test_a_fix_that_is_not_needed_only_checks(both: Sides, share: Share) -> None:
    (both.customer.home / "marked").write_text("")
    done, lines = run(both.technician, share, "mark", "-p", "name=marked")
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert (result["result"], result["steps"], result["plan"]) == ("ok", ["check"], None)
    assert recap(done.stderr).endswith("result=ok steps=1 (exit 0)")
    # For people, why: the line before the recap (the recap says it only for a non-zero exit).
    assert done.stderr.splitlines()[-2] == f"ok: {result['message']}"
    assert result["message"].startswith("not needed")
    assert fix_ops(customer_copy(share.stderr())) == [("fix", "check")]


def test_check_asks_for_diagnostics_only_and_sends_nothing_that_writes(
    both: Sides, share: Share
) -> None:
    done, lines = run(both.technician, share, "mark", "-p", "name=marked", "--check")
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert result["result"] == "would change", result
    assert result["plan"]["apply"][0][0] == "touch"
    assert "plan: mark is needed" in done.stderr
    assert recap(done.stderr).endswith("result=would-change steps=1 (exit 0)")
    assert not (both.customer.home / "marked").exists()
    theirs = customer_copy(share.stderr())
    header = Header.from_line(theirs.read_bytes().splitlines()[0])
    assert header.scope == ("diagnostics",)
    assert fix_ops(theirs) == [("fix", "check")]
    assert not [e for e in events(theirs) if e["type"] == "approval"]


def test_a_fix_without_check_is_not_previewable(both: Sides, share: Share) -> None:
    done, lines = run(both.technician, share, "blind-mark", "--check")
    assert done.returncode == 1, done.stderr
    assert summary(lines)["result"] == "not previewable"
    assert recap(done.stderr).startswith(f"recap: {share.address} result=not-previewable steps=0")
    assert fix_ops(customer_copy(share.stderr())) == []


def test_a_failing_apply_is_rolled_back(both: Sides, share: Share) -> None:
    done, lines = run(both.technician, share, "half-mark")
    assert done.returncode == 1, done.stderr
    result = summary(lines)
    assert result["result"] == "failed"
    assert result["steps"] == ["check", "apply", "rollback"]
    assert result["message"] == "apply failed (exit 1); rolled back"
    assert not (both.customer.home / "half").exists()  # the rollback removed it
    assert fix_ops(customer_copy(share.stderr())) == [
        ("fix", "check"),
        ("fix", "apply"),
        ("fix", "rollback"),
    ]
    assert "(exit 1: apply failed (exit 1); rolled back)" in recap(done.stderr)


def test_the_plugin_decides_on_the_same_declaration(both: Sides, share: Share) -> None:
    (both.customer.home / "state").write_text("stale\n")
    (both.customer.home / "fresh").write_text("fresh\n")
    done, lines = run(both.technician, share, "freshen")
    assert done.returncode == 0, done.stderr
    result = summary(lines)
    assert (result["result"], result["decided_by"]) == ("changed", "plugin")
    assert result["plan"]["diff"] == "- stale\n+ fresh"
    assert "    - stale" in done.stderr
    assert (both.customer.home / "state").read_text() == "fresh\n"


# -- refusals -----------------------------------------------------------------------


def test_the_customers_no_is_declined(both: Sides, scopes: tuple[str, ...]) -> None:
    policy = both.customer.root / "policy.toml"
    with sharing(
        both.customer, "--policy", policy, *scopes, logs=both.logs, terminal=True
    ) as share:
        proc = both.technician.popen(
            "run", "mark", share.address, "--code", share.code, "--ticket", "T-1",
            "-p", "name=marked", "--json",
        )  # fmt: skip
        try:
            share.wait_for_stderr("Allow this technician in? [y/n] (n): ")
            share.type("y\n")
            share.wait_for_stderr("Allow? [y/N]")
            share.type("n")
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        finally:
            end(proc)
    assert proc.returncode == 3, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert summary(lines)["result"] == "declined"
    assert summary(lines)["steps"] == ["check", "apply"]
    assert "result=declined steps=2 (exit 3" in recap(err)
    assert not (both.customer.home / "marked").exists()


def test_a_fix_the_customers_policy_denies_is_refused(both: Sides, scopes: tuple[str, ...]) -> None:
    policy = both.customer.root / "policy.toml"
    policy.write_text(policy.read_text() + '[procedures]\ndeny = ["mark"]\n')
    with sharing(both.customer, "--policy", policy, *scopes, logs=both.logs) as share:
        done, lines = run(both.technician, share, "mark", "-p", "name=marked")
    assert done.returncode == 3, done.stderr
    result = summary(lines)
    assert (result["result"], result["steps"]) == ("refused", ["check"]), result
    assert "check: refused: " in done.stderr
    assert not (both.customer.home / "marked").exists()


def test_bad_parameters_are_refused_before_connecting(both: Sides) -> None:
    nobody = _closed_port()
    for value in ("-rf", "../etc", "a;b", "$(id)", "a b", ""):
        done = both.technician.toolkit(
            "run", "mark", nobody, "--code", "123-456-789", "--ticket", "T-1",
            "-p", f"name={value}", "--json",
        )  # fmt: skip
        assert done.returncode == 2, (value, done.stderr)  # usage: not 4, it never connected
        (line,) = [json.loads(raw) for raw in done.stdout.splitlines()]
        assert line["type"] == "error" and line["error"]["code"] == "usage", line
        assert "Connecting" not in done.stderr
    done = both.technician.toolkit(
        "run", "mark", nobody, "--code", "123-456-789", "--ticket", "T-1", "-p", "nosuch=x"
    )
    assert done.returncode == 2
    assert "mark has no parameter" in done.stderr


def test_an_unreachable_agent_exits_4(both: Sides) -> None:
    address = _closed_port()
    done = both.technician.toolkit(
        "run", "mark", address, "--code", "123-456-789", "--ticket", "T-1",
        "-p", "name=marked", "--json",
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    (line,) = [json.loads(raw) for raw in done.stdout.splitlines()]
    assert (line["type"], line["result"], line["exit_code"]) == ("error", "unreachable", 4)
    assert recap(done.stderr).startswith(f"recap: {address} result=unreachable steps=0 (exit 4")


def _closed_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


# -- whose declaration --------------------------------------------------------------


def test_a_fix_the_customer_lacks_is_brought(tmp_path: Path, identity: Path) -> None:
    """A brought fix is approved by a person at the customer's screen (never by --yes)."""
    people = sides(tmp_path, identity, mine="1.0", theirs=None)
    policy = people.customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "fixes")
    share_args = ("--policy", policy, *scopes)
    with sharing(people.customer, *share_args, logs=people.logs, terminal=True) as share:
        running = people.technician.popen(
            "run", "mark", share.address, "--code", share.code, "--ticket", "T-1",
            "--json", "-p", "name=brought",
        )  # fmt: skip
        try:
            share.wait_for_stderr("Allow this technician in? [y/n] (n): ")
            share.type("y\n")
            share.wait_for_stderr("Allow? [y/N]")  # the whole brought fix, before its check
            share.type("y")
            share.wait_for_stderr("Allow? [y/N]", count=2)  # its apply
            share.type("y")
            stdout, stderr = running.communicate(timeout=60)
        finally:
            if running.poll() is None:
                running.kill()
        theirs = customer_copy(share.stderr())
    assert running.returncode == 0, stderr
    lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    result = summary(lines)
    assert (result["result"], result["brought"]) == ("changed", True)
    assert result["procedure"]["source"] == "brought"
    assert (people.customer.home / "brought").exists()
    fixes = [e for e in events(theirs) if e.get("op") == "fix"]
    assert {e["procedure"]["source"] for e in fixes} == {"brought"}


def test_share_yes_never_approves_a_brought_fix(tmp_path: Path, identity: Path) -> None:
    people = sides(tmp_path, identity, mine="1.0", theirs=None)
    policy = people.customer.root / "policy.toml"
    scopes = ("--scope", "diagnostics", "--scope", "fixes")
    with sharing(people.customer, "--policy", policy, *scopes, logs=people.logs) as share:
        done, _ = run(people.technician, share, "mark", "-p", "name=brought")
    assert done.returncode == 3, done.stderr
    assert "no one was at the customer's screen" in done.stderr
    assert not (people.customer.home / "brought").exists()


def test_the_customers_own_version_is_not_guessed_at(tmp_path: Path, identity: Path) -> None:
    people = sides(tmp_path, identity, mine="1.0", theirs="2.0")
    (people.customer.home / "state").write_text("stale\n")
    (people.customer.home / "fresh").write_text("fresh\n")
    policy = people.customer.root / "policy.toml"
    with sharing(people.customer, "--policy", policy, logs=people.logs) as share:
        done, lines = run(people.technician, share, "freshen", "--check")
    # cat exits 0: "not needed" by exit status, though the plugin reads "stale" as needed.
    assert done.returncode == 1, done.stderr
    result = summary(lines)
    assert (result["result"], result["decided_by"]) == ("failed", "exit status")
    assert "cannot tell whether freshen is needed" in result["message"]
    assert "(version 2.0, yours is 1.0)" in result["message"]
    assert result["steps"] == [] and result["procedure"] is None  # nothing was sent
    assert "cannot tell whether freshen is needed" in done.stderr.splitlines()[-1]


def test_recap_for_people_without_json(both: Sides, share: Share) -> None:
    done, lines = run(both.technician, share, "mark", "-p", "name=marked", json_lines=False)
    assert done.returncode == 0, done.stderr
    assert lines == []  # stdout: only what the commands printed (nothing here)
    assert "== check: test -e " in done.stderr
    assert "== check again: test -e " in done.stderr
    assert "  apply: touch " in done.stderr
    assert "  rollback (if apply or verify fails): rm -f -- " in done.stderr
    assert recap(done.stderr) == f"recap: {share.address} result=changed steps=4 (exit 0)"


def test_the_plugin_source_is_what_the_tests_load() -> None:
    """The plugin module's text is Python that compiles (a typo would skip every test)."""
    compile(textwrap.dedent(PLUGIN.format(version="1.0")), "plugin", "exec")
