"""Declared procedures on a real agent on loopback: steps, parameters, brought ones, policy.

Each test drives a real agent (toolkit.agent.server) through a real technician
session over SSH, and reads both transcripts. "Nothing ran" is asserted on the
agent's own copy: its event for the request has no ``steps``, and the file a
command would have made is not there.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Customer, open_session, start_agent
from tests.threats.agent_support import assert_sealed
from toolkit.consent import Scope
from toolkit.plugins import Diagnostic, Fix, Parameter, ParameterType, Procedure
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import Policy
from toolkit.session.commands import Command, parse
from toolkit.session.results import OperationResult
from toolkit.session.technician import TechnicianSession
from toolkit.transcript.verify import read_events

BOTH = (Scope.DIAGNOSTICS, Scope.FIXES)
WORD = Parameter("word", pattern=r"[A-Za-z0-9._-]{1,64}")
ECHO = Diagnostic("echo-word", "Echo a word", parameters=(WORD,), run=[["echo", "{word}"]])
SHOW = Diagnostic(
    "show-file",
    "The start of a file",
    parameters=(Parameter("path", pattern=r"/.*", type=ParameterType.PATH),),
    reads=("{path}",),
    run=[["head", "-c", "16", "{path}"]],
)
SIZE = Diagnostic(  # a path parameter and no reads: the path is checked as a stat would be
    "size",
    "Disk usage under a directory",
    parameters=(Parameter("path", pattern=r"/.*", type=ParameterType.PATH),),
    run=[["du", "-s", "{path}"]],
)
NAME = Parameter("name", pattern=r"[a-z]{1,16}")
MARKER = Fix(
    "marker",
    "Leave a marker file",
    parameters=(NAME,),
    check=[["test", "!", "-e", "{home}/m-{name}"]],  # exits 1 once it is there: not needed
    apply=[["touch", "{home}/m-{name}"]],
    verify=[["test", "-e", "{home}/m-{name}"]],
    rollback=[["rm", "-f", "--", "{home}/m-{name}"]],
)
MAC = Diagnostic("mac-only", "Only on a Mac", platforms=("macos",), run=[["sw_vers"]])


def policy(root: Path, extra: str = "") -> Policy:
    """Files under ``root/allowed`` readable; ``extra`` TOML appended."""
    allowed = root.resolve() / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    (allowed / "note.txt").write_text("hello from note\n")
    text = f"[files]\nallow = {json.dumps([str(allowed), str(allowed) + '/**'])}\n{extra}"
    return Policy.from_toml(text, source="test policy")


def declared(name: str, declaration: Procedure | dict[str, Any] | None, **args: Any) -> Command:
    """A diag or fix as `toolkit run` sends it: with its declaration, when brought."""
    op = "fix" if isinstance(declaration, Fix) or args.pop("fix", False) else "diag"
    body: dict[str, Any] = {"name": name, **args}
    if declaration is not None:
        body["declaration"] = (
            declaration.to_dict() if isinstance(declaration, Procedure) else declaration
        )
    return Command(f"{op} {name}", op, (name,), body)


@dataclass
class Ran:
    results: list[OperationResult]
    customer: list[dict[str, Any]]  # the agent's copy: every event's fields
    technician: list[dict[str, Any]]
    asked: Customer
    home: Path

    def agent_ops(self) -> list[dict[str, Any]]:
        return [f for f in self.customer if f.get("op") in ("diag", "fix")]

    def technician_ops(self) -> list[dict[str, Any]]:
        return [f for f in self.technician if f.get("op") in ("diag", "fix")]


def session(
    tmp_path: Path,
    commands: Sequence[Command | str],
    *,
    scopes: Sequence[Scope] = (Scope.DIAGNOSTICS,),
    procedures: Sequence[Procedure] = (ECHO, SHOW, SIZE, MARKER, MAC),
    extra_policy: str = "",
    approve: bool = True,
) -> Ran:
    async def main() -> Ran:
        customer = Customer(approve_fixes=approve)
        agent, _, _ = await start_agent(
            tmp_path,
            customer=customer,
            offered=BOTH,
            policy=policy(tmp_path, extra_policy),
        )
        agent.settings.catalogue = Catalogue(procedures)
        results = []
        try:
            tech = await open_session(agent, tmp_path, scopes=scopes)
            for line in commands:
                command = parse(line) if isinstance(line, str) else line
                assert command is not None
                results.append(await tech.execute(command))
            path = await tech.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        theirs = [e.fields() for e in read_events(path) if e.code == "e"]
        return Ran(results, assert_sealed(end), theirs, customer, Path.home())

    return asyncio.run(asyncio.wait_for(main(), 60))


# -- scope per step ---------------------------------------------------------------------


def test_a_check_runs_in_a_diagnostics_only_session_and_a_change_is_refused(
    tmp_path: Path,
) -> None:
    ran = session(
        tmp_path,
        [
            "fix marker --step check -p name=one",
            "fix marker --step verify -p name=one",
            "fix marker -p name=one",
            "fix marker --step rollback -p name=one",
        ],
    )
    check, verify, apply, rollback = ran.results
    assert check.status == "ok" and check.result["step"] == "check", check
    assert check.result["steps"][0]["argv"] == ["test", "!", "-e", f"{ran.home}/m-one"]
    assert verify.exit_status == 1  # not there: verify ran, read-only, and said so
    for refused in (apply, rollback):
        assert refused.status == "refused" and "needs the fixes scope" in (refused.message or "")
    assert ran.asked.questions == []  # a read-only step is never asked
    assert not (ran.home / "m-one").exists()
    assert [("steps" in f, f.get("step")) for f in ran.agent_ops()] == [
        (True, "check"),
        (True, "verify"),
        (False, "apply"),
        (False, "rollback"),
    ]


def test_an_apply_shows_its_rollback_and_that_yes_covers_the_rollback_later(
    tmp_path: Path,
) -> None:
    ran = session(
        tmp_path,
        [
            "fix marker --step check -p name=one",
            "fix marker -p name=one",
            "fix marker --step verify -p name=one",
            "fix marker --step check -p name=one",
            "fix marker --step rollback -p name=one",
            "fix marker --step rollback -p name=two",  # other values: asked
        ],
        scopes=BOTH,
    )
    check, apply, verify, again, rollback, other = ran.results
    assert check.exit_status == 0 and again.exit_status == 1  # needed, then not
    assert apply.status == verify.status == rollback.status == "ok"
    assert not (ran.home / "m-one").exists()  # rolled back
    first, second = ran.asked.questions
    home = ran.home
    assert first.steps == (
        ("apply", (("touch", f"{home}/m-one"),)),
        ("rollback", (("rm", "-f", "--", f"{home}/m-one"),)),
    )
    assert first.summary == "Leave a marker file" and not first.brought
    assert second.steps == (("rollback", (("rm", "-f", "--", f"{home}/m-two"),)),)
    assert other.status == "ok"
    approvals = [f for f in ran.technician if f.get("type") == "approval" or "answer" in f]
    assert approvals[0]["commands"] == [
        ["touch", f"{home}/m-one"],
        ["rm", "-f", "--", f"{home}/m-one"],
    ]


def test_a_declined_apply_runs_nothing(tmp_path: Path) -> None:
    ran = session(tmp_path, ["fix marker -p name=one"], scopes=BOTH, approve=False)
    assert ran.results[0].status == "refused"
    assert "the customer declined the fix marker" in (ran.results[0].message or "")
    assert not (ran.home / "m-one").exists() and "steps" not in ran.agent_ops()[0]


# -- parameters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ('diag echo-word -p "word=x;touch pwned"', "does not match"),
        ('diag echo-word -p "word=$(touch pwned)"', "does not match"),
        ('diag echo-word -p "word=`touch pwned`"', "does not match"),
        ("diag echo-word -p word=..", "is not '.' or '..'"),
        ("diag echo-word -p word=../../etc", "has no '/'"),
        ("diag echo-word -p word=-n", "cannot start with '-'"),
        ("diag echo-word -p word=a -p nope=1", 'has no parameter "nope"'),
        ("diag echo-word", "needs -p word=VALUE"),
        ("diag show-file -p path=/etc/passwd", "show-file reads '/etc/passwd': not available"),
        ("diag show-file -p path=ALLOWED/../../etc/passwd", "no '.', '..' or '//' parts"),
        ("diag show-file -p path=-/x", "cannot start with '-'"),
        ("diag show-file -p path=relative", "a path is absolute"),
        ("diag show-file -p path=ALLOWED/missing", "show-file reads 'ALLOWED/missing'"),
        ("fix marker --step check -p name=UPPER", "does not match"),
        ("diag size -p path=/etc", "-p path names '/etc': not available"),
    ],
)
def test_a_refused_parameter_runs_nothing(tmp_path: Path, line: str, said: str) -> None:
    allowed = str(tmp_path.resolve() / "allowed")
    ran = session(tmp_path, [line.replace("ALLOWED", allowed)])
    (result,) = ran.results
    assert result.status == "refused", result
    assert said.replace("ALLOWED", allowed) in (result.message or ""), result.message
    (record,) = ran.agent_ops()
    assert record["error"] == "refused" and "steps" not in record  # no process ran
    assert not (ran.home / "pwned").exists()


def test_a_path_parameter_inside_the_allowlist_runs(tmp_path: Path) -> None:
    allowed = tmp_path.resolve() / "allowed"
    note = allowed / "note.txt"
    ran = session(tmp_path, [f"diag show-file -p path={note}", f"diag size -p path={allowed}"])
    show, size = ran.results
    assert show.status == "ok" and show.stdout == b"hello from note\n"[:16]
    assert show.result["params"] == {"path": str(note)}
    assert size.status == "ok" and size.stdout.endswith(f"{allowed}\n".encode())


# -- brought procedures -------------------------------------------------------------------

UPTIME = Diagnostic(
    "my-uptime",
    "How long the machine has run",
    description="Runs uptime.\nNothing else.",
    parameters=(WORD,),
    run=[["echo", "{word}"], ["uptime"]],
)
TOUCH = Fix(
    "my-touch",
    "Touch a file in the home directory",
    parameters=(NAME,),
    check=[["test", "!", "-e", "{home}/b-{name}"]],
    apply=[["touch", "{home}/b-{name}"]],
    rollback=[["rm", "-f", "--", "{home}/b-{name}"]],
)


def test_a_brought_diagnostic_is_shown_whole_and_approved_once_per_values(
    tmp_path: Path,
) -> None:
    ran = session(
        tmp_path,
        [
            declared("my-uptime", UPTIME, params={"word": "first"}),
            declared("my-uptime", UPTIME, params={"word": "first"}),  # not asked again
            declared("my-uptime", UPTIME, params={"word": "other"}),  # asked
        ],
    )
    assert [r.status for r in ran.results] == ["ok"] * 3
    assert ran.results[0].stdout.startswith(b"first\n")
    first, other = ran.asked.questions
    assert first.brought and first.kind == "diagnostic" and first.name == "my-uptime"
    assert first.description == "Runs uptime.\nNothing else."
    assert first.steps == (("run", (("echo", "first"), ("uptime",))),)
    assert other.steps == (("run", (("echo", "other"), ("uptime",))),)
    about = {"name": "my-uptime", "version": "1", "source": "brought", "sha256": UPTIME.sha256}
    for records in (ran.agent_ops(), ran.technician_ops()):
        assert [r["procedure"] for r in records] == [about] * 3
        assert [r["params"] for r in records] == [{"word": "first"}] * 2 + [{"word": "other"}]
        assert all(r["step"] == "run" for r in records)
        assert all("declaration" not in r for r in records if "command" not in r)
    # The technician's copy records the customer's answer to the brought diagnostic too.
    approvals = [f for f in ran.technician if "answer" in f]
    assert [a["asked_for"] for a in approvals] == ["diag", "diag"]
    assert all(a["procedure"] == "my-uptime" and "unrecorded" not in a for a in approvals)


def test_a_declined_brought_diagnostic_runs_nothing(tmp_path: Path) -> None:
    ran = session(tmp_path, [declared("my-uptime", UPTIME, params={"word": "x"})], approve=False)
    (result,) = ran.results
    assert result.status == "refused"
    assert "declined the brought diagnostic my-uptime" in (result.message or "")
    assert "steps" not in ran.agent_ops()[0]


def test_a_brought_fix_is_approved_whole_and_its_apply_again(tmp_path: Path) -> None:
    ran = session(
        tmp_path,
        [
            declared("my-touch", TOUCH, params={"name": "x"}, step="check"),
            declared("my-touch", TOUCH, params={"name": "x"}),  # apply: asked again
            declared("my-touch", TOUCH, params={"name": "x"}, step="check"),  # not asked
        ],
        scopes=BOTH,
    )
    assert [r.status for r in ran.results] == ["ok", "ok", "failed"]  # "failed": exit 1
    assert [r.exit_status for r in ran.results] == [0, 0, 1]
    assert (ran.home / "b-x").exists()
    whole, apply = ran.asked.questions
    assert whole.brought and [s for s, _ in whole.steps] == ["check", "apply", "rollback"]
    assert apply.brought and [s for s, _ in apply.steps] == ["apply", "rollback"]


def test_a_brought_fix_whose_first_step_is_apply_is_asked_once(tmp_path: Path) -> None:
    ran = session(tmp_path, [declared("my-touch", TOUCH, params={"name": "y"})], scopes=BOTH)
    assert ran.results[0].status == "ok" and (ran.home / "b-y").exists()
    (asked,) = ran.asked.questions  # the whole procedure, apply and rollback included
    assert [s for s, _ in asked.steps] == ["check", "apply", "rollback"]


def test_a_brought_change_in_a_diagnostics_only_session_is_refused(tmp_path: Path) -> None:
    ran = session(tmp_path, [declared("my-touch", TOUCH, params={"name": "z"})])
    assert "needs the fixes scope" in (ran.results[0].message or "")
    assert ran.asked.questions == [] and not (ran.home / "b-z").exists()


def test_a_brought_one_named_like_an_installed_one_must_be_the_same(tmp_path: Path) -> None:
    mine = Diagnostic("echo-word", "Echo, my way", parameters=(WORD,), run=[["id"]])
    ran = session(
        tmp_path,
        [
            declared("echo-word", mine, params={"word": "a"}),
            declared("echo-word", ECHO, params={"word": "same"}),  # identical: installed
        ],
    )
    differs, same = ran.results
    assert differs.status == "refused"
    assert "this machine has its own echo-word (version 1)" in (differs.message or "")
    assert same.status == "ok" and same.result["procedure"]["source"] == "installed"
    assert ran.asked.questions == []
    assert "steps" not in ran.agent_ops()[0]


@pytest.mark.parametrize(
    ("declaration", "said"),
    [
        ({**UPTIME.to_dict(), "run": "uptime"}, "run: a list of"),
        ({**UPTIME.to_dict(), "python": "import os"}, "no field 'python'"),
        ({**UPTIME.to_dict(), "run": [["{word}"]]}, "first word is literal"),
        ({k: v for k, v in UPTIME.to_dict().items() if k != "summary"}, "has no summary"),
        ({**UPTIME.to_dict(), "parameters": [{"name": "word"}]}, "a parameter is an object"),
    ],
)
def test_a_malformed_declaration_is_refused_naming_the_field(
    tmp_path: Path, declaration: dict[str, Any], said: str
) -> None:
    ran = session(tmp_path, [declared("my-uptime", declaration, params={"word": "a"})])
    (result,) = ran.results
    assert result.status == "failed" and result.error == "malformed", result
    assert "the declaration sent is malformed" in (result.message or "")
    assert said in (result.message or ""), result.message
    assert ran.asked.questions == [] and "steps" not in ran.agent_ops()[0]


# -- policy and platform ------------------------------------------------------------------


def test_the_policy_denies_installed_and_brought_procedures_by_name(tmp_path: Path) -> None:
    ran = session(
        tmp_path,
        [
            "diag echo-word -p word=a",
            declared("my-uptime", UPTIME, params={"word": "a"}),
            "fix marker --step check -p name=a",
        ],
        extra_policy='[procedures]\nallow = ["*"]\ndeny = ["echo-*", "my-*"]\n',
    )
    echo, brought, marker = ran.results
    assert "does not allow the diagnostic echo-word" in (echo.message or "")
    assert "does not allow the diagnostic my-uptime" in (brought.message or "")
    assert marker.status == "ok"
    assert ran.asked.questions == []  # refused before the customer is asked


def test_hello_lists_only_what_the_policy_allows_here(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        agent, _, _ = await start_agent(
            tmp_path, policy=policy(tmp_path, '[procedures]\nallow = ["marker", "mac-*"]\n')
        )
        agent.settings.catalogue = Catalogue([ECHO, MARKER, MAC])
        try:
            tech: TechnicianSession = await open_session(agent, tmp_path)
            await tech.end("done")
        finally:
            await agent.stop("test over")
        return tech.info

    info = asyncio.run(asyncio.wait_for(main(), 60))
    assert info["procedures"]["diagnostics"] == {}  # echo-word denied, mac-only for macos
    assert info["procedures"]["fixes"]["marker"] == {
        **MARKER.to_dict(),
        "sha256": MARKER.sha256,
        "source": "installed",
    }


def test_a_procedure_for_another_platform_is_refused_cleanly(tmp_path: Path) -> None:
    elsewhere = Diagnostic("mac-too", "Mac", platforms=("macos", "windows"), run=[["true"]])
    ran = session(tmp_path, ["diag mac-only", declared("mac-too", elsewhere)])
    installed, brought = ran.results
    assert installed.status == brought.status == "refused"
    assert "the diagnostic mac-only is for macos, not linux" in (installed.message or "")
    assert "mac-too is for macos, windows, not linux" in (brought.message or "")


def test_the_search_path_finds_a_program_the_fixed_path_lacks(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    standin = bin_dir / "toolkit-standin"
    standin.write_text('#!/bin/sh\necho stand-in "$PATH"\n')
    standin.chmod(0o755)
    probe = Diagnostic("probe", "A stand-in program", run=[["toolkit-standin"]])
    ran = session(
        tmp_path,
        ["diag probe"],
        procedures=(probe,),
        extra_policy=f"[commands]\nsearch_path = [{json.dumps(str(bin_dir))}]\n",
    )
    (result,) = ran.results
    assert result.status == "ok", result
    assert result.stdout == f"stand-in {bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin\n".encode()
    without = session(tmp_path / "again", ["diag probe"], procedures=(probe,))
    assert without.results[0].exit_status == 127  # not on the fixed PATH


# -- both transcripts ---------------------------------------------------------------------


def test_both_copies_record_the_procedure_step_and_values(tmp_path: Path) -> None:
    ran = session(tmp_path, ["fix marker --step check -p name=rec"], scopes=BOTH)
    about = {"name": "marker", "version": "1", "source": "installed", "sha256": MARKER.sha256}
    for record in (ran.agent_ops()[0], ran.technician_ops()[0]):
        assert record["procedure"] == about
        assert record["step"] == "check" and record["params"] == {"name": "rec"}
        assert record["steps"][0]["argv"] == ["test", "!", "-e", f"{ran.home}/m-rec"]
