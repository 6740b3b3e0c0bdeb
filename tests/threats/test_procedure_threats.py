"""A hostile technician and declared procedures (issue 16's security review).

Each test is named after its attack and drives a real agent on loopback: a
technician session, or the raw protocol spoken by hand. "Nothing ran" is a
marker file a command would have made, and the agent's own copy.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Customer, open_session, start_agent
from tests.threats.agent_support import assert_sealed, echo, hostile_session, request
from toolkit.agent.operations import Answer, Question
from toolkit.consent import Scope
from toolkit.errors import UsageError
from toolkit.plugins import Diagnostic, Fix, Parameter, Procedure
from toolkit.plugins.catalogue import Catalogue
from toolkit.policy import Policy
from toolkit.session.commands import Command
from toolkit.session.results import OperationResult

BOTH = (Scope.DIAGNOSTICS, Scope.FIXES)


def brought(procedure: Procedure | dict[str, Any], **args: Any) -> Command:
    """A diag or fix the technician brings: its whole declaration rides along."""
    body = procedure.to_dict() if isinstance(procedure, Procedure) else procedure
    op = "fix" if body["kind"] == "fix" else "diag"
    fields = {"name": body["name"], "declaration": body, **args}
    return Command(f"{op} {body['name']}", op, (body["name"],), fields)


async def _session(
    tmp_path: Path,
    commands: Sequence[Command],
    *,
    customer: Customer,
    approve_fix: Any = None,
    scopes: Sequence[Scope] = (Scope.DIAGNOSTICS,),
    installed: Sequence[Procedure] = (),
) -> tuple[list[OperationResult], list[dict[str, Any]]]:
    agent, _, _ = await start_agent(tmp_path, customer=customer, offered=BOTH)
    agent.settings.catalogue = Catalogue(installed)
    if approve_fix is not None:
        agent.settings.approve_fix = approve_fix
    try:
        tech = await open_session(agent, tmp_path, scopes=scopes)
        results = [await tech.execute(command) for command in commands]
        await tech.end("done")
        end = await asyncio.wait_for(agent.wait(), 10)
    finally:
        await agent.stop("test over")
    return results, assert_sealed(end)


def session(
    tmp_path: Path, commands: Sequence[Command], **options: Any
) -> tuple[list[OperationResult], list[dict[str, Any]]]:
    options.setdefault("customer", Customer())
    return asyncio.run(asyncio.wait_for(_session(tmp_path, commands, **options), 60))


# -- `toolkit share --yes` and brought procedures -----------------------------------------


def _marker_diagnostic(marker: Path) -> Diagnostic:
    return Diagnostic(
        "looks-harmless",
        "Shows the uptime",
        run=[["uptime"], ["touch", str(marker)]],  # a "diagnostic" that changes things
    )


@pytest.mark.parametrize("scopes", [(Scope.DIAGNOSTICS,), BOTH], ids=["diagnostics", "fixes"])
def test_share_yes_does_not_approve_a_brought_diagnostic_for_nobody(
    tmp_path: Path, scopes: tuple[Scope, ...]
) -> None:
    """`--yes` approves what the consent asked for; a brought procedure is arbitrary
    commands the consent never named, so without a person to ask it is refused."""
    from toolkit.cli.share import _Approver

    marker = tmp_path / "changed"
    approver = _Approver(yes=True)  # no live view: nobody at the screen
    (result,), events = session(
        tmp_path,
        [brought(_marker_diagnostic(marker))],
        approve_fix=approver.approve_fix,
        scopes=scopes,
    )
    assert result.status == "refused", result
    assert "no one was at the customer's screen" in (result.message or "")
    assert not marker.exists()
    (event,) = [e for e in events if e.get("op") == "diag"]
    assert "steps" not in event and event["error"] == "refused"
    (asked,) = [e for e in events if "answer" in e]
    assert asked["answer"] == "nobody to ask" and asked["by"] is None


def test_share_yes_still_approves_an_installed_fix(tmp_path: Path) -> None:
    """What --yes is for (scripts, tests) keeps working: an installed fix in the scope."""
    from toolkit.cli.share import _Approver

    marker = tmp_path / "fixed"
    mark = Fix("mark", "Leave a mark", apply=[["touch", str(marker)]])
    approver = _Approver(yes=True)
    fix = Command("fix mark", "fix", ("mark",), {"name": "mark"})
    (result,), events = session(
        tmp_path, [fix], approve_fix=approver.approve_fix, scopes=BOTH, installed=[mark]
    )
    assert result.status == "ok", result
    assert marker.exists()
    (asked,) = [e for e in events if "answer" in e]
    assert asked["answer"] == "approved" and asked["by"] == "--yes"


def test_share_yes_asks_the_person_at_the_live_view_about_a_brought_one(
    tmp_path: Path,
) -> None:
    from toolkit.cli.share import _Approver

    class View:
        keys = True

        def __init__(self) -> None:
            self.asked: list[str] = []

        async def ask(
            self, title: str, lines: Sequence[str], timeout: float, subject: str | None = None
        ) -> bool | Answer:
            self.asked.append(title)
            return False  # the person says no

    marker = tmp_path / "changed"
    approver = _Approver(yes=True)
    view = View()
    approver.live = view  # type: ignore[assignment]
    (result,), _ = session(
        tmp_path, [brought(_marker_diagnostic(marker))], approve_fix=approver.approve_fix
    )
    assert result.status == "refused" and "declined" in (result.message or "")
    assert view.asked == ["The technician brings the diagnostic looks-harmless"]
    assert not marker.exists()


# -- a parameter pattern that makes the agent's event loop backtrack for minutes ----------

#: Nested quantifiers: matching 29 letters and a digit takes 2^29 steps in Python's re.
SLOW = r"([a-z]+)+"
SLOW_VALUE = "a" * 29 + "0"


def _slow_declaration(where: str) -> dict[str, Any]:
    word = Parameter("word", pattern=r"[a-z0-9]{1,64}")
    body = Diagnostic("slow-pattern", "Echo a word", parameters=(word,), run=[["echo", "{word}"]])
    declaration = body.to_dict()
    slow = declaration["parameters"][0]
    slow.update(pattern=SLOW, default=SLOW_VALUE if where == "default" else None)
    if where == "past the limit":  # built one by one before their number is checked
        others = [
            {**slow, "name": f"p{i}", "pattern": "[a-z]+", "default": None} for i in range(20)
        ]
        declaration["parameters"] = [*others, {**slow, "name": "last", "default": SLOW_VALUE}]
    return declaration


@pytest.mark.parametrize("where", ["value", "default", "past the limit"])
def test_a_catastrophic_parameter_pattern_never_stalls_the_agent(
    tmp_path: Path, where: str
) -> None:
    """A brought declaration's pattern is run against the technician's value (or its own
    default) when it is parsed and bound: on the agent's event loop, a pattern that
    backtracks exponentially would freeze the agent, and the customer's Ctrl-C with it."""

    async def main() -> None:
        async with hostile_session(tmp_path) as hostile:
            declaration = _slow_declaration(where)
            params = {"word": SLOW_VALUE} if where == "value" else {}
            started = time.monotonic()
            hostile.channel.send(
                request(1, "diag", name="slow-pattern", declaration=declaration, params=params)
            )
            hostile.channel.send(echo(2))
            first, second = await hostile.channel.answers(2)
            # The agent kept serving while the pattern was tried elsewhere, then refused it.
            assert first.id == 2 and first.message["ok"] is True
            assert second.id == 1 and second.error == "refused", second.message
            assert "too long" in second.message["error"]["message"]
            assert time.monotonic() - started < 8
            assert hostile.customer.questions == []  # refused before the customer is asked
            await hostile.end()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_an_ordinary_brought_pattern_still_binds(tmp_path: Path) -> None:
    word = Parameter("word", pattern=r"/|(/[a-z]+)+|[a-z]{1,9}", default="abc")
    diag = Diagnostic("echo-it", "Echo a word", parameters=(word,), run=[["echo", "{word}"]])
    (default, given, refused), _ = session(
        tmp_path,
        [brought(diag), brought(diag, params={"word": "xyz"}), brought(diag, params={"word": "X"})],
    )
    assert (default.status, default.stdout) == ("ok", b"abc\n")
    assert (given.status, given.stdout) == ("ok", b"xyz\n")
    assert refused.status == "refused" and "does not match" in (refused.message or "")


# -- what the customer is shown ------------------------------------------------------------


def _asked(tmp_path: Path, procedure: Procedure, **args: Any) -> Question:
    customer = Customer()
    session(tmp_path, [brought(procedure, **args)], customer=customer, scopes=BOTH)
    (question,) = customer.questions
    return question


def test_a_long_command_is_shown_whole_to_the_customer(tmp_path: Path) -> None:
    """A harmless start pushed the dangerous end of a command past the 500 characters
    a line of text is cut to: the customer must see all of it."""
    from toolkit.cli.share import _fix_question

    hidden = "; rm -rf ~/Documents"
    command = ["sh", "-c", "echo " + "x" * 600 + hidden]
    diag = Diagnostic("long-one", "Echo a lot", run=[command])
    shown = _fix_question(_asked(tmp_path, diag))
    text = "\n".join([shown.title, *shown.lines])
    assert hidden in text


def test_a_long_description_does_not_push_the_commands_off_the_panel(tmp_path: Path) -> None:
    from toolkit.cli.share import DESCRIPTION_LINES, _fix_question

    description = "\n".join(["Nothing to see here."] * 150 + ["Press y to go on."])
    fix = Fix(
        "wordy",
        "Tidies up",
        description=description,
        check=[["true"]],
        apply=[["rm", "-rf", "/tmp/does-not-exist-toolkit"]],
    )
    shown = _fix_question(_asked(tmp_path, fix, step="check"))
    where = next(i for i, line in enumerate(shown.lines) if "rm -rf" in line)
    assert where < 12, shown.lines[:where]  # the commands come before the description
    told = [line for line in shown.lines if "Nothing to see here." in line]
    assert len(told) <= DESCRIPTION_LINES
    assert any("more lines" in line for line in shown.lines)
    assert "Press y to go on." not in "\n".join(shown.lines)


def test_the_panel_says_a_brought_procedure_is_not_vouched_for(tmp_path: Path) -> None:
    from toolkit.cli.share import _fix_question

    diag = Diagnostic("quiet", "Says hello", run=[["echo", "hello"]])
    shown = _fix_question(_asked(tmp_path, diag))
    assert shown.title == "The technician brings the diagnostic quiet"
    text = " ".join(shown.lines)
    assert "the technician sent it" in text and "cannot tell" in text


# -- [commands] search_path: the customer's policy, and only safe directories ---------------


def _search_path_policy(directory: Path) -> Policy:
    text = f"[commands]\nsearch_path = [{json.dumps(str(directory))}]\n"
    return Policy.from_toml(text, source="test policy")


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_a_search_path_directory_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    """Anyone who can write there could plant a `systemctl` that every fix then runs."""
    shared = tmp_path / "shared-bin"
    shared.mkdir()
    os.chmod(shared, mode)
    with pytest.raises(UsageError, match="others can write"):
        _search_path_policy(shared)


def test_a_search_path_under_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    """Whoever can write the parent can rename the directory and put their own in place."""
    parent = tmp_path / "open"
    (parent / "bin").mkdir(parents=True)
    os.chmod(parent, 0o777)  # noqa: S103 -- the attack under test
    with pytest.raises(UsageError, match="others can write"):
        _search_path_policy(parent / "bin")


def test_a_search_path_symlink_is_resolved_when_the_policy_loads(tmp_path: Path) -> None:
    real = tmp_path / "real-bin"
    real.mkdir()
    link = tmp_path / "bin-link"
    link.symlink_to(real)
    assert _search_path_policy(link).search_path == (str(real.resolve()),)


def test_a_question_taller_than_the_terminal_is_never_approved_in_part() -> None:
    """rich cuts a view taller than the terminal at its bottom: the last commands and
    the key help. A y then approves commands the customer never saw; it waits instead."""
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from toolkit.cli.live import LiveView

    console = Console(file=io.StringIO(), force_terminal=True, width=80, height=24)
    live = LiveView(SimpleNamespace(session=None), console, keys=True)  # type: ignore[arg-type]
    lines = [f"  $ step {i}" for i in range(60)] + ["  $ rm -rf ~/Documents"]

    async def main() -> bool | Answer:
        asking = asyncio.ensure_future(live.ask("The technician brings the fix x", lines, 30))
        while live.question is None:
            await asyncio.sleep(0)  # until the question is up (a turn of the loop, no time)
        console.print(live)
        drawn = console.file.getvalue()  # type: ignore[attr-defined]
        assert "This question takes" in drawn and "rm -rf" not in drawn
        live._key("y")
        assert not asking.done()  # the y did not count
        console.size = (80, 100)  # the customer made the window taller
        console.print(live)
        assert "rm -rf ~/Documents" in console.file.getvalue()  # type: ignore[attr-defined]
        live._key("y")
        return await asking

    assert asyncio.run(main()) is True


@pytest.mark.parametrize("pattern", ["a{99999999999}", "(" * 250 + "a" + ")" * 250])
def test_a_pattern_python_cannot_compile_is_malformed_and_the_session_goes_on(
    tmp_path: Path, pattern: str
) -> None:
    """re.compile raises OverflowError (not re.error) for a huge repeat count."""

    async def main() -> None:
        async with hostile_session(tmp_path) as hostile:
            declaration = _slow_declaration("value")
            declaration["parameters"][0]["pattern"] = pattern
            hostile.channel.send(
                request(1, "diag", name="slow-pattern", declaration=declaration, params={})
            )
            (answer,) = await hostile.channel.answers(1)
            assert answer.id == 1 and answer.error in ("malformed", "refused"), answer.message
            await hostile.channel.still_serves()
            end = await hostile.end()
            assert_sealed(end)

    asyncio.run(asyncio.wait_for(main(), 60))


# -- approvals cover exactly what was shown --------------------------------------------------


def _touch_fix(marker_dir: Path, name: str = "my-touch", extra: str = "") -> Fix:
    word = Parameter("name", pattern=r"[a-z]{1,16}")
    return Fix(
        name,
        "Leave a marker",
        parameters=(word,),
        check=[["test", "!", "-e", f"{marker_dir}/{{name}}{extra}"]],
        apply=[["touch", f"{marker_dir}/{{name}}{extra}"]],
        rollback=[["rm", "-f", "--", f"{marker_dir}/{{name}}{extra}"]],
    )


def test_a_brought_one_approved_then_resent_changed_is_asked_again(tmp_path: Path) -> None:
    first = _touch_fix(tmp_path)
    changed = _touch_fix(tmp_path, extra="-and-more")  # same name, other commands
    customer = Customer()
    results, events = session(
        tmp_path,
        [
            brought(first, params={"name": "a"}, step="check"),
            brought(changed, params={"name": "a"}, step="check"),
            brought(first, params={"name": "b"}, step="check"),
            brought(first, params={"name": "a"}, step="check"),  # the one approved: not asked
        ],
        customer=customer,
        scopes=BOTH,
    )
    assert [r.status for r in results] == ["ok"] * 4
    assert len(customer.questions) == 3
    assert customer.questions[1].steps[0][1] == (("test", "!", "-e", f"{tmp_path}/a-and-more"),)
    digests = [e["procedure"]["sha256"] for e in events if e.get("op") == "fix"]
    assert digests == [first.sha256, changed.sha256, first.sha256, first.sha256]


def test_a_rollback_is_covered_only_by_the_same_fix_and_values(tmp_path: Path) -> None:
    one, other = _touch_fix(tmp_path, "fix-one"), _touch_fix(tmp_path, "fix-two")
    customer = Customer()
    results, _ = session(
        tmp_path,
        [
            Command(
                "fix fix-one", "fix", ("fix-one",), {"name": "fix-one", "params": {"name": "a"}}
            ),
            *(
                Command(f"fix {n}", "fix", (n,), {"name": n, "step": "rollback", "params": p})
                for n, p in (
                    ("fix-two", {"name": "a"}),
                    ("fix-one", {"name": "b"}),
                    ("fix-one", {"name": "a"}),
                )
            ),
        ],
        customer=customer,
        scopes=BOTH,
        installed=[one, other],
    )
    assert [r.status for r in results] == ["ok"] * 4
    asked = [(q.name, q.steps[0][0]) for q in customer.questions]
    # The apply (shown with its rollback); then the other fix's and the other values'
    # rollbacks were asked; the same fix and values' rollback was not.
    assert asked == [("fix-one", "apply"), ("fix-two", "rollback"), ("fix-one", "rollback")]


def test_bidi_and_zero_width_characters_in_a_brought_one_are_escaped_on_the_panel(
    tmp_path: Path,
) -> None:
    from toolkit.cli.share import _fix_question

    diag = Diagnostic(
        "quiet",
        "Shows \u202etxt.exe the uptime",
        description="Harmless\u200b.\nReally\u2028harmless.",
        run=[["echo", "safe\u202e; rm -rf ~"]],
    )
    shown = _fix_question(_asked(tmp_path, diag))
    text = "\n".join([shown.title, *shown.lines, shown.subject])
    for hidden in ("\u202e", "\u200b", "\u2028"):
        assert hidden not in text
    assert "\\u202e" in text and "\\u200b" in text


# -- [procedures] brought = false: installed ones only ----------------------------------------


def test_the_policy_can_refuse_every_brought_procedure(tmp_path: Path) -> None:
    """deny is by name, and a technician names what they bring: the customer needs a way
    to run only what is installed on the machine, whatever it is called."""
    installed = Diagnostic("hello-there", "Say hello", run=[["echo", "hello"]])
    other = Diagnostic("anything-else", "Say hi", run=[["echo", "hi"]])
    customer = Customer()

    async def main() -> tuple[list[OperationResult], list[dict[str, Any]]]:
        policy = Policy.from_toml("[procedures]\nbrought = false\n", source="test policy")
        agent, _, _ = await start_agent(tmp_path, customer=customer, offered=BOTH, policy=policy)
        agent.settings.catalogue = Catalogue([installed])
        try:
            tech = await open_session(agent, tmp_path)
            results = [
                await tech.execute(brought(other)),
                await tech.execute(brought(installed)),  # the same digest: the installed one
            ]
            await tech.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        return results, assert_sealed(end)

    (refused, same), events = asyncio.run(asyncio.wait_for(main(), 60))
    assert refused.status == "refused"
    assert "runs only the procedures installed" in (refused.message or "")
    assert same.status == "ok" and same.stdout == b"hello\n"
    assert customer.questions == []
    sources = [e.get("procedure", {}).get("source") for e in events if e.get("op") == "diag"]
    assert sources == [None, "installed"]


def test_brought_is_true_or_false() -> None:
    assert Policy.default().procedures.brought is True
    with pytest.raises(UsageError, match=r"procedures\.brought"):
        Policy.from_toml('[procedures]\nbrought = "no"\n', source="test policy")


@pytest.mark.parametrize("step", ["check", "verify"])
def test_a_brought_fixs_read_only_step_is_asked_first_in_a_diagnostics_only_session(
    tmp_path: Path, step: str
) -> None:
    """A brought fix's check or verify may change things whatever it is called: the
    customer is asked about the whole fix before its first step, whichever it is."""
    marker = tmp_path / "changed"
    fix = Fix(
        "sneaky",
        "Checks a thing",
        check=[["touch", str(marker)]],
        apply=[["true"]],
        verify=[["touch", str(marker)]],
    )
    customer = Customer(approve_fixes=False)
    (result,), events = session(tmp_path, [brought(fix, step=step)], customer=customer)
    assert result.status == "refused" and not marker.exists()
    (asked,) = customer.questions
    assert asked.brought and [s for s, _ in asked.steps] == ["check", "apply", "verify"]
    assert not asked.out_of_scope
    (event,) = [e for e in events if e.get("op") == "fix"]
    assert "steps" not in event
