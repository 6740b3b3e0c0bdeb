"""``toolkit serve`` as a process: its flags, its refusals, its log, its key, its stop.

A session through the command itself needs a grant (toolkit.grants); the
service's core (``_serve``) is driven here in-process with the code consent
instead, and stopped by a real SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import allowed_signers_line, new_signer, write_allowed_signers, write_issuers
from tests.integration.share_process import Person, end
from tests.session_support import Customer, code_of, identity, make_catalogue, make_policy
from tests.threats.agent_support import assert_never_written
from toolkit.agent.host_key import load_or_create
from toolkit.agent.server import Agent, AgentSettings
from toolkit.cli.serve import ServiceLog, _Screen, _serve
from toolkit.consent import Scope
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.session.commands import parse
from toolkit.session.technician import TechnicianSession
from toolkit.transcript.verify import Verdict, examine
from toolkit.transport.ssh import ConsentAsk, connect

TIMEOUT = 20.0


@pytest.fixture
def admin(tmp_path: Path) -> Person:
    return Person.make(tmp_path / "admin")


@pytest.fixture
def issuers(tmp_path: Path) -> Path:
    return write_issuers(tmp_path / "issuers", new_signer())


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class Service:
    """A running ``toolkit serve``; started once it printed where it listens."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stderr is not None
        self.said = proc.stderr.readline()
        if not self.said.startswith("Serving on "):
            raise AssertionError(f"toolkit serve did not start: {self.said}{proc.stderr.read()}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(TIMEOUT)


@contextmanager
def service(person: Person, *args: str | Path) -> Iterator[Service]:
    proc = person.popen("serve", "--listen", "127.0.0.1:0", *args)
    try:
        yield Service(proc)
    finally:
        end(proc)


def test_show_host_key_makes_the_key_once_and_prints_what_inventories_pin(
    admin: Person, ssh_keygen: str
) -> None:
    first = admin.toolkit("serve", "--show-host-key", "--name", "web-01")
    assert first.returncode == 0, first.stderr
    line, fingerprint = first.stdout.splitlines()
    assert line.startswith("ssh-ed25519 AAAA") and line.endswith(" web-01")
    path = admin.data / "agent" / "host_key"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    listed = subprocess.run(
        [ssh_keygen, "-l", "-f", str(path)], capture_output=True, text=True, check=True
    )
    assert listed.stdout.split()[1] == fingerprint
    again = admin.toolkit("serve", "--show-host-key")
    assert again.stdout.splitlines()[1] == fingerprint  # the same key, kept


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "needs --accept-grants-from ALLOWED_SIGNERS"),
        (("--relay", "relay.example", "--listen", "127.0.0.1:0"), "not both"),
        (("--relay", "relay.example"), "--relay needs --name"),
        (("--name", "web 01"), "is not a name"),
        (("--name", "\x1b[31mred"), "'\\x1b[31mred' is not a name"),
        (("--scope", "shell"), "never offers a shell"),
        (("--scope", "everything"), "unknown scope"),
        (("--max-sessions", "0"), "--max-sessions"),
        (("--listen", "nowhere:99999"), "is not HOST:PORT"),
    ],
)
def test_bad_flags_are_refused_in_one_sentence_with_exit_2(
    admin: Person, issuers: Path, args: tuple[str, ...], says: str
) -> None:
    grants = () if not args else ("--accept-grants-from", str(issuers))
    done = admin.toolkit("serve", *grants, *args)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (admin.data / "agent" / "host_key").exists()  # nothing made for a usage error


def test_bad_files_are_refused_before_listening(admin: Person, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    done = admin.toolkit("serve", "--accept-grants-from", empty)
    assert done.returncode == 2 and "names no issuer of grants" in done.stderr
    not_issuers = write_allowed_signers(tmp_path / "technicians", new_signer())
    done = admin.toolkit("serve", "--accept-grants-from", not_issuers)
    assert done.returncode == 2 and "names no issuer of grants" in done.stderr
    done = admin.toolkit("serve", "--accept-grants-from", "/dev/zero")
    assert done.returncode == 2 and "not a regular file" in done.stderr
    issuers = write_issuers(tmp_path / "issuers", new_signer())
    done = admin.toolkit("serve", "--accept-grants-from", issuers, "--log", tmp_path)
    assert done.returncode == 2 and "is a directory" in done.stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # opening it to append would wait for a reader forever
    done = admin.toolkit("serve", "--accept-grants-from", issuers, "--log", fifo)
    assert done.returncode == 2 and "is not a regular file" in done.stderr
    done = admin.toolkit(
        "serve", "--accept-grants-from", issuers, "--log", tmp_path / "no-dir" / "log"
    )
    assert done.returncode == 2 and "does not exist" in done.stderr
    key = tmp_path / "host_key"
    load_or_create(key)
    key.chmod(0o644)
    done = admin.toolkit("serve", "--accept-grants-from", issuers, "--host-key", key)
    assert done.returncode == 2 and f"chmod 600 {key}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_it_says_where_it_listens_logs_json_lines_and_a_signal_stops_it_with_exit_0(
    admin: Person, issuers: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    log = tmp_path / "serve.log"
    with service(admin, "--accept-grants-from", issuers, "--log", log, "--name", "web-01") as s:
        fingerprint = load_or_create(admin.data / "agent" / "host_key").fingerprint
        assert f"host key {fingerprint}" in s.said
        assert "at most 16 sessions at once" in s.said
        listening = events(log)[0]
        assert listening["event"] == "listening"
        assert listening["host_key"] == fingerprint and listening["name"] == "web-01"
        assert s.said.startswith(f"Serving on {listening['address']},")
        assert listening["transcripts"] == str(admin.data / "transcripts")
        assert s.stop(sig) == 0
    stopped = events(log)
    assert [e["event"] for e in stopped][-2:] == ["stopping", "stopped"]
    assert all(e["ts"].endswith("+00:00") for e in stopped)


def test_the_log_is_reopened_after_logrotate_moves_it(
    admin: Person, issuers: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with service(admin, "--accept-grants-from", issuers, "--log", log) as s:
        assert events(log)[0]["event"] == "listening"
        log.rename(tmp_path / "serve.log.1")  # what logrotate does, without copytruncate
        assert s.stop() == 0
    assert [e["event"] for e in events(tmp_path / "serve.log.1")] == ["listening"]
    assert [e["event"] for e in events(log)] == ["stopping", "stopped"]


def test_without_log_the_json_lines_go_to_stdout(admin: Person, issuers: Path) -> None:
    with service(admin, "--accept-grants-from", issuers) as s:
        assert s.stop() == 0
        assert s.proc.stdout is not None
        lines = [json.loads(line) for line in s.proc.stdout.read().splitlines()]
    assert [e["event"] for e in lines] == ["listening", "stopping", "stopped"]


def test_sigterm_ends_the_running_sessions_sealing_both_copies_then_the_service(
    tmp_path: Path,
) -> None:
    """The command's own core, with the code consent: SIGTERM is a real signal."""
    log_path = tmp_path / "serve.log"
    codes: list[str] = []

    async def main() -> None:
        log = ServiceLog(log_path)
        customer = Customer()
        agent = Agent(
            AgentSettings(
                policy=make_policy(tmp_path),
                approver=customer,
                approve_fix=customer.approve_fix,
                catalogue=make_catalogue(),
                transcripts=tmp_path / "transcripts",
                service=True,
                events=log,
            ),
            _Screen(log),
            host_key=load_or_create(tmp_path / "host_key"),
        )
        serving = asyncio.ensure_future(_serve(agent, log, ("127.0.0.1", 0), None, None, True))
        while not agent.address[1]:  # until it listens
            await asyncio.sleep(0.01)
        techs = []
        signers = tmp_path / "technicians"
        for ticket in ("T-1", "T-2"):
            who = identity()
            with signers.open("a") as f:
                f.write(allowed_signers_line(who.signer))
            codes.append(agent.codes.current.display.reveal())
            ask = ConsentAsk(who, ticket, frozenset({Scope.DIAGNOSTICS}), code_of(agent))
            conn, consent = await connect("127.0.0.1", agent.address[1], ask)
            agent.fresh_code("next")
            tech = await TechnicianSession.start(
                conn, consent, who, "agent", path=tmp_path / f"tech-{ticket}.cast"
            )
            command = parse("run echo hi")
            assert command is not None
            assert (await tech.execute(command)).stdout == b"hi\n"
            techs.append(tech)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(serving, TIMEOUT)
        for tech in techs:  # each technician heard why, and seals their own copy
            why = await asyncio.wait_for(tech.client.wait_ended(), TIMEOUT)
            assert "the agent was stopped (SIGTERM)" in str(why)
            await tech.end("the service stopped")
        log.close()

    asyncio.run(asyncio.wait_for(main(), 60))
    logged = events(log_path)
    ends = [e for e in logged if e["event"] == "session-end"]
    assert len(ends) == 2
    assert {e["reason"] for e in ends} == {"the agent was stopped (SIGTERM)"}
    assert [e["event"] for e in logged][-1] == "stopped"
    for e in ends:  # the customer's copies
        path = Path(e["transcript"])
        trust = AllowedSigners.from_file(path.with_name(path.name + ".allowed_signers"))
        assert examine(path, trust).verdict is Verdict.SEALED
    technicians = AllowedSigners.from_file(tmp_path / "technicians")
    for ticket in ("T-1", "T-2"):  # the technicians' copies
        assert examine(tmp_path / f"tech-{ticket}.cast", technicians).verdict is Verdict.SEALED
    # No code reached the log (a service shows none; this one had the code consent).
    assert_never_written(codes, log_path)
