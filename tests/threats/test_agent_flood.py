"""Threat: a technician who floods the customer's agent and reads nothing back.

Each message kind, sent tens of thousands of times by a technician whose channel
has stopped reading, costs the agent a bounded number of tasks, a bounded buffer
of answers and a bounded transcript, and the customer's Ctrl-C still ends the
session within a second, sealing their copy. Without the bounds these numbers
grow with the flood: one million cancels once took an agent to 842 MiB and a
67 MB transcript, and Ctrl-C no longer stopped it.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import os
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest
from asyncssh.packet import String, UInt32

from tests.integration.share_process import Person, sharing
from tests.session_support import connect_to
from tests.threats.agent_support import (
    Hostile,
    StoppedReader,
    assert_sealed,
    connect_with_code,
    echo,
    frame,
    hostile_session,
    request,
    running_agent,
)
from toolkit.agent.session import MAX_IN_FLIGHT, MAX_REJECTS, SEND_HIGH
from toolkit.agent.shell import PTY_INPUT_HIGH, RESIZE_INTERVAL
from toolkit.consent import Scope
from toolkit.protocol import KIND_DATA, MAX_FRAME
from toolkit.transcript.verify import read_events
from toolkit.transport.tuning import MAX_PACKET

#: Messages in each flood: enough that anything kept per message would show.
FLOOD = 20_000
#: What the customer's copy may hold after any flood: about MAX_REJECTS small events and
#: a few operations (a copy that grew per message would hold megabytes).
TRANSCRIPT_BOUND = 256 * 1024
#: Tasks the agent may hold at once: the requests in flight and a few of its own.
TASKS_BOUND = MAX_IN_FLIGHT + 8
#: The customer's Ctrl-C ends the session and seals their copy within this.
END_WITHIN = 1.0
BIG = 1 << 20  # a file whose one data frame overfills a stopped technician's window


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


def many(make: Callable[[int], bytes], count: int = FLOOD) -> bytes:
    return b"".join(make(i) for i in range(1, count + 1))


def allowed(root: Path, name: str = "file") -> str:
    return str(root.resolve() / "allowed" / name)


@dataclass(frozen=True)
class Flood:
    send: Callable[[Hostile, Path], Awaitable[None]]
    scopes: tuple[Scope, ...] = (Scope.DIAGNOSTICS,)


def frames(make: Callable[[Path], bytes], *scopes: Scope) -> Flood:
    async def send(h: Hostile, root: Path) -> None:
        h.channel.send(make(root))

    return Flood(send, scopes or (Scope.DIAGNOSTICS,))


def channel_requests(name: bytes, args: Callable[[int], bytes]) -> Flood:
    """Requests on the protocol channel itself, none wanting a reply."""

    async def send(h: Hostile, root: Path) -> None:
        for i in range(FLOOD):
            h.channel.chan._send_request(name, args(i))

    return Flood(send)


async def _channel_opens(h: Hostile, root: Path) -> None:
    async def one() -> None:
        await h.conn.create_session(asyncssh.SSHClientSession, encoding=None)

    await asyncio.gather(*(one() for _ in range(2_000)), return_exceptions=True)


async def _cancels_of_one_request(h: Hostile, root: Path) -> None:
    h.channel.send(request(1, "run", argv=["sleep", "30"]))
    h.channel.send(many(lambda i: request(i + 1, "cancel", target=1)))


FLOODS: dict[str, Flood] = {
    "run": frames(lambda root: many(lambda i: echo(i))),
    "read": frames(lambda root: many(lambda i: request(i, "read", path=allowed(root)))),
    "list": frames(lambda root: many(lambda i: request(i, "list", path=allowed(root, "")))),
    "stat": frames(lambda root: many(lambda i: request(i, "stat", path=allowed(root)))),
    "diag": frames(lambda root: many(lambda i: request(i, "diag", name="hello"))),
    "fix": frames(lambda root: many(lambda i: request(i, "fix", name="mark"))),
    "hello": frames(lambda root: many(lambda i: request(i, "hello", session="x"))),
    "end": frames(lambda root: many(lambda i: request(i, "end", reason="x"))),
    "shell": frames(lambda root: many(lambda i: request(i, "shell")), Scope.SHELL),
    "cancel of unknown ids": frames(
        lambda root: many(lambda i: request(i, "cancel", target=i + 1_000_000))
    ),
    "cancel of one request again and again": Flood(_cancels_of_one_request),
    "malformed": frames(lambda root: many(lambda i: frame(b"not json"))),
    "data frames": frames(
        lambda root: many(lambda i: struct.pack(">IBIB", 8, KIND_DATA, i, 1) + b"hi")
    ),
    "unknown frame kind": frames(lambda root: many(lambda i: struct.pack(">IB", 3, 7) + b"ab")),
    "zero-length frames": frames(lambda root: many(lambda i: struct.pack(">I", 0))),
    # One frame announcing 4 GiB: everything after it is skipped, requests included.
    "oversized frame": frames(lambda root: struct.pack(">I", 0xFFFFFFFF) + many(echo)),
    "env": channel_requests(b"env", lambda i: String(f"VAR{i}") + String("x" * 100)),
    "window-change": channel_requests(
        b"window-change", lambda i: UInt32(80 + i % 50) + UInt32(24) + UInt32(0) + UInt32(0)
    ),
    "signal": channel_requests(b"signal", lambda i: String("INT")),
    "channel opens": Flood(_channel_opens),
}


def counts(events: list[dict[str, object]]) -> tuple[int, int]:
    """(rejected messages and refused channels, operations and other refusals)."""
    rejected = [
        e
        for e in events
        if e["type"] == "protocol_error" or (e["type"] == "refusal" and e["op"] == "channel")
    ]
    served = [e for e in events if e["type"] in ("operation", "refusal") and e not in rejected]
    return len(rejected), len(served)


async def ctrl_c(h: Hostile) -> float:
    """The customer's Ctrl-C (toolkit share calls Agent.stop); seconds until it has ended."""
    started = time.monotonic()
    await h.agent.stop("the customer ended the session (Ctrl-C)")
    await asyncio.wait_for(h.agent.wait(), END_WITHIN * 5)
    return time.monotonic() - started


@pytest.mark.parametrize("kind", list(FLOODS), ids=list(FLOODS))
def test_a_flood_of_each_kind_costs_a_bounded_amount_and_ctrl_c_still_ends_it(
    tmp_path: Path, kind: str
) -> None:
    flood = FLOODS[kind]
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "file").write_text("hello\n")

    async def main() -> None:
        async with hostile_session(tmp_path, scopes=flood.scopes, stopping=True) as h:
            before = len(asyncio.all_tasks())
            await flood.send(h, tmp_path)
            await h.channel.sync()
            assert len(asyncio.all_tasks()) - before <= TASKS_BOUND
            session = h.agent.session
            assert session is not None
            if session.channel is not None and not session.channel.closed:
                assert session.channel.buffered <= SEND_HIGH + MAX_FRAME
            assert await ctrl_c(h) < END_WITHIN
            end = await h.agent.wait()
        events = assert_sealed(end)
        assert end.transcript is not None
        assert end.transcript.stat().st_size <= TRANSCRIPT_BOUND
        rejected, served = counts(events)
        assert rejected <= MAX_REJECTS
        assert served <= 10 * MAX_IN_FLIGHT

    run(main())


async def stop_reading(h: Hostile, root: Path) -> StoppedReader:
    """Ask for a file whose one frame overfills the technician's window, which then stops
    reading: the agent's answers have nowhere to go."""
    channel = h.channel
    assert isinstance(channel, StoppedReader)
    (root / "allowed" / "big").write_bytes(os.urandom(BIG))
    channel.send(request(1, "read", path=allowed(root, "big")))
    await asyncio.wait_for(channel.stopped.wait(), 10)
    return channel


def test_a_technician_who_stops_reading_stops_the_agent_reading_too(tmp_path: Path) -> None:
    (tmp_path / "allowed").mkdir()

    async def main() -> None:
        async with hostile_session(tmp_path, stopping=True) as h:
            channel = await stop_reading(h, tmp_path)
            before = len(asyncio.all_tasks())
            channel.send(many(lambda i: request(i + 1, "cancel", target=i + 1_000_000)))
            channel.send(many(lambda i: request(FLOOD + i + 1, "hello", session="x")))
            await channel.sync()
            # The requests wait in the SSH window: none was read, answered or recorded.
            assert len(asyncio.all_tasks()) - before <= TASKS_BOUND
            session = h.agent.session
            assert session is not None and session.channel is not None
            assert not session.channel.reading
            assert session.channel.buffered <= SEND_HIGH + MAX_FRAME
            assert await ctrl_c(h) < END_WITHIN
            end = await h.agent.wait()
        events = assert_sealed(end)
        # Nothing after the read was taken in; the read itself was still in flight (its
        # answer had no room) when the customer ended the session.
        assert counts(events) == (0, 0)
        assert end.reason == "the customer ended the session (Ctrl-C)"

    run(main())


def test_a_technician_who_stops_reading_the_socket_stops_the_agent_reading_too(
    tmp_path: Path,
) -> None:
    # With an SSH window of 1 GiB nothing fills the channel's buffer: the socket's does,
    # once the kernel's buffers are full (a few MiB on loopback).
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "big").write_bytes(os.urandom(BIG))

    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, _):
            conn, _ = await connect_to(agent)
            transport = getattr(conn, "_transport", None)
            assert transport is not None, "asyncssh changed: update this test"
            channel = await StoppedReader.open(conn, window=1 << 30)
            transport.pause_reading()  # the technician's TCP side reads nothing more
            session = agent.session
            assert session is not None

            def reads_done() -> int:
                return sum(1 for line in screen.lines if line.startswith("read "))

            def stopped() -> bool:
                return session.channel is not None and not session.channel.reading

            def room_for_one_more(sent: int) -> Callable[[], bool]:
                return lambda: stopped() or reads_done() > sent - MAX_IN_FLIGHT

            sent = 0
            while not stopped() and sent < 64:  # 64 MiB: far more than the kernel holds
                await _until(room_for_one_more(sent))  # as each read ends, one more
                if not stopped():
                    sent += 1
                    channel.send(request(sent, "read", path=allowed(tmp_path, "big")))
            assert stopped(), f"the agent read on: {reads_done()} MiB sent to a full socket"
            before = len(asyncio.all_tasks())
            channel.send(many(lambda i: request(100 + i, "hello", session="x")))
            assert len(asyncio.all_tasks()) - before <= TASKS_BOUND
            started = time.monotonic()
            await agent.stop("the customer ended the session (Ctrl-C)")
            end = await asyncio.wait_for(agent.wait(), END_WITHIN * 5)
            assert time.monotonic() - started < END_WITHIN
            conn.close()
        assert counts(assert_sealed(end))[0] == 0

    run(main())


def test_a_technician_who_reads_again_gets_every_answer(tmp_path: Path) -> None:
    (tmp_path / "allowed").mkdir()

    async def main() -> None:
        async with hostile_session(tmp_path, stopping=True) as h:
            channel = await stop_reading(h, tmp_path)
            channel.send(
                b"".join(request(i, "stat", path=allowed(tmp_path, "big")) for i in (2, 3))
            )
            await channel.sync()
            channel.read_again()
            read, *stats = sorted(await channel.answers(3), key=lambda a: a.id)
            assert read.id == 1 and read.message["ok"], read.message
            content = read.data[3]
            assert read.message["result"]["sha256"] == hashlib.sha256(content).hexdigest()
            assert len(content) == BIG
            assert [a.id for a in stats] == [2, 3] and all(a.message["ok"] for a in stats)
            await channel.still_serves()
            events = assert_sealed(await h.end())
        assert counts(events) == (0, 5)

    run(main())


SHELL = (Scope.DIAGNOSTICS, Scope.SHELL)


async def open_shell(h: Hostile) -> tuple[StoppedReader, asyncssh.SSHClientChannel[bytes]]:
    """A shell request, then its PTY channel; the protocol channel stops reading at the
    shell's first event."""
    channel = h.channel
    assert isinstance(channel, StoppedReader)
    channel.send(request(7, "shell"))
    await asyncio.wait_for(channel.stopped.wait(), 10)  # the "ready" event
    chan, _ = await h.conn.create_session(
        asyncssh.SSHClientSession, term_type="xterm", encoding=None
    )
    return channel, chan


def test_shell_input_waits_while_the_protocol_channel_is_full(tmp_path: Path) -> None:
    # The verdicts on shell input go to the protocol channel; while it has no room, the
    # agent takes no input, so verdicts cannot pile up there either.
    (tmp_path / "allowed").mkdir()

    async def main() -> None:
        async with hostile_session(tmp_path, scopes=SHELL, stopping=True) as h:
            channel, chan = await open_shell(h)
            session = h.agent.session
            assert session is not None and session.shell is not None
            (tmp_path / "allowed" / "big").write_bytes(os.urandom(BIG))
            channel.send(request(1, "read", path=allowed(tmp_path, "big")))
            await _until(lambda: session.channel is not None and not session.channel.reading)
            chan.write(b"echo typed while full\n" * 1000)
            await chan._make_request(b"keepalive@openssh.com")  # the input has arrived
            assert session.shell.input_bytes == 0
            channel.read_again()
            while (await channel.answer()).id != 1:
                pass
            await _until(lambda: session.shell is not None and session.shell.input_bytes > 0)
            assert await ctrl_c(h) < END_WITHIN
            end = await h.agent.wait()
        assert_sealed(end)

    run(main())


def test_input_a_busy_shell_does_not_read_waits_with_the_technician(tmp_path: Path) -> None:
    # While the shell runs something that reads no input, typed input piles up in the
    # agent only to a bound; the rest waits in the technician's SSH window.
    async def main() -> None:
        async with hostile_session(tmp_path, scopes=SHELL, stopping=True) as h:
            channel, chan = await open_shell(h)
            channel.read_again()
            session = h.agent.session
            assert session is not None and session.shell is not None
            shell = session.shell
            chan.write(b"sleep 30\n")
            await _until(lambda: shell.input_bytes > 0)
            flood = 4 << 20
            chan.write(b"x" * flood)
            await _until(lambda: shell.input_held)
            await chan._make_request(b"keepalive@openssh.com")  # what it read has arrived
            assert shell.pty is not None
            assert shell.pty.input_waiting <= PTY_INPUT_HIGH + MAX_PACKET
            assert shell.input_bytes < flood / 2  # the rest was never read
            assert await ctrl_c(h) < END_WITHIN
            end = await h.agent.wait()
        assert_sealed(end)

    run(main())


def test_a_flood_of_window_changes_on_the_shell_channel_is_coalesced(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path, scopes=SHELL, stopping=True) as h:
            _, chan = await open_shell(h)
            started = time.monotonic()
            for i in range(FLOOD):
                chan.change_terminal_size(80 + i % 50, 24)
            await chan._make_request(b"keepalive@openssh.com")  # all have arrived
            assert await ctrl_c(h) < END_WITHIN
            elapsed = time.monotonic() - started
            end = await h.agent.wait()
            sizes = len(h.screen.sizes)
        assert_sealed(end)
        assert end.transcript is not None
        resizes = sum(1 for e in read_events(end.transcript) if e.code == "r")
        bound = elapsed / RESIZE_INTERVAL + 3  # the first size, and one per interval
        assert resizes <= bound and sizes <= bound, (resizes, sizes, bound)

    run(main())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Until ``condition()`` holds (state the agent reaches on its own, without a message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.005)


# -- a real `toolkit share`, Ctrl-C from outside --------------------------------------------


POLICY = """\
[files]
allow = ["~/pub/**"]
[commands]
diagnostics = [["true"]]
"""


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) * 1024
    return found


def test_ctrl_c_ends_a_flooded_share_within_a_second_and_seals_the_copy(tmp_path: Path) -> None:
    # The attack on a real `toolkit share`: a technician stops reading, then sends
    # 150,000 cancels (all it can before the agent's 8 MiB window closes); the customer
    # presses Ctrl-C.
    customer = Person.make(tmp_path / "customer")
    (customer.home / "pub").mkdir()
    (customer.home / "pub" / "big").write_bytes(os.urandom(BIG))
    (customer.root / "policy.toml").write_text(POLICY)
    with sharing(customer, "--policy", customer.root / "policy.toml", logs=tmp_path) as share:
        pid = share.proc.pid

        async def attack() -> dict[str, int]:
            conn = await connect_with_code("127.0.0.1", int(share.line()["port"]), share.code)
            channel = await StoppedReader.open(conn)
            share.wait_for_stderr("session started")
            baseline = _memory(pid)["VmRSS"]
            channel.send(request(1, "read", path=str(customer.home / "pub" / "big")))
            await asyncio.wait_for(channel.stopped.wait(), 10)
            channel.send(many(lambda i: request(i + 1, "cancel", target=i + 10**6), 150_000))
            await channel.sync()
            memory = _memory(pid)
            memory["growth"] = memory["VmHWM"] - baseline
            started = time.monotonic()
            share.interrupt()
            await asyncio.get_running_loop().run_in_executor(None, share.wait, 10)
            memory["seconds"] = int((time.monotonic() - started) * 1000)
            conn.close()
            return memory

        found = asyncio.run(attack())
        assert found["seconds"] < END_WITHIN * 1000, found
        assert found["growth"] < 32 << 20, found  # the 8 MiB window of requests, and slack
        assert share.proc.returncode == 130
    [copy] = (customer.data / "transcripts").glob("*.cast")
    assert copy.stat().st_size <= TRANSCRIPT_BOUND
    checked = customer.toolkit(
        "verify", "--allowed-signers", f"{copy}.allowed_signers", copy, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# -- SSH-level messages asyncssh answers itself, with the technician's socket unread ------

#: What the agent may hold for a peer that reads nothing: the socket's buffers and a
#: packet or two (a buffer that grew per message would hold megabytes).
WRITE_BUFFER_BOUND = 1 << 20


def _open_server_transports() -> list[asyncio.Transport]:
    """The transports of the open server connections in this process: the agent's."""
    found = []
    for o in gc.get_objects():
        transport = getattr(o, "_transport", None)
        if isinstance(o, asyncssh.SSHServerConnection) and transport and not transport.is_closing():
            found.append(transport)
    return found


@pytest.mark.parametrize("kind", ["channel requests", "global requests"])
def test_ssh_requests_from_a_peer_that_reads_nothing_cost_a_bounded_amount(
    tmp_path: Path, kind: str
) -> None:
    # Unknown channel and global requests asyncssh refuses itself, without the session:
    # the agent stops reading while its answers wait, so they wait in the peer's socket.
    async def main() -> None:
        async with hostile_session(tmp_path, stopping=True) as h:
            technician = h.conn._transport
            assert technician is not None
            technician.pause_reading()  # the technician reads nothing at all
            channel = h.channel.chan
            for i in range(FLOOD * 10):
                if kind == "channel requests":
                    channel._send_request(b"x-unknown@example.com", want_reply=True)
                else:
                    h.conn._send_global_request(b"x-unknown@example.com", want_reply=True)
                if i % 5000 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # what the agent takes of it, it has taken
            assert h.agent.session is not None
            agent_side = h.agent.session.connection._transport
            assert agent_side is not None
            buffered = agent_side.get_write_buffer_size()
            assert buffered < WRITE_BUFFER_BOUND, buffered
            assert await ctrl_c(h) < END_WITHIN
            end = await h.agent.wait()
        assert_sealed(end)

    run(main())


def test_unknown_packets_before_consent_cost_a_bounded_amount(tmp_path: Path) -> None:
    # Anyone who can reach the agent (through a relay: anyone who knows the nameplate)
    # can send packet types asyncssh answers with UNIMPLEMENTED, code or no code.
    class Stuck(asyncssh.SSHClient):
        def __init__(self) -> None:
            self.asked = asyncio.Event()
            self.conn: asyncssh.SSHClientConnection | None = None

        def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
            self.conn = conn

        def kbdint_auth_requested(self) -> str:
            return ""

        async def kbdint_challenge_received(self, *args: object) -> list[str]:
            self.asked.set()
            await asyncio.sleep(3600)
            return []

    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, _):
            client = Stuck()
            host, port = agent.address

            async def dial() -> None:
                await asyncssh.connect(
                    host, port, client_factory=lambda: client, known_hosts=None,
                    username="x", preferred_auth="keyboard-interactive",
                )  # fmt: skip

            dialing = asyncio.create_task(dial())
            try:
                await asyncio.wait_for(client.asked.wait(), 10)
                conn = client.conn
                assert conn is not None and conn._transport is not None
                conn._transport.pause_reading()
                for i in range(FLOOD * 10):
                    conn.send_packet(15, b"")  # an unassigned message number
                    if i % 5000 == 0:
                        await asyncio.sleep(0.01)
                await asyncio.sleep(0.5)
                buffered = max(t.get_write_buffer_size() for t in _open_server_transports())
                assert buffered < WRITE_BUFFER_BOUND, buffered
            finally:
                dialing.cancel()

    run(main())


# -- the customer's own file system, slow or hung -------------------------------------------


@pytest.mark.parametrize("op", ["list", "read", "stat"])
def test_ctrl_c_ends_the_session_while_a_file_operation_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, op: str
) -> None:
    # A directory of a million names, or a hung NFS or FUSE mount, blocks the call that
    # reads it; the customer's Ctrl-C must still end the session at once. (A hung mount
    # cannot be made here: the policy call is made to wait instead, as one would.)
    import threading

    from toolkit import policy

    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "file").write_text("x")
    entered, release = threading.Event(), threading.Event()
    name = {"list": "list_dir", "read": "open_for_read", "stat": "stat_path"}[op]
    real = getattr(policy, name)
    hung_at: list[float] = []

    def hung(*args: object) -> object:
        hung_at.append(time.monotonic())
        entered.set()
        release.wait(30)  # on the event loop's thread, this would hold the loop as long
        return real(*args)

    monkeypatch.setattr(policy, name, hung)

    async def main() -> None:
        try:
            async with hostile_session(tmp_path) as h:
                path = allowed(tmp_path, "" if op == "list" else "file")
                h.channel.send(request(1, op, path=path))
                await asyncio.to_thread(entered.wait, 10)
                assert await ctrl_c(h) < END_WITHIN
                end = await h.agent.wait()
                ended = time.monotonic()
            assert_sealed(end)
            # Measured from the hang itself: the test shares the agent's event loop.
            assert ended - hung_at[0] < 10 * END_WITHIN
        finally:
            release.set()

    run(main())


def test_a_listing_looks_at_a_bounded_number_of_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from toolkit.policy import files

    monkeypatch.setattr(files, "MAX_LIST_NAMES", 5)
    (tmp_path / "allowed").mkdir()
    for i in range(12):
        (tmp_path / "allowed" / f"f{i:02d}").write_text("x")

    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            h.channel.send(request(1, "list", path=allowed(tmp_path, "")))
            answer = await h.channel.answer()
            assert answer.message["ok"], answer.message
            assert answer.message["result"]["entries"] == 5
            assert answer.message["result"]["truncated"] is True
            assert_sealed(await h.end())

    run(main())
