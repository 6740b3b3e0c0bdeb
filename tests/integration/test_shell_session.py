"""The granted shell and cancel, through the library: a real agent and PTY on loopback.

What both transcripts keep of a shell (output, echoed input, sizes) and what
they never keep (input typed while the PTY does not echo), that both copies
withhold exactly the same bytes, and that Ctrl-C's ``cancel`` stops one
operation without ending the session.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.session_support import Collector, Customer, open_session, start_agent
from tests.threats.agent_support import assert_sealed
from toolkit.agent.server import Agent
from toolkit.consent import Scope
from toolkit.errors import PolicyRefused, TranscriptWriteError
from toolkit.session.commands import parse
from toolkit.session.shell import ShellClient
from toolkit.session.technician import TechnicianSession
from toolkit.transcript.models import Event
from toolkit.transcript.verify import read_events

SECRET = "hunter2-do-not-record"
SUDO_SECRET = "s3cret-sudo-pw"
SHELL = (Scope.DIAGNOSTICS, Scope.SHELL)
#: A sudo -S style prompt, as sudo does it: echo off, then the prompt on stderr, one
#: line read, echo back on.
FAKE_SUDO = (
    "fake_sudo() { stty -echo; printf '[sudo] password for %s: ' \"$USER\" >&2;"
    ' read -r pw; stty echo; echo; echo "sudo got ${#pw} chars"; }'
)


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


@dataclass
class Live:
    agent: Agent
    screen: Collector
    session: TechnicianSession
    root: Path


@asynccontextmanager
async def live_session(
    root: Path,
    *,
    offered: tuple[Scope, ...] = SHELL,
    asked: tuple[Scope, ...] = SHELL,
    customer: Customer | None = None,
) -> AsyncIterator[Live]:
    agent, screen, _ = await start_agent(root, offered=offered, customer=customer)
    try:
        session = await open_session(agent, root, scopes=asked)
        yield Live(agent, screen, session, root)
    finally:
        await agent.stop("test over")


class Screen:
    """What the technician's terminal got from the shell."""

    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, data: bytes) -> None:
        self.data += data

    async def shows(self, text: str, seconds: float = 10.0) -> None:
        deadline = time.monotonic() + seconds
        while text.encode() not in self.data:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in {bytes(self.data)!r}")
            await asyncio.sleep(0.01)


async def shell_shown(live: Live) -> tuple[ShellClient, Screen]:
    """A shell that answered: ``echo in-shell`` came back on its screen."""
    screen = Screen()
    shell = await live.session.open_shell("xterm", 80, 24, screen)
    await typed(shell, "echo in-shell\r")
    await screen.shows("in-shell\r\n")
    return shell, screen


async def typed(shell: ShellClient, text: str, *, per_key: bool = True) -> None:
    """Type like a person: one key at a time (so each key meets the PTY's current mode)."""
    keys = [text[i : i + 1] for i in range(len(text))] if per_key else [text]
    for key in keys:
        shell.write(key.encode())
        await asyncio.sleep(0.002)


def events(path: Path) -> list[Event]:
    return read_events(path)


def input_text(path: Path) -> str:
    return "".join(e.data for e in events(path) if e.code == "i")


def output_text(path: Path) -> str:
    return "".join(e.data for e in events(path) if e.code == "o")


def fields(path: Path) -> list[dict[str, Any]]:
    return [e.fields() for e in events(path) if e.code == "e"]


Script = Callable[[ShellClient, "Screen"], Awaitable[None]]


async def shell_session(live: Live, script: Script) -> Any:
    screen = Screen()
    shell = await live.session.open_shell("xterm-256color", 80, 24, screen)
    await screen.shows("~")  # the prompt: user@host:~# (HOME is the working directory)
    await script(shell, screen)
    await typed(shell, "exit\r")
    await asyncio.wait_for(shell.wait(), 10)
    return await shell.close(), screen


async def shell_then_end(root: Path, script: Script) -> tuple[Path, Path, Live, Any]:
    """One shell running ``script``, then the end: both transcripts, the session, the result."""
    async with live_session(root) as live:
        response, screen = await shell_session(live, script)
        technician = await live.session.end("done")
        end = await asyncio.wait_for(live.agent.wait(), 10)
    assert end.transcript is not None
    assert_sealed(end)
    return technician, end.transcript, live, (response, screen)


def test_password_input_is_in_neither_transcript_while_echoed_input_is_in_both(
    tmp_path: Path,
) -> None:
    async def script(shell: ShellClient, screen: Screen) -> None:
        await typed(shell, "echo visible-marker\r")
        await screen.shows("visible-marker\r\n")
        await typed(shell, "read -s X; echo got ${#X} chars\r")
        await asyncio.sleep(0.2)  # the prompt: bash has turned echo off
        await typed(shell, SECRET + "\r")
        await screen.shows(f"got {len(SECRET)} chars")
        await typed(shell, FAKE_SUDO + "\r")
        await typed(shell, "fake_sudo\r")
        await screen.shows(f"password for {pwd.getpwuid(os.getuid()).pw_name}: ")
        await typed(shell, SUDO_SECRET + "\r", per_key=False)  # pasted, as a password manager does
        await screen.shows(f"sudo got {len(SUDO_SECRET)} chars")
        await typed(shell, "echo after-marker\r")
        await screen.shows("after-marker\r\n")

    async def main() -> None:
        technician, customer, _, (response, screen) = await shell_then_end(tmp_path, script)
        assert response is not None and response.ok, response
        for path in (technician, customer):
            text = path.read_text()
            assert SECRET not in text and SUDO_SECRET not in text, path
            typed_in = input_text(path)
            for seen in ("echo visible-marker", "read -s X", "fake_sudo", "echo after-marker"):
                assert seen in typed_in, (path, typed_in)
            assert "visible-marker\r\n" in output_text(path)
            found = fields(path)
            assert sum(f["type"] == "input_withheld" for f in found) == 2, found
            shell = next(f for f in found if f.get("op") == "shell")
            assert shell["withheld_spans"] == 2 and shell["exit_status"] == 0
        # Both copies hold exactly the same input, and the output the technician saw.
        assert input_text(technician) == input_text(customer)
        assert output_text(customer) in output_text(technician)
        assert bytes(screen.data).decode() in output_text(technician)
        assert SECRET.encode() not in screen.data  # it was never echoed either

    run(main())


def test_resizes_reach_the_shell_and_both_transcripts(tmp_path: Path) -> None:
    async def script(shell: ShellClient, screen: Screen) -> None:
        shell.resize(132, 43)
        await typed(shell, "stty size\r")
        await screen.shows("43 132")

    async def main() -> None:
        technician, customer, live, _ = await shell_then_end(tmp_path, script)
        assert live.screen.sizes == [(80, 24), (132, 43)]
        assert b"43 132" in live.screen.mirrored  # the customer's mirror saw it too
        assert live.screen.shells_ended == 1
        for path in (technician, customer):
            assert [e.data for e in events(path) if e.code == "r"] == ["80x24", "132x43"]

    run(main())


def test_no_shell_without_the_shell_scope(tmp_path: Path) -> None:
    async def main() -> None:
        async with live_session(tmp_path, asked=(Scope.DIAGNOSTICS,)) as live:
            with pytest.raises(PolicyRefused, match="shell scope"):
                await live.session.open_shell("xterm", 80, 24)
            # The session goes on.
            result = await live.session.execute(parse("run echo still-here") or _no())
            assert result.status == "ok" and result.stdout == b"still-here\n"
            technician = await live.session.end("done")
        assert any(f.get("op") == "shell" and f["type"] == "refusal" for f in fields(technician))

    run(main())


def test_the_escape_leaves_the_shell_and_the_session_goes_on(tmp_path: Path) -> None:
    async def main() -> None:
        async with live_session(tmp_path) as live:
            shell, screen = await shell_shown(live)
            response = await shell.close()  # what ~. does
            assert response is not None and response.ok
            assert response.result["exit_status"] == 129  # hung up, like ssh's ~.
            again = await live.session.open_shell("xterm", 80, 24, screen)  # and again
            await typed(again, "exit 7\r")
            await asyncio.wait_for(again.wait(), 10)
            second = await again.close()
            assert second is not None and second.result["exit_status"] == 7
            result = await live.session.execute(parse("run echo after") or _no())
            assert result.stdout == b"after\n"
            await live.session.end("done")

    run(main())


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("first_write", ["the shell's output", "the idle checkpoint"])
def test_a_full_disk_on_the_technician_side_closes_the_shell_and_says_why(
    tmp_path: Path, first_write: str
) -> None:
    async def main() -> None:
        async with live_session(tmp_path) as live:
            shell, _ = await shell_shown(live)
            # From here every write of the technician's transcript fails with ENOSPC,
            # the kernel's own full disk.
            rec = live.session.recorder
            rec._file.close()
            rec._file = open("/dev/full", "wb", buffering=0)  # noqa: SIM115 (closed by rec)
            if first_write == "the shell's output":  # over 64 KiB: written at once
                await typed(shell, "head -c 300000 /dev/zero | tr '\\0' x\r", per_key=False)
            # else no output: the first write is the ticker's time checkpoint, within 6 s
            await asyncio.wait_for(shell.wait(), 15)  # the shell does not go on unrecorded
            with pytest.raises(TranscriptWriteError, match="No space left on device"):
                await shell.close()
            assert rec.closed and rec.failure is not None
            # Nothing else runs unrecorded either.
            with pytest.raises(TranscriptWriteError):
                await live.session.execute(parse("run echo after") or _no())
            assert await live.session.client.wait_ended() is rec.failure
            await live.session.end("the technician's transcript could not be written")
            end = await asyncio.wait_for(live.agent.wait(), 10)
        assert_sealed(end)  # the customer's copy is whole, and says why it ended
        assert end.reason.endswith("the technician's transcript could not be written")

    run(main())


def test_ctrl_c_cancels_the_running_operation_not_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        async with live_session(tmp_path) as live:
            session = live.session
            running = asyncio.ensure_future(session.execute(parse("run sleep 30") or _no()))
            await asyncio.sleep(0.5)
            started = time.monotonic()
            assert await session.cancel_running() == 1
            result = await asyncio.wait_for(running, 5)
            assert time.monotonic() - started < 2
            assert (result.status, result.error) == ("failed", "cancelled")
            assert await session.cancel_running() == 0  # nothing left to cancel
            after = await session.execute(parse("run echo after") or _no())
            assert after.stdout == b"after\n"
            technician = await session.end("done")
            end = await asyncio.wait_for(live.agent.wait(), 10)
        for found in (fields(technician), assert_sealed(end)):
            sleep = [f for f in found if f.get("argv") == ["sleep", "30"]]
            assert [f["error"] for f in sleep] == ["cancelled"], found
        assert any(f.get("op") == "cancel" and f["cancelled"] for f in assert_sealed(end))
        assert "run cancelled by the technician" in live.screen.lines

    run(main())


def test_a_fix_outside_the_scope_is_asked_and_can_be_declined(tmp_path: Path) -> None:
    asked: list[tuple[str, list[list[str]]]] = []

    async def ask(question: Any) -> bool:
        assert question.out_of_scope
        asked.append((question.name, [list(c) for c in question.commands]))
        return len(asked) == 2  # no the first time, yes the second

    async def main() -> None:
        agent, _, _ = await start_agent(tmp_path)
        agent.settings.ask_out_of_scope = ask
        try:
            session = await open_session(agent, tmp_path)
            first = await session.execute(parse("fix mark") or _no())
            assert first.status == "refused" and "outside the approved scope" in (
                first.message or ""
            )
            second = await session.execute(parse("fix mark") or _no())
            assert second.status == "ok", second
            await session.end("done")
            end = await asyncio.wait_for(agent.wait(), 10)
        finally:
            await agent.stop("test over")
        assert [name for name, _ in asked] == ["mark"] * 2
        assert asked[0][1][1] == ["echo", "done"]
        fix = [f for f in assert_sealed(end) if f.get("op") == "fix"]
        assert [f.get("out_of_scope") for f in fix] == [None, True]

    run(main())


def _no() -> Any:
    raise AssertionError("the command line did not parse")


def test_an_agent_that_calls_a_password_echoed_cannot_get_it_into_the_technicians_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hostile agent marks every byte "recorded"; the technician keeps only what it saw."""
    monkeypatch.setattr("toolkit.agent.pty.PtyShell.input_mode", lambda self: "echoed")

    async def script(shell: ShellClient, screen: Screen) -> None:
        await typed(shell, "read -s X; echo got ${#X} chars\r")
        await asyncio.sleep(0.2)
        await typed(shell, SECRET + "\r")
        await screen.shows(f"got {len(SECRET)} chars")
        await asyncio.sleep(0.2)  # the agent's verdicts come in batches: not with the next line
        await typed(shell, "echo after-marker\r")
        await screen.shows("after-marker\r\n")

    async def main() -> None:
        technician, customer, _, _ = await shell_then_end(tmp_path, script)
        assert SECRET in input_text(customer)  # the lying agent's own copy has it
        assert SECRET not in technician.read_text()
        assert "echo after-marker" in input_text(technician)
        assert any(f["type"] == "input_withheld" for f in fields(technician))

    run(main())
