from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import tool
from tests.integration.share_process import EMAIL, NAME, Person
from tests.integration.terminal import Tmux


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own config, data, state and home dirs, and no real keyring."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for var, sub in [
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_DATA_HOME", "data"),
        ("XDG_STATE_HOME", "state"),
    ]:
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("TOOLKIT_KEY_PASSPHRASE", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())  # tests that want a keyring set their own
    return tmp_path


@pytest.fixture
def ssh_keygen() -> str:
    path = tool("ssh-keygen")
    if path is None:
        pytest.skip("ssh-keygen is not installed (Debian package openssh-client)")
    return path


@pytest.fixture
def ssh_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real ssh-agent on a private socket; SSH_AUTH_SOCK points at it."""
    agent = tool("ssh-agent")
    if agent is None:
        pytest.skip("ssh-agent is not installed (Debian package openssh-client)")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([agent, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if sock.exists():
                break
            time.sleep(0.01)
        else:
            pytest.fail("ssh-agent did not create its socket")
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@pytest.fixture
def keygen_key(tmp_path: Path, ssh_keygen: str) -> Path:
    """An Ed25519 key file made by ssh-keygen, no passphrase."""
    path = tmp_path / "id_ed25519"
    subprocess.run(
        [ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-C", "alice@example.com", "-f", str(path)],
        check=True,
    )
    os.chmod(path, 0o600)
    return path


# -- the people and terminals of the session tests ------------------------------------


@pytest.fixture(scope="session")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The technician's data dir holding a signing identity, made once (it takes a KDF)."""
    person = Person.make(tmp_path_factory.mktemp("identity"))
    done = person.toolkit("keys", "init", "--name", NAME, "--email", EMAIL, "--no-keyring")
    assert done.returncode == 0, done.stderr
    return person.data


@pytest.fixture(scope="session")
def signers(identity: Path) -> Path:
    """The identity's allowed_signers line, as `toolkit keys allowed-signers` prints it."""
    person = Person(identity.parent.parent)
    done = person.toolkit("keys", "allowed-signers")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{EMAIL} ")
    path = person.root / "allowed_signers"
    path.write_text(done.stdout)
    return path


@pytest.fixture
def people(tmp_path: Path, identity: Path) -> tuple[Person, Person]:
    """The technician (with the identity) and the customer (with the test policy)."""
    from tests.integration.test_share_connect import make_customer, make_technician

    return make_technician(tmp_path / "technician", identity), make_customer(tmp_path / "customer")


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    """Terminals of a tmux server of the test's own, killed at the end."""
    if tool("tmux") is None:
        pytest.skip("tmux is not installed (Debian package tmux)")
    terminals = Tmux(tmp_path)
    try:
        yield terminals
    finally:
        terminals.kill()
