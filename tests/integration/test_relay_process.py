"""``toolkit relay``, ``toolkit share --relay`` and ``toolkit connect --relay`` as real processes.

Three people, each in a HOME of their own: the relay's operator, the customer
and the technician. The customer and the technician trust the relay's host
key through their ~/.ssh/known_hosts, as they would for a real one.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from bench.sshd import free_port
from tests.integration.share_process import Person, Share, end, sharing
from tests.integration.test_share_connect import (
    NOTES,
    SLEEP,
    customer_copy,
    make_customer,
    make_technician,
    technician_transcript,
    verified,
)
from tests.relay_support import host_key, raw_client, relay_process, trust, try_register

START = 15.0


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return host_key(tmp_path / "operator" / "host_key")


@pytest.fixture
def operator(tmp_path: Path) -> Person:
    return Person.make(tmp_path / "operator")


@pytest.fixture
def customer(tmp_path: Path) -> Person:
    return make_customer(tmp_path / "customer")


@pytest.fixture
def technician(tmp_path: Path, identity: Path) -> Person:
    return make_technician(tmp_path / "technician", identity)


def trusting(port: int, key: Path, *people: Person) -> None:
    for person in people:
        trust(port, key, person.home)


def connect_args(port: int, code: str) -> list[str]:
    return ["connect", "--relay", f"127.0.0.1:{port}", "--code", code, "--ticket", "T-1"]


def test_whole_session_through_toolkit_relay_as_processes(
    operator: Person, customer: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    with relay_process(operator, key) as relay:
        assert relay.listening["event"] == "listening"
        trusting(relay.port, key, customer, technician)
        policy = customer.root / "policy.toml"
        with sharing(customer, "--policy", policy, "--relay", f"127.0.0.1:{relay.port}",
                     logs=tmp_path) as share:  # fmt: skip
            code = share.code
            assert share.line()["port"] == relay.port
            done = technician.toolkit(
                *connect_args(relay.port, code), "--batch", "-",
                stdin="run uname -a\nread ~/notes.txt\n",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert NOTES in done.stdout
            assert share.wait() == 0
            shown = share.stderr()
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(10) == 0
        log = [json.loads(line) for line in relay.proc.stdout or []]
    assert [e["name"] for e in log if e["event"] == "register"] == [code[:3]]
    kinds = [e["event"] for e in log]
    assert "join" in kinds and "part" in kinds and kinds[-1] == "stopped"
    assert code.replace("-", "")[3:] not in json.dumps(log)
    assert customer_copy(shown).is_file()


def test_relay_killed_mid_session_both_sides_end_sealed_with_the_reason(
    operator: Person,
    customer: Person,
    technician: Person,
    key: Path,
    tmp_path: Path,
    signers: Path,
) -> None:
    policy = customer.root / "policy.toml"
    with relay_process(operator, key) as relay:
        trusting(relay.port, key, customer, technician)
        with sharing(customer, "--policy", policy, "--relay", f"127.0.0.1:{relay.port}",
                     logs=tmp_path) as share:  # fmt: skip
            batch = technician.root / "batch"
            batch.write_text(f"run true\nrun sleep {SLEEP}\n")
            running = technician.popen(*connect_args(relay.port, share.code), "--batch", batch)
            try:
                share.wait_for_stderr("run true -> exit 0")
                relay.kill()
                assert running.wait(15) == 4
                tech_err = running.stderr.read() if running.stderr else ""
                assert share.wait(15) == 0
            finally:
                end(running)
            shown = share.stderr()
    assert "relay" in tech_err
    report = verified(technician, technician_transcript(technician), signers)
    assert "relay" in report["end_reason"]
    copy = customer_copy(shown)
    allowed = copy.with_name(copy.name + ".allowed_signers")
    mine = verified(customer, copy, allowed)
    assert "relay" in mine["end_reason"]


def test_relay_restart_before_the_technician_joins_the_same_code_works(
    operator: Person, customer: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    port = free_port()
    trusting(port, key, customer, technician)
    with relay_process(operator, key, port) as first:
        share_cm = sharing(customer, "--relay", f"127.0.0.1:{port}", logs=tmp_path)
        share: Share = share_cm.__enter__()
        try:
            code = share.code
            first.kill()
            share.wait_for_stderr("reconnecting")
            with relay_process(operator, key, port):
                share.wait_for_stderr("the same code works", timeout=START)
                done = technician.toolkit(
                    *connect_args(port, code), "--batch", "-", stdin="run uname -a\n"
                )
                assert done.returncode == 0, done.stderr
                assert share.wait() == 0
                assert len(share.lines) == 1  # one code, read out once
        finally:
            share_cm.__exit__(None, None, None)


@pytest.fixture(scope="session")
def signers(identity: Path) -> Path:
    person = Person(identity.parent.parent)
    done = person.toolkit("keys", "allowed-signers")
    assert done.returncode == 0, done.stderr
    path = person.root / "allowed_signers"
    path.write_text(done.stdout)
    return path


def test_a_share_over_the_address_limit_is_told_why_in_one_sentence(
    operator: Person, customer: Person, key: Path
) -> None:
    with relay_process(operator, key, 0, "--names-per-address", "1") as relay:
        trusting(relay.port, key, customer)

        async def another_share() -> None:  # from the same address, holding its one name
            conn = await raw_client(relay.port)
            assert await try_register(conn) is not None
            conn.close()  # its name stays reserved for it, as for any dropped agent

        asyncio.run(asyncio.wait_for(another_share(), 30))
        done = customer.toolkit("share", "--yes", "--json", "--relay", f"127.0.0.1:{relay.port}")
        log, _ = relay.stop()
    why = "too many rendezvous from your address (at most 1 at once)"
    assert done.returncode == 4, done.stderr
    assert done.stderr.splitlines()[0] == (
        f"The relay 127.0.0.1:{relay.port} refused a rendezvous: {why}."
    )
    assert "Traceback" not in done.stderr and done.stdout == ""
    refused = [e for e in map(json.loads, log.splitlines()) if e["event"] == "register_refused"]
    assert [e["why"] for e in refused] == [why]


@pytest.mark.parametrize("option", ["--technicians", "--host-key"])
def test_a_fifo_or_a_device_for_a_relay_file_is_one_sentence_not_a_hang(
    operator: Person, option: str
) -> None:
    fifo = operator.root / "fifo"
    os.mkfifo(fifo)
    for path, why in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        done = operator.toolkit("relay", "--listen", "127.0.0.1:0", option, path, timeout=15)
        assert done.returncode == 2, done.stderr
        assert why in done.stderr and len(done.stderr.strip().splitlines()) == 1
