"""Issue 15, relay users: first use of ``toolkit relay``, ``share --relay`` and ``connect --relay``.

Each person in a HOME of their own, as real processes (and on real terminals
under tmux where someone answers a question):

- a relay started with ``--technicians FILE`` admits the technician it lists
  (by the toolkit identity the technician logs in with) and refuses another
  plainly, with exit code 4 and no talk of the code's first group;
- an unknown relay host key: on a terminal, the fingerprint and ssh's question
  (``yes`` adds it, making ~/.ssh 0700 and known_hosts 0600; ``no`` is exit 4),
  asked before the passphrase and the code; without a terminal, exit 4 and a
  command that works where ~/.ssh does not exist; a changed key is refused;
- ``toolkit relay`` writes JSON lines only on stdout; its words for people go
  to stderr.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import pytest

from tests.helpers import tool
from tests.integration.share_process import PASSPHRASE, Person, sharing
from tests.integration.terminal import Tmux
from tests.integration.test_share_connect import (
    NOTES,
    make_customer,
    make_technician,
)
from tests.relay_support import (
    RelayProcess,
    consent_through,
    host_key,
    raw_client,
    relay_process,
    relayed_agent,
    running_relay,
    trust,
    try_register,
)
from toolkit.identity.keys import fingerprint
from toolkit.identity.signer import Signer, agent_signer, key_file_signer
from toolkit.identity.store import Identity

QUESTION = "Are you sure you want to continue connecting (yes/no/[fingerprint])?"
CODE_PROMPT = "One-time code from the customer"
PROMPT = "toolkit>"  # (tmux drops trailing spaces)


@dataclass(frozen=True)
class NoPassphrase(Person):
    """A technician whose environment holds no key passphrase: loading the key would fail."""

    def env(self) -> dict[str, str]:
        env = super().env()
        env.pop("TOOLKIT_KEY_PASSPHRASE")
        return env


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


def at(relay: RelayProcess) -> str:
    return f"127.0.0.1:{relay.port}"


def scripted_connect(person: Person, relay: RelayProcess) -> subprocess.CompletedProcess[str]:
    """connect through ``relay`` as a script runs it: --code given, the batch on stdin."""
    return person.toolkit(
        "connect", "--relay", at(relay), "--ticket", "T-1", "--code", "1234-567-890",
        "--batch", "-", stdin="exit\n",
    )  # fmt: skip


def without_ssh_dir(person: Person) -> Person:
    shutil.rmtree(person.home / ".ssh", ignore_errors=True)
    return person


def stdout_events(text: str) -> list[dict[str, object]]:
    """Every line of the relay's stdout, each parsed as JSON (a line that is not fails)."""
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pytest.fail(f"toolkit relay wrote a line that is not JSON on stdout: {line!r}")
    return events


def add_command(stderr: str) -> str:
    """The command the refusal suggests, from the line that names it."""
    found = re.search(r"add it with: (mkdir -p -m 700 .+)$", stderr, re.MULTILINE)
    assert found, stderr
    return found.group(1)


def run_shell(person: Person, command: str) -> None:
    done = subprocess.run(
        ["sh", "-c", command], env=person.env(), capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr


def other_key_file(root: Path) -> Path:
    """An unencrypted OpenSSH key for ``--key``: a technician nobody listed."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "id_other"
    path.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    path.chmod(0o600)
    return path


# -- 1. --technicians --------------------------------------------------------------------


def test_a_listed_technician_gets_in_an_unlisted_one_is_refused_plainly_and_stdout_is_json(
    operator: Person, customer: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    signers = technician.toolkit("keys", "allowed-signers")
    assert signers.returncode == 0, signers.stderr
    listed = operator.root / "technicians"
    listed.write_text(signers.stdout)
    stranger_key = other_key_file(tmp_path / "stranger")
    policy = customer.root / "policy.toml"
    with relay_process(operator, key, 0, "--technicians", str(listed)) as relay:
        for person in (customer, technician):
            trust(relay.port, key, person.home)
        with sharing(customer, "--policy", policy, "--relay", at(relay), logs=tmp_path) as share:
            code = share.code
            # Not listed: the relay refuses, before the customer's agent hears of it.
            refused = technician.toolkit(
                "connect", "--relay", at(relay), "--code", code, "--ticket", "T-1",
                "--key", stranger_key, "--batch", "-", stdin="read ~/notes.txt\n",
            )  # fmt: skip
            assert refused.returncode == 4, refused.stderr
            said = [line for line in refused.stderr.splitlines() if "refused you" in line]
            assert said and said[0].startswith(f"The relay {at(relay)} refused you: "), said
            assert "admits listed technicians only" in said[0]
            assert "first group" not in refused.stderr
            assert "--technicians" in refused.stderr  # what the operator has to change
            assert NOTES not in refused.stdout
            # Listed: the same code still works (the refusal cost it no try).
            done = technician.toolkit(
                "connect", "--relay", at(relay), "--code", code, "--ticket", "T-1",
                "--batch", "-", stdin="read ~/notes.txt\n",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert NOTES in done.stdout
            assert share.wait() == 0
        # The operator's Ctrl-C.
        relay.proc.send_signal(signal.SIGINT)
        assert relay.proc.wait(10) == 130
        assert relay.proc.stdout is not None
        rest = relay.proc.stdout.read()
        stderr = relay.stderr.read_text()
    log = [relay.listening, *stdout_events(rest)]
    technicians = [e for e in log if e["event"] == "auth" and e["technician"]]
    lookups = [e for e in log if e["event"] == "lookup"]
    assert len(technicians) == 1 and [e["why"] for e in lookups] == ["not a technician"]
    assert [e["event"] for e in log].count("join") == 1 and log[-1]["event"] == "stopped"
    # The people's line went to stderr, not into the log.
    assert stderr.startswith(f"Relay listening on {at(relay)}, host key ")


def test_the_relay_log_on_stdout_is_json_lines_only_through_refusals_and_sigterm(
    operator: Person, key: Path
) -> None:
    async def refused_things(port: int) -> None:
        conn = await raw_client(port)
        async with conn:
            assert await try_register(conn) is not None
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.run("id", check=True)
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.open_unix_connection("/run/toolkit-relay/999")

    with relay_process(operator, key) as relay:
        asyncio.run(asyncio.wait_for(refused_things(relay.port), 30))
        rest, stderr = relay.stop()
    events = [relay.listening, *stdout_events(rest)]
    kinds = [e["event"] for e in events]
    assert {"register", "refused", "lookup", "disconnect"} <= set(kinds)
    assert kinds[-1] == "stopped"
    assert "Relay listening on" in stderr and "Relay listening on" not in rest


# -- 2. the relay's host key, without a terminal -------------------------------------------


def test_unknown_relay_key_without_a_terminal_is_exit_4_before_the_passphrase_and_code(
    operator: Person, customer: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    customer = without_ssh_dir(customer)
    assert not (technician.home / ".ssh").exists()
    hurried = NoPassphrase(technician.root)  # no passphrase: it is never reached
    policy = customer.root / "policy.toml"
    with relay_process(operator, key) as relay:
        fingerprint = relay.listening["host_key"]
        # The technician: stopped at the relay's key, not at the passphrase or the code.
        # A script gives --code (without one and without a terminal, connect stops at
        # once with a usage error, before any network).
        done = scripted_connect(hurried, relay)
        assert done.returncode == 4, done.stderr
        assert f"The relay {at(relay)} is not in your known_hosts" in done.stderr
        assert fingerprint in done.stderr
        assert "passphrase" not in done.stderr.lower() and "--code" not in done.stderr
        assert not (technician.home / ".ssh").exists()  # nothing written without a yes
        # The customer: no code shown.
        shared = customer.toolkit("share", "--yes", "--json", "--relay", at(relay))
        assert shared.returncode == 4, shared.stderr
        assert shared.stdout == "" and fingerprint in shared.stderr
        # The suggested command works where ~/.ssh is missing, for both.
        run_shell(technician, add_command(done.stderr))
        run_shell(customer, add_command(shared.stderr))
        for person in (technician, customer):
            assert (person.home / ".ssh").stat().st_mode & 0o777 == 0o700
        with sharing(customer, "--policy", policy, "--relay", at(relay), logs=tmp_path) as share:
            ok = technician.toolkit(
                "connect", "--relay", at(relay), "--code", share.code, "--ticket", "T-1",
                "--batch", "-", stdin="read ~/notes.txt\n",
            )  # fmt: skip
            assert ok.returncode == 0, ok.stderr
            assert NOTES in ok.stdout
        log, _ = relay.stop()
    # The refused attempts logged nothing in: the key exchange only, as ssh-keyscan.
    auths = [e for e in stdout_events(log) if e["event"] == "auth"]
    assert len(auths) == 2  # the share's agent and the technician that got in


# -- 2. the relay's host key, on a terminal ------------------------------------------------


def test_on_a_terminal_yes_adds_the_relay_key_before_the_passphrase_and_the_code(
    operator: Person, customer: Person, technician: Person, key: Path, tmp_path: Path, tmux: Tmux
) -> None:
    asking = NoPassphrase(technician.root)  # so that the passphrase is asked, after the key
    assert not (technician.home / ".ssh").exists()
    policy = customer.root / "policy.toml"
    with relay_process(operator, key) as relay:
        trust(relay.port, key, customer.home)
        fingerprint = relay.listening["host_key"]
        with sharing(customer, "--policy", policy, "--relay", at(relay), logs=tmp_path) as share:
            tmux.start("tech", asking, "connect", "--relay", at(relay), "--ticket", "T-1")
            screen = tmux.wait_for("tech", QUESTION)
            assert f"ED25519 key fingerprint is {fingerprint}." in screen
            assert "passphrase" not in screen.lower() and CODE_PROMPT not in screen
            tmux.type("tech", "maybe")
            tmux.wait_for("tech", "Please type 'yes', 'no' or the fingerprint:")
            tmux.type("tech", "yes")
            screen = tmux.wait_for("tech", "Key passphrase")
            assert f"Permanently added '[127.0.0.1]:{relay.port}' (ED25519)" in screen
            ssh = technician.home / ".ssh"
            assert ssh.stat().st_mode & 0o777 == 0o700
            assert (ssh / "known_hosts").stat().st_mode & 0o777 == 0o600
            public = key.with_name(key.name + ".pub").read_text().split()
            line = f"[127.0.0.1]:{relay.port} {public[0]} {public[1]}\n"
            assert (ssh / "known_hosts").read_text() == line
            tmux.type("tech", PASSPHRASE)
            tmux.wait_for("tech", CODE_PROMPT)
            tmux.type("tech", share.code)
            tmux.wait_for("tech", PROMPT)
            tmux.type("tech", "read ~/notes.txt")
            tmux.wait_for("tech", NOTES.strip())
            tmux.type("tech", "exit")
            tmux.wait_for("tech", "[exit 0]")
            assert share.wait() == 0


@pytest.mark.parametrize("command", ["connect", "share"])
def test_on_a_terminal_no_stops_with_exit_4_and_writes_nothing(
    operator: Person, technician: Person, customer: Person, key: Path, tmux: Tmux, command: str
) -> None:
    person = technician if command == "connect" else without_ssh_dir(customer)
    args = ["--ticket", "T-1"] if command == "connect" else []
    with relay_process(operator, key) as relay:
        tmux.start("win", person, command, "--relay", at(relay), *args)
        screen = tmux.wait_for("win", QUESTION)
        assert relay.listening["host_key"] in screen
        tmux.type("win", "no")
        screen = tmux.wait_for("win", "[exit 4]")
        assert "You did not accept the relay" in screen
        assert CODE_PROMPT not in screen and "One-time code" not in screen
        log, _ = relay.stop()
    assert not (person.home / ".ssh").exists()
    assert not [e for e in stdout_events(log) if e["event"] == "auth"]  # nothing logged in


def test_share_on_a_terminal_yes_shows_a_code_after_the_key_is_added(
    operator: Person, customer: Person, key: Path, tmux: Tmux
) -> None:
    customer = without_ssh_dir(customer)
    with relay_process(operator, key) as relay:
        tmux.start("customer", customer, "share", "--relay", at(relay))
        tmux.wait_for("customer", QUESTION)
        tmux.type("customer", "yes")
        screen = tmux.wait_for("customer", "One-time code")
        assert screen.index("Permanently added") < screen.index("One-time code")
        assert (customer.home / ".ssh" / "known_hosts").stat().st_mode & 0o777 == 0o600
        tmux.keys("customer", "C-c")
        tmux.wait_for("customer", "[exit")


@pytest.mark.parametrize("terminal", [True, False])
def test_a_changed_relay_key_is_refused_without_a_question(
    operator: Person, technician: Person, key: Path, tmp_path: Path, tmux: Tmux, terminal: bool
) -> None:
    with relay_process(operator, key) as relay:
        trust(relay.port, host_key(tmp_path / "old" / "host_key"), technician.home)
        before = (technician.home / ".ssh" / "known_hosts").read_text()
        if terminal:
            tmux.start("tech", technician, "connect", "--relay", at(relay), "--ticket", "T-1")
            said = tmux.wait_for("tech", "[exit 4]")
        else:
            done = scripted_connect(technician, relay)
            assert done.returncode == 4, done.stderr
            said = done.stderr
    assert "host key has changed" in said and relay.listening["host_key"] in said
    assert QUESTION not in said and CODE_PROMPT not in said
    assert (technician.home / ".ssh" / "known_hosts").read_text() == before


def test_the_operator_sees_json_lines_and_one_line_for_people_on_a_terminal(
    operator: Person, key: Path, tmux: Tmux
) -> None:
    tmux.start("relay", operator, "relay", "--listen", "127.0.0.1:0", "--host-key", key, width=200)
    tmux.wait_for("relay", "Relay listening on")
    tmux.keys("relay", "C-c")
    screen = tmux.wait_for("relay", "[exit 130]")
    lines = [line for line in screen.splitlines() if line.strip()]
    people = [line for line in lines if not line.startswith("{")]
    assert people[0].startswith("Relay listening on 127.0.0.1:")
    assert people[1:] == ["^C", "[exit 130]"]  # the stopped line is not glued to the ^C
    kinds = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert kinds == ["listening", "stopped"]


@pytest.mark.parametrize(
    ("kind", "bits"), [("ssh-ed25519", None), ("ecdsa-sha2-nistp256", None), ("ssh-rsa", 3072)]
)
@pytest.mark.parametrize("held_by", ["key file", "ssh-agent"])
def test_every_kind_of_identity_logs_in_as_the_listed_technician(
    tmp_path: Path, kind: str, bits: int | None, held_by: str, request: pytest.FixtureRequest
) -> None:
    private = (
        asyncssh.generate_private_key(kind, key_size=bits)
        if bits
        else asyncssh.generate_private_key(kind)
    )
    path = tmp_path / "id_technician"
    path.write_bytes(private.export_private_key())
    path.chmod(0o600)
    if held_by == "ssh-agent":
        request.getfixturevalue("ssh_agent")
        ssh_add = tool("ssh-add")
        if ssh_add is None:
            pytest.skip("ssh-add is not installed (Debian package openssh-client)")
        subprocess.run([ssh_add, "-q", str(path)], check=True, capture_output=True, timeout=30)
        signer: Signer = agent_signer()
    else:
        signer = key_file_signer(path, lambda: "")
    who = Identity("Alice Tech", "alice@example.com", signer, held_by)

    async def main() -> None:
        listed = frozenset({private.public_data})
        async with running_relay(tmp_path, technicians=listed) as relay:
            agent = await relayed_agent(tmp_path, relay.route)
            conn, _ = await consent_through(relay.route, agent.code, who)
            conn.close()
            await agent.agent.stop("test over")
            joined = relay.log.events("join")  # (the share here may log in with it too)
            assert [e["key"] for e in joined] == [fingerprint(private.public_data)]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_a_known_hosts_line_that_cannot_be_read_is_refused_not_taken_for_an_unknown_key(
    operator: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    with relay_process(operator, key) as relay:
        trust(relay.port, host_key(tmp_path / "old" / "host_key"), technician.home)
        known = technician.home / ".ssh" / "known_hosts"
        valid = key.with_name(key.name + ".pub").read_text().split()[:2]
        known.write_text(f"|1|abc|def {' '.join(valid)}\n" + known.read_text())  # a bad hash
        done = scripted_connect(technician, relay)
    assert done.returncode == 4, done.stderr
    assert f"{known} holds a line that cannot be read" in done.stderr
    assert "Traceback" not in done.stderr and "echo" not in done.stderr


def test_a_key_known_hosts_seems_to_accept_but_ssh_refuses_is_said_with_ssh_s_reason(
    operator: Person, technician: Person, key: Path, tmp_path: Path
) -> None:
    # A @cert-authority line for the relay: the check before the passphrase takes it as
    # known, the real connection refuses the relay's plain (uncertified) key. The person
    # hears that reason, not "could not be verified; run it again".
    ca = host_key(tmp_path / "ca" / "host_key")
    public = ca.with_name(ca.name + ".pub").read_text().split()[:2]
    with relay_process(operator, key) as relay:
        ssh = technician.home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        line = f"@cert-authority [127.0.0.1]:{relay.port} {' '.join(public)}\n"
        (ssh / "known_hosts").write_text(line)
        done = scripted_connect(technician, relay)
    assert done.returncode == 4, done.stderr
    first = next(line for line in done.stderr.splitlines() if line.startswith("The relay"))
    assert first.startswith(f"The relay {at(relay)}'s host key (SHA256:"), done.stderr
    assert "was refused (" in first and "though your known_hosts" in first, done.stderr
    assert "@cert-authority" in done.stderr and "Traceback" not in done.stderr
