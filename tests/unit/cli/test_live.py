"""The customer's live view without a terminal: questions, keys, the shell's mirror."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from rich.console import Console

from toolkit.agent.operations import Answer, Question
from toolkit.cli.live import LiveView, Mirror


def view() -> tuple[LiveView, io.StringIO, list[str]]:
    text = io.StringIO()
    quits: list[str] = []
    live = LiveView(Any, Console(file=text, force_terminal=False), keys=True)  # type: ignore[arg-type]
    live.on_quit = lambda: quits.append("q")
    return live, text, quits


def ask_then(keys: str, timeout: float = 5.0) -> tuple[bool | Answer, str, list[str]]:
    live, text, quits = view()

    async def main() -> bool | Answer:
        asking = asyncio.ensure_future(live.ask("Run fix x?", ["  $ rm -rf -- /tmp/x"], timeout))
        await asyncio.sleep(0.01)
        for key in keys:
            live._key(key)
        return await asking

    return asyncio.run(main()), text.getvalue(), quits


def test_y_is_yes_and_the_exact_commands_are_shown() -> None:
    answer, shown, _ = ask_then("y")
    assert answer is True
    assert "$ rm -rf -- /tmp/x" in shown and "Allow? [y/N]" in shown


def test_enter_n_and_other_keys_are_no_or_nothing() -> None:
    assert ask_then("\r")[0] is False
    assert ask_then("n")[0] is False
    assert ask_then("xzn")[0] is False  # x and z are ignored, n answers


def test_no_answer_in_time_is_no_answer_not_a_no() -> None:
    answer, shown, _ = ask_then("", timeout=0.05)
    assert answer is Answer.NO_ANSWER and "Allow?" in shown


def test_q_ends_the_session_and_answers_no() -> None:
    answer, _, quits = ask_then("q")
    assert answer is False and quits == ["q"]


def test_mirror_shows_the_screen_not_the_escape_sequences() -> None:
    mirror = Mirror(20, 5)
    mirror.feed(b"\x1b[1;31mred\x1b[0m text\r\nsecond line\r\n\x1b[2Kthird")
    assert mirror.rows() == ["red text", "second line", "third"]
    mirror.resize(40, 10)
    mirror.feed(b"\r\n" + b"y" * 30)
    assert mirror.rows()[-1] == "y" * 30


def test_yes_never_answers_for_a_fix_outside_the_scope() -> None:
    """share --yes approves what the consent asked for; outside it, only the person decides."""
    from toolkit.cli.share import _Approver

    live, text, _ = view()
    approver = _Approver(yes=True)

    async def main() -> tuple[bool | Answer | None, bool | Answer | None]:
        approver.live = None  # no one at a terminal: nobody to ask (None), not a "no"
        mark = Question("mark", (("apply", (("touch", "x"),)),), "Leave a mark", out_of_scope=True)
        alone = await approver.ask_out_of_scope(mark)
        approver.live = live
        asking = asyncio.ensure_future(approver.ask_out_of_scope(mark))
        await asyncio.sleep(0.01)
        live._key("n")
        return alone, await asking

    assert asyncio.run(main()) == (None, False)
    assert "$ touch x" in text.getvalue()
