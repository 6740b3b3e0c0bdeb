"""A stock OpenSSH sshd as the relay, with exactly docs/relay.md's configuration.

The sshd runs on loopback as root (so it can log users in) with the relay
block for an unprivileged user (``nobody`` when the tests run as root:
OpenSSH forwards no sockets for root). Agent and technician find it through
~/.ssh/config, check it against known_hosts, and log in with their own keys.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from bench.sshd import Bastion, available, bastion_sshd
from tests.integration.share_process import Person, sharing
from tests.integration.test_share_connect import (
    NOTES,
    make_customer,
    make_technician,
)
from tests.relay_support import command, consent_through, relayed_agent, session_through
from tests.session_support import MARKER
from tests.threats.agent_support import assert_sealed
from toolkit.cli._relay import DEFAULT_RELAY_DIR
from toolkit.consent import parse_code
from toolkit.errors import TransportError
from toolkit.relay._wire import DEFAULT_SOCKET_DIR
from toolkit.relay.openssh import bastion_config
from toolkit.transport.relay import RelayAddress, RelayRoute, dial

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))

ALIAS = "relay-bastion"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "relay.md"


def ssh_key(home: Path) -> str:
    """~/.ssh/id_ed25519 for whoever lives in ``home``; returns the public line."""
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = asyncssh.generate_private_key("ssh-ed25519")
    (ssh / "id_ed25519").write_bytes(key.export_private_key())
    (ssh / "id_ed25519").chmod(0o600)
    return key.export_public_key().decode()


def point_at(home: Path, bastion: Bastion) -> None:
    """known_hosts and an ssh_config alias for the bastion, as a user would set them up."""
    ssh = home / ".ssh"
    (ssh / "known_hosts").write_text(bastion.known_hosts_line())
    (ssh / "config").write_text(bastion.ssh_config(ALIAS))


@pytest.fixture
def people(tmp_path: Path, identity: Path) -> Iterator[tuple[Person, Person, Bastion]]:
    customer = make_customer(tmp_path / "customer")
    technician = make_technician(tmp_path / "technician", identity)
    keys = [ssh_key(customer.home), ssh_key(technician.home)]
    with bastion_sshd(keys) as bastion:
        for person in (customer, technician):
            point_at(person.home, bastion)
        yield customer, technician, bastion


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 60))


def test_docs_show_exactly_the_configuration_the_tests_run() -> None:
    assert bastion_config() in DOCS.read_text()
    assert f"`{DEFAULT_SOCKET_DIR}`" in DOCS.read_text()
    assert DEFAULT_RELAY_DIR == DEFAULT_SOCKET_DIR  # the CLI's default, kept import-free


def test_a_session_through_openssh_in_process(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    with bastion_sshd([ssh_key(home)]) as bastion:
        point_at(home, bastion)
        route = RelayRoute(RelayAddress(ALIAS), socket_dir=str(bastion.socket_dir))

        async def main() -> None:
            agent = await relayed_agent(tmp_path, route)
            name = agent.rendezvous.name
            assert (bastion.socket_dir / name).is_socket()
            session = await session_through(route, agent.code, tmp_path / "t.cast")
            result = await session.execute(command(f"run echo {MARKER}"))
            assert result.stdout == f"{MARKER}\n".encode()
            await session.end("done")
            assert_sealed(await asyncio.wait_for(agent.agent.wait(), 10))

            # Another agent never takes a name in use: it probes before it binds.
            first = await relayed_agent(tmp_path / "one", route)
            second = await relayed_agent(tmp_path / "two", route)
            assert first.rendezvous.name != second.rendezvous.name
            with pytest.raises(TransportError, match="cannot reach rendezvous"):
                free = next(n for n in map(str, range(100, 1000)) if n not in {
                    first.rendezvous.name, second.rendezvous.name, name})  # fmt: skip
                await consent_through(route, parse_code(free + "000000"))
            for agent in (first, second):
                await agent.agent.stop("test over")

        run(main())


def test_the_bastion_grants_no_shell_and_no_tcp_listener(tmp_path: Path) -> None:
    home = Path(os.environ["HOME"])
    with bastion_sshd([ssh_key(home)]) as bastion:
        point_at(home, bastion)

        async def main() -> None:
            conn = await dial(RelayRoute(RelayAddress(ALIAS)))
            async with conn:
                done = await conn.run("echo hello", check=False)
                assert done.exit_status != 0 and "hello" not in str(done.stdout)
                with pytest.raises(asyncssh.ChannelOpenError):
                    await conn.create_session(asyncssh.SSHClientSession, term_type="xterm")
                with pytest.raises(asyncssh.ChannelListenError):
                    await conn.forward_remote_port("127.0.0.1", 0, "127.0.0.1", 22)

        run(main())
        # What the docs promise for outgoing TCP needs the firewall rule; sshd alone allows it.
        assert "--uid-owner" in DOCS.read_text()


def test_whole_session_through_openssh_as_processes(
    people: tuple[Person, Person, Bastion], tmp_path: Path
) -> None:
    customer, technician, bastion = people
    relay = ("--relay", ALIAS, "--relay-dir", str(bastion.socket_dir))
    with sharing(
        customer, "--policy", customer.root / "policy.toml", *relay, logs=tmp_path
    ) as share:
        code = share.code
        assert len(code) == 11 and code[3] == "-"
        done = technician.toolkit(
            "connect", *relay, "--code", code, "--ticket", "T-1", "--batch", "-",
            stdin="run uname -a\nread ~/notes.txt\n",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert NOTES in done.stdout
        assert f"rendezvous {code[:3]} at the relay {ALIAS}" in done.stderr
        assert share.wait() == 0
    assert not any(bastion.socket_dir.glob("*.tmp"))


def test_a_wrong_name_at_openssh_is_exit_4(
    people: tuple[Person, Person, Bastion], tmp_path: Path
) -> None:
    _, technician, bastion = people
    done = technician.toolkit(
        "connect", "--relay", ALIAS, "--relay-dir", str(bastion.socket_dir),
        "--code", "999-000-000", "--ticket", "T-1", "--batch", "-", stdin="exit\n",
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert "cannot reach rendezvous 999" in done.stderr


def test_an_unknown_bastion_host_key_is_refused_with_the_fix(
    people: tuple[Person, Person, Bastion], tmp_path: Path
) -> None:
    customer, _, bastion = people
    (customer.home / ".ssh" / "known_hosts").write_text("")
    done = customer.toolkit("share", "--yes", "--json", "--relay", ALIAS, timeout=30)
    assert done.returncode == 4, done.stderr
    assert "known_hosts" in done.stderr
    assert f"mkdir -p -m 700 ~/.ssh && echo '[127.0.0.1]:{bastion.port} " in done.stderr
    assert done.stdout == ""  # no code was shown
