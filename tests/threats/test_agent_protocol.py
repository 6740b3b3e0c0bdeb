"""Threat: a technician who passed consent and then speaks the session protocol by hand.

Everything a hostile client can put on the wire gets an error response with
the right id (0 when none can be read), the agent keeps serving on the same
channel, and the customer's copy records a ``protocol_error`` event and stays
sealed. No other channel opens after consent; nothing opens before it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.packet import Boolean, String, UInt32

from tests.session_support import (
    Customer,
    code_of,
    connect_to,
    identity,
    open_session,
)
from tests.threats.agent_support import (
    RawChannel,
    assert_never_written,
    assert_sealed,
    echo,
    frame,
    hostile_session,
    request,
    running_agent,
)
from toolkit.agent.operations import Operations, Outcome
from toolkit.agent.session import MAX_IN_FLIGHT, MAX_REJECTS
from toolkit.consent import Scope
from toolkit.protocol import (
    KIND_DATA,
    MAX_FRAME,
    MAX_ID,
    MAX_MESSAGE,
    SUBSYSTEM,
    Request,
    Response,
)
from toolkit.session.commands import parse
from toolkit.transport import ssh as transport

SURROGATE = "\ud800"  # a lone surrogate: valid JSON (as an escape), not valid UTF-8


def _raw(text: str) -> bytes:
    return frame(text.encode())


# (bytes sent, the id the error must carry, the error code)
HOSTILE: dict[str, tuple[bytes, int, str]] = {
    "truncated JSON": (_raw('{"v":1,"id":3,"op":"run","argv":["echo"'), 0, "malformed"),
    "not JSON at all": (_raw("GET / HTTP/1.1"), 0, "malformed"),
    "empty message": (frame(b""), 0, "malformed"),
    "JSON array": (_raw('[{"v":1,"id":3,"op":"end","reason":"x"}]'), 0, "malformed"),
    "JSON string": (_raw('"hello"'), 0, "malformed"),
    "JSON number": (_raw("3"), 0, "malformed"),
    "JSON null": (_raw("null"), 0, "malformed"),
    "version 2": (request(3, "run", v=2, argv=["echo", "x"]), 3, "malformed"),
    "version missing": (_raw('{"id":3,"op":"run","argv":["echo","x"]}'), 3, "malformed"),
    "version as a string": (_raw('{"v":"1","id":3,"op":"end","reason":"x"}'), 3, "malformed"),
    "unknown op": (request(4, "exec"), 4, "malformed"),
    "shell with a command": (request(4, "shell", command="id"), 4, "malformed"),
    "cancel of id 0": (request(4, "cancel", target=0), 4, "malformed"),
    "cancel of a bool": (request(4, "cancel", target=True), 4, "malformed"),
    "op missing": (_raw('{"v":1,"id":4,"path":"/etc/passwd"}'), 4, "malformed"),
    "op not a string": (_raw('{"v":1,"id":4,"op":["read"],"path":"/x"}'), 4, "malformed"),
    "op with a lone surrogate": (_raw('{"v":1,"id":4,"op":"\\ud800"}'), 4, "malformed"),
    "field missing": (request(5, "read"), 5, "malformed"),
    "extra field": (request(5, "read", path="/x", follow=True), 5, "malformed"),
    "run with env": (
        request(5, "run", argv=["echo", "x"], env={"LD_PRELOAD": "x"}),
        5,
        "malformed",
    ),
    "path not a string": (request(6, "read", path=5), 6, "malformed"),
    "path null": (request(6, "stat", path=None), 6, "malformed"),
    "argv a string": (request(6, "run", argv="echo hi"), 6, "malformed"),
    "argv empty": (request(6, "run", argv=[]), 6, "malformed"),
    "argv of numbers": (request(6, "run", argv=["echo", 1]), 6, "malformed"),
    "argv too long": (request(6, "run", argv=["echo"] * 257), 6, "malformed"),
    "argument too long": (request(6, "run", argv=["echo", "x" * 4097]), 6, "malformed"),
    "name an object": (request(6, "diag", name={"name": "hello"}), 6, "malformed"),
    "id negative": (request(-1, "run", argv=["echo", "x"]), 0, "malformed"),
    "id true": (request(True, "run", argv=["echo", "x"]), 0, "malformed"),
    "id false": (request(False, "run", argv=["echo", "x"]), 0, "malformed"),
    "id a float": (request(1.5, "run", argv=["echo", "x"]), 0, "malformed"),
    "id a string": (request("7", "run", argv=["echo", "x"]), 0, "malformed"),
    "id missing": (_raw('{"v":1,"op":"run","argv":["echo","x"]}'), 0, "malformed"),
    "id 0 (reserved)": (request(0, "run", argv=["echo", "x"]), 0, "malformed"),
    "id over uint32": (request(MAX_ID + 1, "run", argv=["echo", "x"]), 0, "malformed"),
    "id with 5000 digits": (_raw('{"v":1,"id":' + "9" * 5000 + "}"), 0, "malformed"),
    "data frame": (struct.pack(">IBIB", 8, KIND_DATA, 7, 1) + b"hi", 0, "malformed"),
    "unknown frame kind": (struct.pack(">IB", 3, 7) + b"ab", 0, "malformed"),
    "frame kind 0": (struct.pack(">IB", 3, 0) + b"ab", 0, "malformed"),
    "zero-length frame": (struct.pack(">I", 0), 0, "malformed"),
    "message over MAX_MESSAGE": (
        request(8, "read", path="/" + "x" * MAX_MESSAGE),
        8,
        "malformed",
    ),
    "deep nesting": (
        _raw('{"v":1,"id":9,"op":"run","argv":' + "[" * 30000 + "]" * 30000 + "}"),
        0,
        "malformed",
    ),
    "deep nesting at the top": (_raw("[" * 32000 + "]" * 32000), 0, "malformed"),
    "invalid UTF-8": (frame(b'{"v":1,"id":10,"op":"read","path":"/tmp/\xff"}'), 0, "malformed"),
    "UTF-8 encoded surrogate": (
        frame(b'{"v":1,"id":10,"op":"read","path":"\xed\xa0\x80"}'),
        0,
        "malformed",
    ),
    "UTF-16": (
        frame('{"v":1,"id":10,"op":"run","argv":["echo","x"]}'.encode("utf-16-le")),
        0,
        "malformed",
    ),
    "UTF-8 with a BOM": (
        frame(b'\xef\xbb\xbf{"v":1,"id":10,"op":"run","argv":["echo","x"]}'),
        0,
        "malformed",
    ),
    "NaN id": (_raw('{"v":1,"id":NaN,"op":"end","reason":"x"}'), 0, "malformed"),
    # A duplicate key is malformed, never "the last one wins".
    "duplicate path": (
        _raw('{"v":1,"id":11,"op":"read","path":"/etc/shadow","path":"/tmp/x"}'),
        11,
        "malformed",
    ),
    "duplicate op": (
        _raw('{"v":1,"id":11,"op":"end","op":"stat","path":"/tmp"}'),
        11,
        "malformed",
    ),
    "duplicate version": (_raw('{"v":2,"v":1,"id":11,"op":"end","reason":"x"}'), 11, "malformed"),
    "duplicate id": (_raw('{"v":1,"id":11,"id":12,"op":"end","reason":"x"}'), 0, "malformed"),
}


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def protocol_errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "protocol_error"]


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_message_gets_an_error_and_the_agent_keeps_serving(
    tmp_path: Path, case: str
) -> None:
    sent, want_id, want_code = HOSTILE[case]

    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            await h.channel.still_serves(1)  # the channel works before
            h.channel.send(sent)
            answer = await h.channel.answer()
            assert answer.message["ok"] is False
            assert (answer.id, answer.error) == (want_id, want_code), answer.message
            assert answer.data == {}  # nothing ran
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
            [error] = protocol_errors(events)
            assert (error["id"], error["error"]) == (want_id, want_code)
            assert [e["id"] for e in events if e["type"] == "operation"][:2] == [1, 4242]
            assert_never_written([h.code], h.screen.lines, tmp_path / "customer-transcripts")

    run(main())


def test_oversized_frame_is_skipped_whole_and_nothing_inside_it_runs(tmp_path: Path) -> None:
    # The announced bytes are read and dropped, even when they hold valid requests.
    inner = echo(77, "smuggled")
    body = inner * (MAX_FRAME // len(inner) + 2)

    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            h.channel.send(struct.pack(">I", len(body)))
            for start in range(0, len(body), 100_000):  # in pieces, as a network would
                h.channel.send(body[start : start + 100_000])
            answer = await h.channel.answer()
            assert (answer.id, answer.error) == (0, "malformed")
            assert str(len(body)) in answer.message["error"]["message"]
            await h.channel.still_serves()  # the next answer is ours: nothing smuggled ran
            events = assert_sealed(await h.end())
            assert len(protocol_errors(events)) == 1
            assert not [e for e in events if e.get("id") == 77]

    run(main())


def test_frame_split_byte_by_byte_and_many_frames_in_one_write(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            for byte in echo(5, "slow"):
                h.channel.send(bytes([byte]))
                await asyncio.sleep(0)
            answer = await h.channel.answer()
            assert answer.id == 5 and answer.data == {1: b"slow\n"}
            h.channel.send(b"".join([echo(6, "a"), struct.pack(">I", 0), echo(7, "b")]))
            got = {a.id: a for a in await h.channel.answers(3)}
            assert got[0].error == "malformed"
            assert got[6].data == {1: b"a\n"} and got[7].data == {1: b"b\n"}
            assert_sealed(await h.end())

    run(main())


def test_more_requests_than_max_in_flight_get_busy(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            slow = [request(i, "run", argv=["sleep", "1"]) for i in range(1, MAX_IN_FLIGHT + 1)]
            extra = [echo(i) for i in range(100, 103)]
            h.channel.send(b"".join(slow + extra))  # one write: all arrive at once
            answers = await h.channel.answers(len(slow) + len(extra))
            busy = sorted(a.id for a in answers if a.error == "busy")
            assert busy == [100, 101, 102]
            done = sorted(a.id for a in answers if a.message["ok"])
            assert done == list(range(1, MAX_IN_FLIGHT + 1))
            await h.channel.still_serves()  # once they finish, there is room again
            events = assert_sealed(await h.end())
            assert sorted(e["id"] for e in protocol_errors(events)) == [100, 101, 102]

    run(main())


def test_an_id_already_in_flight_is_refused(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            h.channel.send(request(5, "run", argv=["sleep", "1"]) + echo(5, "twin"))
            first, second = await h.channel.answers(2)
            assert (first.id, first.error) == (5, "malformed")
            assert "in flight" in first.message["error"]["message"]
            assert second.id == 5 and second.message["ok"] and second.data == {}
            await h.channel.still_serves()
            assert_sealed(await h.end())

    run(main())


def test_lone_surrogates_in_strings_are_answered_and_the_copy_still_seals(
    tmp_path: Path,
) -> None:
    # JSON escapes can carry a lone surrogate even in valid UTF-8; it must reach
    # neither a crash nor an unsealable transcript.
    async def main() -> None:
        cases: list[tuple[str, dict[str, Any]]] = [
            ("read", {"path": SURROGATE}),
            ("stat", {"path": "/tmp/" + SURROGATE}),
            ("list", {"path": SURROGATE}),
            ("run", {"argv": ["echo", SURROGATE]}),
            ("diag", {"name": SURROGATE}),
            ("fix", {"name": SURROGATE}),
            ("hello", {"session": SURROGATE}),
        ]
        async with hostile_session(tmp_path) as h:
            for i, (op, fields) in enumerate(cases, start=1):
                h.channel.send(request(i, op, **fields))
                answer = await h.channel.answer()
                assert answer.id == i
                if op != "hello":
                    assert answer.error == "refused", answer.message
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
            assert len([e for e in events if e["type"] in ("operation", "refusal")]) >= 8

    run(main())


# -- nothing but the session subsystem after consent ----------------------------------------

Attempt = Callable[[asyncssh.SSHClientConnection], Awaitable[Any]]


async def _second_subsystem_channel(conn: asyncssh.SSHClientConnection) -> Any:
    return await conn.open_session(subsystem=SUBSYSTEM, encoding=None)


REFUSED: dict[str, Attempt] = {
    "shell": lambda conn: conn.open_session(encoding=None),
    "exec": lambda conn: conn.open_session(command="id", encoding=None),
    "pty with the subsystem": lambda conn: conn.open_session(
        subsystem=SUBSYSTEM, term_type="xterm", encoding=None
    ),
    "pty with a shell": lambda conn: conn.open_session(term_type="xterm", encoding=None),
    "sftp subsystem": lambda conn: conn.open_session(subsystem="sftp", encoding=None),
    "second session channel": _second_subsystem_channel,
    "direct-tcpip": lambda conn: conn.open_connection("127.0.0.1", 22),
    "remote port forwarding": lambda conn: conn.forward_remote_port(
        "127.0.0.1", 0, "localhost", 22
    ),
    "direct-streamlocal": lambda conn: conn.open_unix_connection("/run/dbus/system_bus_socket"),
    "remote socket forwarding": lambda conn: conn.forward_remote_path("/tmp/toolkit-x", "/tmp/y"),
}


@pytest.mark.parametrize("what", list(REFUSED), ids=list(REFUSED))
def test_no_other_channel_opens_after_consent(tmp_path: Path, what: str) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            with pytest.raises((asyncssh.ChannelOpenError, asyncssh.ChannelListenError)):
                await asyncio.wait_for(REFUSED[what](h.conn), 10)
            # A refused channel ends nothing: the session channel still serves.
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
            refusals = [e for e in events if e["type"] == "refusal" and e["op"] == "channel"]
            assert refusals and all(e["message"].startswith("refused:") for e in refusals)

    run(main())


# Channel requests the protocol channel refuses: the request's name and its arguments.
# (asyncssh's server would accept env, window-change and signal without asking.)
CHANNEL_REQUESTS: dict[str, bytes] = {
    "env": String("LD_PRELOAD") + String("/tmp/evil.so"),
    "window-change": UInt32(80) + UInt32(24) + UInt32(0) + UInt32(0),
    "signal": String("INT"),
    "break": UInt32(100),
    "xon-xoff": Boolean(True),
    "x11-req": Boolean(False) + String("MIT-MAGIC-COOKIE-1") + String("ab" * 16) + UInt32(0),
    "auth-agent-req@openssh.com": b"",
}


@pytest.mark.parametrize("name", list(CHANNEL_REQUESTS), ids=list(CHANNEL_REQUESTS))
def test_a_channel_request_on_the_protocol_channel_fails_and_is_recorded(
    tmp_path: Path, name: str
) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            chan = h.channel.chan
            # The request really fails in SSH (want_reply: the agent answers FAILURE).
            assert await chan._make_request(name.encode(), CHANNEL_REQUESTS[name]) is False
            await h.channel.still_serves()
            events = assert_sealed(await h.end())
        [refusal] = [e for e in events if e["type"] == "refusal" and e["op"] == "channel"]
        assert refusal["message"].startswith("refused:") and name in refusal["message"]

    run(main())


def test_env_sent_with_the_subsystem_request_is_refused_and_the_session_opens(
    tmp_path: Path,
) -> None:
    # As OpenSSH's SendEnv does: env requests (no reply wanted) before the subsystem.
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, _):
            conn, _ = await connect_to(agent)
            writer, reader, _ = await conn.open_session(
                subsystem=SUBSYSTEM, env={"LD_PRELOAD": "/tmp/evil.so"}, encoding=None
            )
            channel = RawChannel(writer, reader)
            await channel.still_serves()
            channel.send(request(9, "end", reason="done"))
            await channel.answer()
            end = await asyncio.wait_for(agent.wait(), 10)
            conn.close()
        events = assert_sealed(end)
        refusals = [e["message"] for e in events if e["type"] == "refusal"]
        assert refusals == ["refused: an environment variable (env) is not offered"]

    run(main())


def test_a_refused_shell_before_the_subsystem_does_not_end_the_session(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, screen, _):
            conn, _ = await connect_to(agent)
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_session(encoding=None)
            await asyncio.sleep(0.05)
            assert agent.session is not None and agent.session.channel is None
            channel = await RawChannel.open(conn)
            await channel.still_serves()
            conn.close()
        assert not any("disconnected" in line for line in screen.lines[:-1])

    run(main())


def test_two_subsystem_channels_opened_at_once_get_one_session(tmp_path: Path) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            results = await asyncio.gather(
                _second_subsystem_channel(h.conn),
                _second_subsystem_channel(h.conn),
                return_exceptions=True,
            )
            assert all(isinstance(r, asyncssh.ChannelOpenError) for r in results)
            await h.channel.still_serves()
            assert_sealed(await h.end())

    run(main())


# -- nothing opens before consent -------------------------------------------------------------


async def _plain_connect(port: int, **options: Any) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        port,
        config=[],
        known_hosts=None,
        agent_path=None,
        username="root",
        login_timeout=10,
        **options,
    )


NOT_CONSENT: dict[str, dict[str, Any]] = {
    "none": {
        "client_keys": None,
        "password_auth": False,
        "kbdint_auth": False,
        "public_key_auth": False,
    },
    "password": {"client_keys": None, "password": "hunter2", "preferred_auth": "password"},
    "publickey": {
        "client_keys": [asyncssh.generate_private_key("ssh-ed25519")],
        "preferred_auth": "publickey",
    },
    "kbdint with a non-consent answer": {
        "client_factory": lambda: _AnswersAnything(),
        "client_keys": None,
        "password_auth": False,
        "preferred_auth": "keyboard-interactive",
    },
}


class _AnswersAnything(asyncssh.SSHClient):
    """Answers every keyboard-interactive prompt as if it asked for a password."""

    def kbdint_auth_requested(self) -> str:
        return ""

    def kbdint_challenge_received(
        self, name: str, instructions: str, lang: str, prompts: Any
    ) -> list[str]:
        return ["123456789"] * len(prompts)


@pytest.mark.parametrize("method", list(NOT_CONSENT), ids=list(NOT_CONSENT))
def test_other_authentication_opens_nothing(tmp_path: Path, method: str) -> None:
    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, customer):
            with pytest.raises(asyncssh.PermissionDenied):
                await _plain_connect(agent.address[1], **NOT_CONSENT[method])
        assert agent.session is None and customer.asked == []
        # Only an answer to the consent challenge is a try; others cost nothing.
        tries = agent.codes.current.tries_left
        assert tries == (2 if method.startswith("kbdint") else 3)

    run(main())


def test_a_channel_opened_during_consent_drops_the_connection(tmp_path: Path) -> None:
    # A client that sends CHANNEL_OPEN while the customer is still deciding.
    # (asyncssh holds such packets back until authentication succeeds; this client
    # tells its connection that it has, so the packet really goes out.)
    opened: list[BaseException | None] = []

    class Early(transport._ConsentClient):
        def kbdint_challenge_received(self, *args: Any) -> list[str] | None:
            first = self._handshake is None
            answer = super().kbdint_challenge_received(*args)
            if first:
                asyncio.get_running_loop().create_task(self._open_early())
            return answer

        async def _open_early(self) -> None:
            assert self._conn is not None
            assert hasattr(self._conn, "_auth_complete"), "asyncssh changed: update this test"
            self._conn._auth_complete = True
            try:
                await self._conn.open_session(subsystem=SUBSYSTEM, encoding=None)
                opened.append(None)
            except (asyncssh.Error, OSError) as exc:
                opened.append(exc)

    class SlowCustomer(Customer):
        async def ask(self, request: Any) -> Any:  # type: ignore[override]
            await asyncio.sleep(0.3)
            return super().ask(request)

    async def main() -> None:
        async with running_agent(tmp_path, customer=SlowCustomer()) as (agent, _, _):
            ask = transport.ConsentAsk(
                identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), code_of(agent)
            )
            client = Early(ask)
            with pytest.raises((asyncssh.Error, OSError)):
                await _plain_connect(
                    agent.address[1],
                    client_factory=lambda: client,
                    client_keys=None,
                    password_auth=False,
                    public_key_auth=False,
                )
            await asyncio.sleep(0.5)  # the customer's late yes changes nothing
        assert agent.session is None
        assert opened and opened[0] is not None
        assert not (tmp_path / "customer-transcripts").exists()

    run(main())


# -- the technician's side of the protocol ------------------------------------------------------


@pytest.mark.parametrize("key", ["type", "code", "token"])
def test_an_agent_result_with_any_field_names_does_not_crash_the_technician(
    tmp_path: Path, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def odd_stat(self: Operations, request: Request, record: dict[str, Any]) -> Outcome:
        return Outcome(Response(request.id, True, {key: "x", "size": 1}), record, "stat")

    monkeypatch.setattr(Operations, "_op_stat", odd_stat)

    async def main() -> None:
        async with running_agent(tmp_path) as (agent, _, _):
            session = await open_session(agent, tmp_path)
            command = parse("stat /tmp")
            assert command is not None
            result = await session.execute(command)
            assert result.status == "ok"
            await session.end("test done")

    run(main())


def test_a_flood_of_bad_messages_ends_the_session_instead_of_growing_the_transcript(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with hostile_session(tmp_path) as h:
            h.channel.send(_raw("not json") * (MAX_REJECTS + 50))
            answers = await h.channel.answers(MAX_REJECTS)
            assert all(a.error == "malformed" for a in answers)
            ended = await h.channel.answer()  # id 0: the agent says why it ends
            assert (ended.id, ended.error) == (0, "ended")
            end = await asyncio.wait_for(h.agent.wait(), 10)
            assert f"over {MAX_REJECTS} bad" in end.reason
            events = assert_sealed(end)
            assert len(protocol_errors(events)) == MAX_REJECTS  # bounded, and sealed

    run(main())
