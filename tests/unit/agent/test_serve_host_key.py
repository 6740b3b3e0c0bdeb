"""The service's persistent host key: made once, 0600, readable by ssh-keygen, never replaced."""

from __future__ import annotations

import os
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from toolkit import paths
from toolkit.agent import host_key
from toolkit.agent.host_key import HostKey, default_path, load_or_create
from toolkit.errors import UsageError


def test_made_once_at_the_default_place_private_and_the_same_key_after(tmp_path: Path) -> None:
    key = load_or_create()
    path = default_path()
    assert key.path == path and path.is_relative_to(tmp_path)  # under the test's data dir
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = load_or_create()
    assert again.fingerprint == key.fingerprint and again.blob == key.blob
    assert key.fingerprint.startswith("SHA256:")
    assert key.public_line.startswith("ssh-ed25519 AAAA")
    assert "PRIVATE" not in repr(key) and key.fingerprint in repr(key)


def test_ephemeral_keys_differ_each_time() -> None:
    assert HostKey().fingerprint != HostKey().fingerprint


def test_ssh_keygen_reads_the_file_it_makes_and_it_reads_one_ssh_keygen_made(
    tmp_path: Path, ssh_keygen: str
) -> None:
    ours = tmp_path / "ours"
    key = load_or_create(ours)
    public = subprocess.run(
        [ssh_keygen, "-y", "-f", str(ours)], capture_output=True, text=True, check=True
    ).stdout
    assert public.split()[:2] == key.public_line.split()[:2]
    theirs = tmp_path / "theirs"
    subprocess.run([ssh_keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(theirs)], check=True)
    listed = subprocess.run(
        [ssh_keygen, "-l", "-f", str(theirs)], capture_output=True, text=True, check=True
    ).stdout
    assert load_or_create(theirs).fingerprint == listed.split()[1]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_a_key_others_may_read_or_write_is_refused_and_left_alone(
    tmp_path: Path, mode: int
) -> None:
    path = tmp_path / "host_key"
    load_or_create(path)
    before = path.read_bytes()
    path.chmod(mode)
    with pytest.raises(UsageError) as refused:
        load_or_create(path)
    message = refused.value.message
    assert f"mode {mode:04o}" in message and f"chmod 600 {path}" in message
    assert path.read_bytes() == before


def _broken_armor() -> bytes:
    """A key file's first line, from a key made here, over a body that is no key."""
    pem = HostKey().openssh()
    return pem.splitlines(keepends=True)[0] + b"garbage\n"


@pytest.mark.parametrize(
    "content",
    [b"", b"hello\n", _broken_armor()],
    ids=["empty", "text", "broken-armor"],
)
def test_a_file_that_is_not_a_key_is_refused_and_never_overwritten(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "host_key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(UsageError, match="is not an unencrypted OpenSSH Ed25519 private key"):
        load_or_create(path)
    assert path.read_bytes() == content


def test_other_key_kinds_and_encrypted_keys_are_refused(tmp_path: Path, ssh_keygen: str) -> None:
    for name, args in (("rsa", ["-t", "rsa", "-b", "2048", "-N", ""]),
                       ("locked", ["-t", "ed25519", "-N", "passphrase"])):  # fmt: skip
        path = tmp_path / name
        subprocess.run([ssh_keygen, "-q", *args, "-f", str(path)], check=True)
        with pytest.raises(UsageError, match="not an unencrypted OpenSSH Ed25519"):
            load_or_create(path)


def test_not_a_regular_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    directory = tmp_path / "a-dir"
    directory.mkdir()
    with pytest.raises(UsageError, match="it is a directory"):
        load_or_create(directory)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        load_or_create(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (host_key.MAX_HOST_KEY_FILE + 1))
    big.chmod(0o600)
    with pytest.raises(UsageError, match="larger than 16 KiB"):
        load_or_create(big)


def test_services_starting_at_once_end_up_with_one_key(tmp_path: Path) -> None:
    path = tmp_path / "state" / "host_key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_or_create(path), range(16)))
    assert len({k.fingerprint for k in keys}) == 1
    assert [p.name for p in path.parent.iterdir()] == ["host_key"]  # no temporary left


def test_creating_never_replaces_a_file_that_appeared(tmp_path: Path) -> None:
    path = tmp_path / "host_key"
    path.write_bytes(b"someone else's")
    assert paths.atomic_write(path, b"ours", replace=False) is False
    assert path.read_bytes() == b"someone else's"
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == ["host_key"]
