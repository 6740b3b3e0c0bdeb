"""The customer's view, piece by piece: fitting the terminal, a fix's question, completion.

The whole view is driven in tmux by tests/integration/test_first_use_share.py;
these pin the rules at many sizes and with the odd inputs a screen test
cannot cover in reasonable time.
"""

from __future__ import annotations

import asyncio
import io
import time
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from toolkit.agent.operations import COMPLETION, Question
from toolkit.cli.live import HELP, LiveView
from toolkit.cli.share import _fix_question
from toolkit.consent import Scope


def drawn(width: int, height: int) -> tuple[LiveView, Console]:
    """A drawing view of a running session, on a console of ``width`` x ``height``."""
    console = Console(
        file=io.StringIO(), width=width, height=height, force_terminal=True, soft_wrap=True
    )
    consent = SimpleNamespace(
        trusted=False,
        name="Alice Tech",
        email="alice@example.com",
        fingerprint="SHA256:" + "x" * 43,
        ticket="T-7",
        granted=frozenset({Scope.DIAGNOSTICS, Scope.SHELL}),
    )
    agent: Any = SimpleNamespace(session=SimpleNamespace(consent=consent, started=time.monotonic()))
    view = LiveView(agent, console, keys=False)
    view.draw = True
    return view, console


def rows(view: LiveView, console: Console) -> list[str]:
    lines = console.render_lines(view, console.options, pad=False)
    return ["".join(segment.text for segment in line).rstrip() for line in lines]


@pytest.mark.parametrize(("width", "height"), [(80, 24), (120, 35), (60, 20), (200, 60)])
def test_the_newest_shell_line_and_the_help_line_always_show(width: int, height: int) -> None:
    view, console = drawn(width, height)
    for n in range(30):  # long lines: the log wraps them
        view.say(f"run something --with-a-long-argument-{n} " + "word " * (n % 7 * 5))
    view.mirror.resize(100, 40)
    view.mirror.feed(b"".join(b"line %d\r\n" % n for n in range(200)) + b"user@host:~$ ")
    shown = rows(view, console)
    assert len(shown) < height, "\n".join(shown)
    assert shown[-1] == (HELP if len(HELP) <= width else HELP[: width - 1] + "…")
    prompt = next(i for i, row in enumerate(shown) if "user@host:~$" in row)
    assert "line 199" in shown[prompt - 1]
    assert "--with-a-long-argument-29" in "\n".join(shown)  # the newest log line too


def test_a_question_keeps_its_commands_and_the_view_still_fits() -> None:
    view, console = drawn(80, 24)
    asked = _fix_question(
        Question(
            "flush-dns",
            (("apply", (("resolvectl", "flush-caches"),)),),
            summary="Flush systemd-resolved's DNS cache",
        )
    )

    async def main() -> list[str]:
        asking = asyncio.ensure_future(view.ask(asked.title, asked.lines, 5, asked.subject))
        await asyncio.sleep(0.01)
        shown = rows(view, console)
        view._key("y")
        await asking
        return shown

    shown = asyncio.run(main())
    text = "\n".join(shown)
    assert len(shown) < 24 and shown[-1] == HELP, text
    assert text.index("Flush systemd-resolved's DNS cache") < text.index(
        "$ resolvectl flush-caches"
    )
    said = " ".join(view.log)
    assert "you approved the fix flush-dns (Flush systemd-resolved's DNS cache): 1 command" in said


def test_the_question_shows_what_the_agent_asks_and_a_run_has_no_summary() -> None:
    fix = _fix_question(
        Question(
            "clear-thumbnails",
            (("apply", (("rm", "-rf", "--", "/home/c/.cache/thumbnails"),)),),
            summary="Delete the desktop's thumbnail cache (it is rebuilt on demand)",
            out_of_scope=True,
        )
    )
    assert fix.lines[0] == "Delete the desktop's thumbnail cache (it is rebuilt on demand)"
    assert fix.subject == (
        "the fix clear-thumbnails (Delete the desktop's thumbnail cache (it is rebuilt on "
        "demand)), outside the approved scope: 1 command"
    )
    # A run of a command line outside the diagnostics list has no summary.
    other = _fix_question(Question("rm -rf /", (("run", (("rm", "-rf", "/"),)),)))
    assert other.lines == ["It runs exactly:", "  $ rm -rf /"]
    assert other.subject == "running rm -rf /: 1 command"
    run = _fix_question(Question("touch x", (("run", (("touch", "x"),)),)))
    assert run.title == "The technician asks to run touch x" and "Flush" not in run.subject


def test_completion_look_ups_fold_into_one_line_updated_in_place() -> None:
    view, _ = drawn(120, 35)
    view.say("session started")
    view.say(f"{COMPLETION}list /var (3)")
    view.say(f"{COMPLETION}list /etc (40)")
    view.say(f"{COMPLETION}list /var (3)")
    assert list(view.log)[1:] == [f"{view.log[1][:8]} completion (Tab): /etc, /var (3 look-ups)"]
    view.say("run uname -a -> exit 0")
    view.say(f"{COMPLETION}list /tmp (1)")  # a new fold after another line
    assert list(view.log)[-1].endswith("completion (Tab): /tmp (1 look-up)")
    assert len(view.log) == 4


def test_a_refused_completion_look_up_is_a_line_of_its_own_with_its_path() -> None:
    # The technician alone chooses the completion mark: a refused "look-up" may be a probe
    # of what the policy denies, and the customer sees which path, never a folded count.
    view, _ = drawn(120, 35)
    view.say(f"{COMPLETION}list /var (3)")
    view.say(f"{COMPLETION}refused: '/root/.ssh': not available under the agent's file policy")
    view.say(f"{COMPLETION}list /etc (40)")
    assert [line[9:] for line in view.log] == [
        "completion (Tab): /var (1 look-up)",
        "completion: refused: '/root/.ssh': not available under the agent's file policy",
        "completion (Tab): /etc (1 look-up)",
    ]


def test_completion_look_ups_without_a_screen_are_printed_marked() -> None:
    text = io.StringIO()
    view = LiveView(Any, Console(file=text, force_terminal=False), keys=True)  # type: ignore[arg-type]
    view.say(f"{COMPLETION}list /var (3)")
    assert text.getvalue().rstrip().endswith("] completion: list /var (3)")
