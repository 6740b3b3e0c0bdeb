"""What the customer's terminal shows when a technician's strings carry escape sequences.

A technician chooses their name, email, ticket and the reason they give for
ending a session. ``ESC[2A ESC[1G ESC[2K`` (up two lines, to the first
column, erase the line) in any of them could rewrite what toolkit share
printed before: the code, the host key, who asked, what ran. Comparing
strings cannot show what a terminal does; here toolkit share runs on a real
pseudo-terminal and everything it writes is drawn by pyte, as a person would
see it.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyte
import pytest

from tests.integration.share_process import TOOLKIT, Person, end
from tests.session_support import identity
from tests.terminal_screen import screen_of
from tests.threats.agent_support import RawChannel, request
from toolkit.consent import MalformedMessage, Scope, TechnicianHandshake, WrongCode, parse_code
from toolkit.transport import ssh as transport

#: Up two lines, to the first column, erase that line: then a fake line in its place.
MOVE_AND_ERASE = "\x1b[2A\x1b[1G\x1b[2K"
FAKE = "FAKE-LINE-SEALED"
WIDTH, HEIGHT = 160, 50
WAIT = 30.0


class Terminal:
    """``toolkit share`` on a pty (stdout and stderr), its output collected as it comes."""

    def __init__(self, proc: subprocess.Popen[bytes], leader: int) -> None:
        self.proc = proc
        self._leader = leader
        self._raw = bytearray()
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True, name="pty-reader")
        self._reader.start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._leader], [], [], 0.1)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self._leader, 65536)
            except OSError:  # EIO: every writer has closed the pty
                chunk = b""
            with self._changed:
                self._raw += chunk
                self._changed.notify_all()
            if not chunk:
                return

    def type(self, text: str) -> None:
        os.write(self._leader, text.encode())

    def wait_for(self, pattern: str, count: int = 1) -> re.Match[str]:
        """The ``count``-th match of ``pattern`` in what was written so far (waiting for it)."""
        deadline = time.monotonic() + WAIT
        with self._changed:
            while True:
                found = list(re.finditer(pattern, self._raw.decode("utf-8", "replace")))
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{pattern!r} never came:\n{self.screen()}")
                self._changed.wait(min(left, 0.1))

    def finish(self) -> list[str]:
        """Wait for share to exit; its screen, rows right-stripped."""
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        return self.screen()

    def screen_text(self) -> str:
        return "\n".join(self.screen())

    def screen(self) -> list[str]:
        screen = pyte.Screen(WIDTH, HEIGHT)
        pyte.ByteStream(screen).feed(bytes(self._raw))
        return [line.rstrip() for line in screen.display]


@contextmanager
def share_on_a_terminal(
    customer: Person, *args: str | Path, keys: bool = False
) -> Iterator[Terminal]:
    """``toolkit share ARGS`` with its output on a pty; with ``keys``, its input too."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
    env = {k: v for k, v in customer.env().items() if k != "NO_COLOR"}
    env.update(TERM="xterm-256color", COLUMNS=str(WIDTH), LINES=str(HEIGHT))
    proc = subprocess.Popen(
        [*TOOLKIT, "share", *(str(a) for a in args)],
        stdin=follower if keys else subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=customer.root,
        start_new_session=True,
    )
    os.close(follower)
    terminal = Terminal(proc, leader)
    try:
        yield terminal
    finally:
        end(proc)  # type: ignore[arg-type]
        terminal._reader.join(WAIT)
        os.close(leader)


def code_and_port(terminal: Terminal) -> tuple[str, int]:
    code = terminal.wait_for(r"One-time code: (\d{3}-\d{3}-\d{3})").group(1)
    port = int(terminal.wait_for(r"Listening on 127\.0\.0\.1:(\d+)").group(1))
    return code, port


def assert_untouched(rows: list[str], *kept: str) -> None:
    """Every line in ``kept`` is still on the screen and nothing fake took a line's place."""
    shown = "\n".join(rows)
    for text in kept:
        assert text in shown, f"{text!r} was erased:\n{shown}"
    assert not any(row.startswith(FAKE) for row in rows), shown


@pytest.fixture
def customer(tmp_path: Path) -> Person:
    return Person.make(tmp_path / "customer")


def test_a_name_with_escapes_never_reaches_the_customers_screen(customer: Person) -> None:
    """The agent refuses it (a malformed answer, one try) before anything is shown."""
    hostile = f"Alice{MOVE_AND_ERASE}{FAKE}"

    class Forging(TechnicianHandshake):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._name = hostile  # what a hand-made client sends; the MAC covers it

    async def attack(code: str, port: int) -> None:
        ask = transport.ConsentAsk(
            identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), parse_code(code)
        )
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(transport, "TechnicianHandshake", Forging)
            with pytest.raises(MalformedMessage):
                await transport.connect("127.0.0.1", port, ask)

    with share_on_a_terminal(customer, "--yes") as terminal:
        code, port = code_and_port(terminal)
        asyncio.run(attack(code, port))
        terminal.wait_for(r"malformed consent answer")
        terminal.proc.send_signal(2)
        rows = terminal.finish()
    assert_untouched(rows, f"One-time code: {code}", "Listening on 127.0.0.1:")
    assert "Alice" not in "\n".join(rows)


def test_the_consent_request_shows_escapes_as_text(tmp_path: Path) -> None:
    """Should a name or ticket with escapes get past the parser, the request is still drawn
    as text: the same printing path, on a real terminal."""
    script = f"""
import asyncio
from cryptography.hazmat.primitives.asymmetric import ed25519
from toolkit.cli.share import _Approver, say
from toolkit.consent import ApprovalRequest, Scope
from toolkit.identity.keys import blob_of

key = blob_of(ed25519.Ed25519PrivateKey.generate().public_key())
request = ApprovalRequest(
    name={f"Alice{MOVE_AND_ERASE}{FAKE}"!r}, email="alice@example.com", key=key,
    trusted=False, ticket={f"T-1{MOVE_AND_ERASE}{FAKE}"!r},
    requested=frozenset({{Scope.DIAGNOSTICS}}), offered=frozenset({{Scope.DIAGNOSTICS}}),
)
say("One-time code: 123-456-789")
say("Listening on 127.0.0.1:4242, host key SHA256:kept")
asyncio.run(_Approver(yes=True).ask(request))
"""
    shown = screen_of([sys.executable, "-c", script], cwd=tmp_path, width=WIDTH, height=HEIGHT)
    assert shown.code == 0, shown.text
    assert_untouched(shown.lines, "One-time code: 123-456-789", "host key SHA256:kept")
    assert f"Alice\\x1b[2A\\x1b[1G\\x1b[2K{FAKE}" in shown.text
    assert f"T-1\\x1b[2A\\x1b[1G\\x1b[2K{FAKE}" in shown.text
    assert b"\x1b[2A" not in shown.raw and b"\x1b[2K" not in shown.raw


def test_an_end_reason_with_escapes_cannot_rewrite_the_customers_screen(customer: Person) -> None:
    """A technician who passed consent ends the session with a reason that would erase the
    lines above it and print a fake one: the customer's terminal shows it as text."""
    reason = f"done{MOVE_AND_ERASE}{FAKE}"

    async def attack(code: str, port: int) -> None:
        ask = transport.ConsentAsk(
            identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), parse_code(code)
        )
        conn, _ = await transport.connect("127.0.0.1", port, ask)
        try:
            channel = await RawChannel.open(conn)
            channel.send(request(1, "end", reason=reason))
            answer = await channel.answer()
            assert answer.message["ok"] is True
        finally:
            conn.close()

    with share_on_a_terminal(customer, "--yes") as terminal:
        code, port = code_and_port(terminal)
        asyncio.run(attack(code, port))
        rows = terminal.finish()
    assert terminal.proc.returncode == 0
    shown = "\n".join(rows)
    assert_untouched(rows, "Listening on 127.0.0.1:", "Your copy of the transcript")
    assert f"done\\x1b[2A\\x1b[1G\\x1b[2K{FAKE}" in shown
    assert "] the technician ended the session: done" in shown  # the log, after the view


def test_a_burned_code_stays_until_the_customer_types_n(customer: Person) -> None:
    """On a terminal: the customer sees where the wrong codes came from, and how to get a
    new code; nothing comes until they type n."""

    async def guess(code: str, port: int) -> None:
        digits = code.replace("-", "")
        wrong = parse_code(f"{(int(digits) + 1) % 10**9:09d}")
        for _ in range(3):
            ask = transport.ConsentAsk(identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), wrong)
            with pytest.raises(WrongCode):
                await transport.connect("127.0.0.1", port, ask)

    with share_on_a_terminal(customer, "--yes", keys=True) as terminal:
        code, port = code_and_port(terminal)
        asyncio.run(guess(code, port))
        terminal.wait_for(r"Type n and Enter for a new code")
        assert "One-time code:" not in terminal.screen_text().split(code, 1)[1]
        terminal.type("n\n")
        fresh = terminal.wait_for(r"One-time code: (\d{3}-\d{3}-\d{3})", count=2).group(1)
        terminal.proc.send_signal(2)
        rows = terminal.finish()
    shown = "\n".join(rows)
    assert fresh != code
    assert "the code is burned after 3 failed tries (3 from 127.0.0.1)" in shown
    assert "you asked for a new code: making a new one" in shown
