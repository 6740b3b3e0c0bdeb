"""Threat: the relay. It forwards everything, so it must learn nothing and grant nothing else.

- It sees every byte of the session, yet none of the content: the inner SSH
  connection runs end to end, so a marker the customer's command prints, a
  file read, and the secret digits of the code never cross it in the clear.
- A relay (or whoever answers in its place) that is not in known_hosts gets
  nothing: the agent registers nothing and the technician opens nothing.
- A relay that terminates the inner connection with its own key cannot pass
  consent (the agent's host key is bound by the handshake): see
  test_consent_mitm.py; here, a relay that splices to the wrong agent fails
  the PAKE the same way.
- The relay grants no shell, exec, TCP forward or socket forward, and admits
  only listed technicians when told to; lookups are rate-limited.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from tests.integration.share_process import Person, end
from tests.integration.test_share_connect import (
    make_customer,
    make_technician,
)
from tests.relay_support import (
    command,
    consent_through,
    eventually,
    host_key,
    raw_client,
    relay_process,
    relayed_agent,
    running_relay,
    session_through,
    trust,
    try_register,
)
from tests.session_support import MARKER
from tests.session_support import identity as technician_identity
from toolkit.consent import CodeState, ConsentError, WrongCode, parse_code
from toolkit.errors import ExitCode, TransportError
from toolkit.identity.keys import public_line
from toolkit.relay._wire import register_host
from toolkit.relay.server import RelayOptions, read_technicians
from toolkit.transport.relay import dial


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_the_relay_learns_nothing_of_the_session(tmp_path: Path) -> None:
    content = b"file-content-seen-only-end-to-end-" + MARKER.encode() + b"-c0ffee"
    (tmp_path / "allowed").mkdir()
    (tmp_path / "allowed" / "notes.txt").write_bytes(content)
    seen: dict[str, bytearray] = {"up": bytearray(), "down": bytearray()}

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            relay.relay.tap = lambda name, direction, data: seen[direction].extend(data)
            agent = await relayed_agent(tmp_path, relay.route)
            code = agent.code
            session = await session_through(relay.route, code, tmp_path / "tech.cast")
            ran = await session.execute(command(f"run echo {MARKER}-printed"))
            read = await session.execute(command(f"read {tmp_path / 'allowed' / 'notes.txt'}"))
            await session.end("done")
            await asyncio.wait_for(agent.agent.wait(), 10)
            assert ran.stdout == f"{MARKER}-printed\n".encode()
            assert read.content == content
            digits = code.reveal()
            relay_log = relay.log.getvalue()

        wire = bytes(seen["up"]) + b"\n" + bytes(seen["down"])
        assert len(seen["up"]) > 1000 and len(seen["down"]) > 1000  # the session did cross it
        secret = digits[-6:]
        for needle in (MARKER.encode(), content, secret.encode(), digits.encode()):
            assert needle not in wire
        assert b"SSH-2.0-" in wire  # the inner connection's banners: all it can read
        for text in (MARKER, secret, digits, "notes.txt"):
            assert text not in relay_log
        # The transcripts on both ends did see it all.
        assert MARKER.encode() in (tmp_path / "tech.cast").read_bytes()

    run(main())


def test_an_unknown_relay_host_key_stops_both_sides_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with running_relay(tmp_path, trusted=False) as relay:
            with pytest.raises(TransportError) as info:
                await relayed_agent(tmp_path, relay.route)
            text = info.value.diagnostics()
            assert info.value.exit_code is ExitCode.NETWORK
            # The fix works where ~/.ssh does not exist yet (mkdir -m 700 first).
            assert "known_hosts" in text and "mkdir -p -m 700 ~/.ssh && echo" in text
            assert relay.relay.host_key_fingerprint in text  # what to compare with the operator
            with pytest.raises(TransportError):
                await consent_through(relay.route, parse_code("417-093-552"))
            assert relay.log.events("register") == [] and relay.log.events("auth") == []

    run(main())


def test_a_relay_key_that_changed_is_refused_and_called_a_change(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as first:
            port = first.port
        other = host_key(tmp_path / "impostor" / "host_key")
        async with running_relay(tmp_path, port=port, key=other, trusted=False) as impostor:
            with pytest.raises(TransportError, match="host key has changed") as info:
                await relayed_agent(tmp_path, impostor.route)
            assert "ssh-keygen -R" in info.value.diagnostics()
            assert "echo" not in info.value.diagnostics()  # no command that trusts it
            assert impostor.log.events("auth") == []

    run(main())


def test_a_splice_to_the_wrong_agent_fails_the_code_check(tmp_path: Path) -> None:
    # A relay that sends the technician to another customer's agent learns nothing
    # either: the code does not match there, and the technician is told so.
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            one = await relayed_agent(tmp_path / "one", relay.route)
            two = await relayed_agent(tmp_path / "two", relay.route)
            digits = one.code.reveal()
            crossed = parse_code(two.rendezvous.name + digits[-6:])
            with pytest.raises(WrongCode):
                await consent_through(relay.route, crossed)
            assert two.agent.codes.current.tries_left == 2
            assert one.agent.codes.current.tries_left == 3
            for agent in (one, two):
                await agent.agent.stop("test over")

    run(main())


def test_the_relay_grants_no_shell_exec_or_other_forwarding(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            conn = await dial(relay.route)
            async with conn:
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.run("id", check=True)
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.open_connection("127.0.0.1", relay.port)
                with pytest.raises(asyncssh.ChannelListenError):
                    await conn.start_unix_server(lambda: None, str(tmp_path / "sock"))
                with pytest.raises(asyncssh.ChannelListenError):  # not a rendezvous
                    await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)
            refused = {e["what"] for e in relay.log.events("refused")}
            assert {"session", "direct-tcpip", "streamlocal-forward"} <= refused
            assert relay.log.events("register_refused")

    run(main())


def test_only_listed_technicians_reach_a_rendezvous(tmp_path: Path) -> None:
    # The relay knows technicians by their toolkit identity, the key they log in with.
    listed = technician_identity()
    signers = tmp_path / "technicians"
    signers.write_text(f'alice@example.com namespaces="toolkit" {public_line(listed.public_blob)}')
    technicians = read_technicians(signers)

    async def main() -> None:
        async with running_relay(tmp_path, technicians=technicians) as relay:
            agent = await relayed_agent(tmp_path, relay.route)  # anyone may register
            with pytest.raises(TransportError, match="admits listed technicians only"):
                await consent_through(relay.route, agent.code)  # another identity
            # The listed identity gets in, whatever ~/.ssh holds besides.
            ssh = Path.home() / ".ssh"
            other = asyncssh.generate_private_key("ssh-ed25519")
            (ssh / "id_ed25519").write_bytes(other.export_private_key())
            (ssh / "id_ed25519").chmod(0o600)
            conn, _ = await consent_through(relay.route, agent.code, listed)
            conn.close()
            await agent.agent.stop("test over")

    run(main())


def test_technician_files_take_authorized_keys_or_allowed_signers(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    (tmp_path / "a").write_text(f'# a comment\nrestrict,port-forwarding,from="10.0.0.0/8" {key}\n')
    (tmp_path / "b").write_text(f'alice@example.com,bob@example.com namespaces="x,y" {key}\n')
    assert read_technicians(tmp_path / "a") == read_technicians(tmp_path / "b")
    (tmp_path / "c").write_text("# nobody\n")
    from toolkit.errors import UsageError

    with pytest.raises(UsageError):
        read_technicians(tmp_path / "c")


def test_lookups_are_rate_limited_per_source_address(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path, lookup_burst=3, lookup_rate=0.01) as relay:
            reasons = []
            for name in ("901", "902", "903", "904"):
                with pytest.raises(TransportError) as info:
                    await consent_through(relay.route, parse_code(f"{name}-000-000"))
                reasons.append(info.value.message)
            assert all("no such rendezvous" in r for r in reasons[:3])
            assert "too many lookups" in reasons[3]
            misses = [e for e in relay.log.events("lookup") if not e["ok"]]
            assert [e["why"] for e in misses][-1] == "rate limited"

    run(main())


def test_what_the_relay_logs_is_about_connections_never_content(tmp_path: Path) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            session = await session_through(relay.route, agent.code, tmp_path / "t.cast")
            await session.execute(command(f"run echo {MARKER}"))
            await session.end("done")
            await asyncio.wait_for(agent.agent.wait(), 10)
            kinds = [e["event"] for e in relay.log.events()]
            for expected in ("listening", "connect", "auth", "register", "join", "part"):
                assert expected in kinds
            part = relay.log.events("part")[0]
            assert part["bytes_up"] > 0 and part["bytes_down"] > 0
            for event in relay.log.events():
                assert set(event) <= {
                    "ts", "event", "conn", "peer", "key", "technician", "name", "ttl", "asked",
                    "agent", "bytes_up", "bytes_down", "why", "ok", "what", "address", "port",
                    "host_key", "host_key_file", "technicians", "agents", "stable", "taken_over",
                }  # fmt: skip

    run(main())


# -- one address, or one key, taking the name space -------------------------------------


def test_one_address_registering_hundreds_of_names_gets_a_handful(tmp_path: Path) -> None:
    # As found: one address registered 240 names in 1.1 s (here: 60 connections, a
    # fresh key each, 4 registrations each). It gets its burst, then one every few seconds.
    defaults = RelayOptions()

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            started = time.monotonic()
            conns = await asyncio.gather(*(raw_client(relay.port) for _ in range(60)))
            names = [await try_register(conn) for conn in conns for _ in range(4)]
            elapsed = time.monotonic() - started
            granted = [n for n in names if n is not None]
            most = defaults.register_burst + int(elapsed * defaults.register_rate) + 1
            assert defaults.register_burst <= len(granted) <= most
            refused = relay.log.events("register_refused")
            assert len(refused) == 240 - len(granted)
            assert {e["why"] for e in refused} == {
                "too many new rendezvous from your address; try again in a minute"
            }
            # Another address (the office next door) gets a name at once.
            other = await raw_client(relay.port, source="127.0.0.2")
            assert await try_register(other) is not None
            for conn in [*conns, other]:
                conn.close()

    run(main())


def test_one_address_holds_a_bounded_share_of_names_however_slowly_it_asks(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        # The rate limit out of the way: only the number held at once is left.
        async with running_relay(tmp_path, register_rate=1000, register_burst=1000) as relay:
            most = relay.relay.options.names_per_address
            conns = await asyncio.gather(*(raw_client(relay.port) for _ in range(60)))
            names = [await try_register(conn) for conn in conns for _ in range(4)]
            granted = [n for n in names if n is not None]
            assert len(granted) == most
            refused = {e["why"] for e in relay.log.events("register_refused")}
            assert refused == {f"too many rendezvous from your address (at most {most} at once)"}
            # Hanging up does not give them back: a dropped agent's name stays reserved.
            for conn in conns:
                conn.close()
            late = await raw_client(relay.port)
            assert await try_register(late) is None
            late.close()

    run(main())


def test_one_key_from_many_addresses_holds_a_bounded_share_of_names(tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")

    async def main() -> None:
        async with running_relay(tmp_path, register_rate=1000, register_burst=1000) as relay:
            most = relay.relay.options.names_per_key
            conns = [
                await raw_client(relay.port, source=f"127.0.0.{i}", key=key) for i in range(2, 8)
            ]
            names = [await try_register(conn) for conn in conns for _ in range(4)]
            assert len([n for n in names if n is not None]) == most
            refused = {e["why"] for e in relay.log.events("register_refused")}
            assert refused == {f"too many rendezvous for your key (at most {most} at once)"}
            for conn in conns:
                conn.close()

    run(main())


def test_an_agent_at_its_address_limit_keeps_its_name_across_a_reconnect(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with running_relay(tmp_path, names_per_address=1) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name, code = agent.rendezvous.name, agent.code
            intruder = await raw_client(relay.port)
            assert await try_register(intruder) is None  # the address's one name is taken
            conn = agent.rendezvous._conn
            assert conn is not None
            conn.abort()  # the customer's network blinks; the name is theirs to reclaim
            await eventually(lambda: agent.rendezvous.reconnects == 1)
            assert agent.rendezvous.name == name and agent.code.reveal() == code.reveal()
            joined, _ = await consent_through(relay.route, code)
            joined.close()
            intruder.close()
            await agent.agent.stop("test over")

    run(main())


# -- escape sequences from a client of the relay, or from the relay ---------------------

ESCAPES = "\x1b[2J\x1b]0;title\x07"


def raw(text: str) -> list[str]:
    """The terminal controls in ``text`` (ESC, BEL, CSI, anything unprintable but lines)."""
    return [c for line in text.split("\n") for c in line if not c.isprintable()]


def strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def test_escapes_from_a_relay_client_never_reach_the_relays_output_raw(
    tmp_path: Path,
) -> None:
    # The relay's log is JSON (escaped), but whoever reads a field of it (jq -r, a log
    # viewer) prints it: what a client sent is made printable before it is logged.
    operator = Person.make(tmp_path / "operator")
    key = host_key(tmp_path / "operator" / "host_key")
    comment_key = asyncssh.generate_private_key("ssh-ed25519", comment=ESCAPES)

    async def attack(port: int) -> None:
        conn = await raw_client(port, key=comment_key)  # asyncssh refuses ESC in a user name
        with pytest.raises(asyncssh.ChannelListenError):  # a rendezvous request with escapes
            await conn.create_server(lambda *_: None, f"toolkit-rendezvous{ESCAPES};ttl=5", 0)
        with pytest.raises(asyncssh.ChannelOpenError):  # a lookup of a name with escapes
            await conn.create_unix_connection(asyncssh.SSHUNIXSession, f"/run/x/{ESCAPES}")

        def refuse(*_: object) -> None:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, ESCAPES + "no")

        listener = await conn.create_server(refuse, register_host(600), 0)
        other = await raw_client(port)
        with pytest.raises(asyncssh.ChannelOpenError):  # the "agent" refuses with escapes
            path = f"/r/{listener.get_port()}"
            await other.create_unix_connection(asyncssh.SSHUNIXSession, path)
        other.close()
        conn.disconnect(asyncssh.DISC_PROTOCOL_ERROR, ESCAPES + "bye")
        await conn.wait_closed()

    with relay_process(operator, key) as relay:
        asyncio.run(asyncio.wait_for(attack(relay.port), 60))
        stdout, stderr = relay.stop()
    log = [json.loads(line) for line in stdout.splitlines()]
    assert any(e["event"] == "disconnect" and "bye" in e["why"] for e in log)
    assert any(e["event"] == "lookup" and "title" in e["name"] for e in log)
    assert any(e["event"] == "lookup" and "title" in e["why"] for e in log)
    assert raw(stdout) == [] and raw(stderr) == []
    for event in log:
        for text in strings(event):
            assert raw(text) == [], event


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[int]:
    """The port of a hostile relay process (tests/threats/hostile_relay.py)."""
    key = host_key(tmp_path / "hostile" / "host_key")
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("hostile_relay.py")), str(key)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield port
    finally:
        end(proc)


def test_escapes_from_a_hostile_relay_never_reach_the_customer_or_technician_raw(
    tmp_path: Path,
    hostile: int,
    identity: Path,
) -> None:
    customer = make_customer(tmp_path / "customer")
    technician = make_technician(tmp_path / "technician", identity)
    key = tmp_path / "hostile" / "host_key"
    for person in (customer, technician):
        trust(hostile, key, person.home)
    at = f"127.0.0.1:{hostile}"
    runs = {
        "registration refused": customer.toolkit("share", "--yes", "--relay", at),
        "disconnected": customer.toolkit("share", "--yes", "--relay", f"evil@{at}"),
        "lookup refused": technician.toolkit(
            "connect",
            "--relay",
            at,
            "--code",
            "417-093-552",
            "--ticket",
            "T-1",
            "--batch",
            "-",
            stdin="",
        ),
    }
    for what, done in runs.items():
        assert done.returncode == ExitCode.NETWORK, (what, done.stderr)
        assert "owned" in done.stderr, what  # what the relay said is shown, escaped
        assert "\\x1b[2J" in done.stderr, what
        assert raw(done.stderr) == [] and raw(done.stdout) == [], (what, done.stderr)


# -- codes made without the customer asking -----------------------------------------------


def test_a_technician_who_burns_the_code_and_sends_junk_through_the_relay_gets_no_new_code(
    tmp_path: Path,
) -> None:
    # Nothing a technician does at the rendezvous drops the agent's relay connection or
    # its name, so nothing makes a code the customer did not ask for.
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name, digits = agent.rendezvous.name, agent.code.reveal()
            for guess in ("000001", "000002", "000003"):
                if guess == digits[-6:]:
                    guess = "999999"
                with pytest.raises(ConsentError):
                    await consent_through(relay.route, parse_code(name + guess))
            with pytest.raises(ConsentError):  # burned now
                await consent_through(relay.route, agent.code)
            technician = await dial(relay.route)
            for junk in (b"\x00" * 70000, b"SSH-2.0-x\r\n" + b"\xff" * 5000, b"toolkit-probe x\n"):
                chan, _ = await technician.create_unix_connection(
                    asyncssh.SSHUNIXSession, f"/r/{name}"
                )
                chan.write(junk)
                chan.write_eof()
                await chan.wait_closed()
            technician.close()
            await asyncio.sleep(0.5)
            assert agent.rendezvous.reconnects == 0 and agent.rendezvous.name == name
            assert agent.agent.codes.made == 1 and len(agent.screen.codes) == 1
            assert [e["name"] for e in relay.log.events("register")] == [name]
            await agent.agent.stop("test over")

    run(main())


def test_a_stranger_cannot_take_a_live_shares_name_to_make_it_show_a_new_code(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            name = agent.rendezvous.name
            stranger = await raw_client(relay.port, source="127.0.0.2")
            assert await try_register(stranger, int(name)) is None  # in use
            conn = agent.rendezvous._conn
            assert conn is not None
            conn.abort()  # even while the agent is away, the name waits for its key
            assert await try_register(stranger, int(name)) is None
            await eventually(lambda: agent.rendezvous.reconnects == 1)
            assert agent.rendezvous.name == name and agent.agent.codes.made == 1
            why = {e["why"] for e in relay.log.events("register_refused")}
            assert why == {"the name is in use"}
            stranger.close()
            await agent.agent.stop("test over")

    run(main())


def test_a_relay_that_keeps_giving_the_name_away_gets_one_code_per_customer_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A hostile relay (or one restarted again and again while others grab names) refuses
    # the agent its name at every reconnect and every renewal, and hands it a new one.
    # The agent makes a code for a new name without being asked at most once per code
    # the customer asked for (the first included); past that the code shown is
    # withdrawn and the customer asks for the next.
    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            honest = relay.relay.register

            def never_the_same(who: Any, host: str, port: int) -> Any:
                # Refuse every name asked for: a reconnect or a renewal gets a new one.
                return False if port else honest(who, host, 0)

            monkeypatch.setattr(relay.relay, "register", never_the_same)
            agent = await relayed_agent(tmp_path, relay.route)

            async def drop(times: int) -> None:
                conn = agent.rendezvous._conn
                assert conn is not None
                conn.abort()
                await eventually(lambda: agent.rendezvous.reconnects == times)

            await drop(1)
            await eventually(lambda: len(agent.screen.codes) == 2)  # the code shown was lost
            shown = agent.screen.codes[-1].display.reveal()
            assert shown.startswith(agent.rendezvous.name + "-")
            await drop(2)
            await eventually(
                lambda: agent.agent.codes.current.state is CodeState.EXPIRED
            )  # withdrawn: the customer is told to ask
            assert any("yet another rendezvous" in line for line in agent.screen.lines)
            agent.agent.fresh_code("you asked for a new code")  # the customer asks
            await eventually(lambda: len(agent.screen.codes) == 3)
            assert agent.screen.codes[-1].display.reveal().startswith(agent.rendezvous.name)
            await drop(3)  # once more per code asked for
            await eventually(lambda: len(agent.screen.codes) == 4)
            await drop(4)
            await eventually(lambda: agent.agent.codes.current.state is CodeState.EXPIRED)
            await asyncio.sleep(0.3)
            assert len(agent.screen.codes) == 4
            withdrawn = [line for line in agent.screen.lines if "yet another rendezvous" in line]
            assert len(withdrawn) == 2
            # 2 codes asked for (the first, and one request): at most 2 x 2 made at all.
            assert agent.agent.codes.made == 4
            await agent.agent.stop("test over")

    run(main())


def test_a_stranger_who_reads_nothing_cannot_grow_the_relays_memory(tmp_path: Path) -> None:
    # Global requests the relay refuses through asyncssh, from a client that reads
    # nothing: the relay stops reading it while the answers wait, so they stay bounded.
    import gc

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            conn = await raw_client(relay.port)
            assert conn._transport is not None
            conn._transport.pause_reading()
            for i in range(200_000):
                conn._send_global_request(b"x-unknown@example.com", want_reply=True)
                if i % 5000 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # what the relay takes of it, it has taken
            buffers = [
                t.get_write_buffer_size()
                for o in gc.get_objects()
                if isinstance(o, asyncssh.SSHServerConnection)
                and (t := getattr(o, "_transport", None)) is not None
                and not t.is_closing()
            ]
            assert buffers and max(buffers) < 1 << 20, buffers
            conn.abort()

    run(main())


def test_a_client_asking_again_and_again_makes_a_bounded_log_then_is_hung_up_on(
    tmp_path: Path,
) -> None:
    # Each refused registration was a log line (and a debug message): 50,000 requests from
    # one stranger grew the log by 6.6 MB. Past MAX_REFUSED on one connection: hung up on.
    from asyncssh.packet import String, UInt32

    from toolkit.relay.server import MAX_REFUSED

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            conn = await raw_client(relay.port)
            for i in range(20_000):
                register = (String(register_host(600)), UInt32(0))
                conn._send_global_request(b"tcpip-forward", *register, want_reply=False)
                if i % 2000 == 0:
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(conn.wait_closed(), 10)  # the relay hung up
            refused = relay.log.events("register_refused")
            assert len(refused) <= MAX_REFUSED
            assert len(relay.log.events("disconnect_refused")) == 1
            assert len(relay.log.getvalue()) < 64 * 1024

    run(main())


def test_renewing_ones_own_name_in_a_loop_is_refused_then_hung_up_on(tmp_path: Path) -> None:
    from toolkit.relay.server import MAX_REFUSED, RENEW_BURST

    async def main() -> None:
        async with running_relay(tmp_path) as relay:
            conn = await raw_client(relay.port)
            name = await try_register(conn)
            assert name is not None
            renewed = 0
            for _ in range(RENEW_BURST + MAX_REFUSED + 10):
                try:
                    if await try_register(conn, int(name)) == name:
                        renewed += 1
                except (asyncssh.Error, OSError):
                    break  # hung up on
            assert renewed <= RENEW_BURST
            await asyncio.wait_for(conn.wait_closed(), 10)
            assert len(relay.log.events("renew")) <= RENEW_BURST

    run(main())
