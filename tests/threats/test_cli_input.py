"""Threat: bad input to every command, as an attacker or a tired person types it.

Every case runs the real entry point as a process with a deadline, and must
end with its documented exit code (docs/exit-codes.md), a message that says
what is wrong in a sentence or two, no traceback, no "internal error", no
escape character of the input echoed raw, and no hang: a FIFO, a device, a
directory, a huge or nested file, an absurd number. (The other threat files
cover the refusals that need a session: codes, consent, the allowlist.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.helpers import new_signer, record_sample, write_allowed_signers

#: Generous for a loaded machine; each of these ends in well under a second.
DEADLINE = 30.0
ESC = "\x1b"


@dataclass(frozen=True)
class Files:
    root: Path
    sealed: Path
    signers: Path
    fifo: Path
    directory: Path
    nested: Path  # TOML arrays 5,000 deep
    huge: Path  # a sparse file of 64 MiB
    garbage: Path
    batch: Path  # commands a session would run
    key: Path  # an unencrypted technician key


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    root = tmp_path_factory.mktemp("inputs")
    signer = new_signer()
    sealed = record_sample(root / "sealed.cast", signer, events=2)
    signers = write_allowed_signers(root / "allowed_signers", signer)
    fifo = root / "fifo"
    os.mkfifo(fifo)
    directory = root / "dir"
    directory.mkdir()
    nested = root / "nested.toml"
    nested.write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    huge = root / "huge"
    with huge.open("wb") as f:
        f.truncate(64 << 20)
    garbage = root / "garbage.cast"
    garbage.write_bytes(os.urandom(4096))
    batch = root / "batch"
    batch.write_text("diag system\n")
    key = root / "id_ed25519"
    key.write_bytes(
        ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    return Files(root, sealed, signers, fifo, directory, nested, huge, garbage, batch, key)


Args = Callable[[Files], list[str]]
#: A connect that would reach nothing (port 9, discard): no case below gets that far but one.
CONNECT = ["connect", "127.0.0.1:9", "--ticket", "T-1", "--code", "123-456-789"]
SIGNERS = "--allowed-signers"


def _keys_init(name: str, email: str = "a@b.c") -> list[str]:
    return ["keys", "init", "--name", name, "--email", email, "--no-keyring"]


# (name, arguments, exit code): every one of these is a person's mistake or an attack.
CASES: list[tuple[str, Args, int]] = [
    # toolkit verify
    ("verify a missing file", lambda f: ["verify", str(f.root / "nope.cast")], 2),
    ("verify a directory", lambda f: ["verify", str(f.directory)], 2),
    ("verify a FIFO", lambda f: ["verify", str(f.fifo)], 2),
    ("verify /dev/zero", lambda f: ["verify", "/dev/zero"], 2),
    ("verify random bytes", lambda f: ["verify", str(f.garbage)], 2),
    ("verify a huge file of zeros", lambda f: ["verify", str(f.huge)], 2),
    ("verify, signers a FIFO", lambda f: ["verify", str(f.sealed), SIGNERS, str(f.fifo)], 2),
    ("verify, signers /dev/zero", lambda f: ["verify", str(f.sealed), SIGNERS, "/dev/zero"], 2),
    ("verify, signers huge", lambda f: ["verify", str(f.sealed), SIGNERS, str(f.huge)], 2),
    ("verify, signers random", lambda f: ["verify", str(f.sealed), SIGNERS, str(f.garbage)], 2),
    ("verify, unknown option", lambda f: ["verify", "--frobnicate", str(f.sealed)], 2),
    # toolkit keys
    ("keys init, no name", lambda f: ["keys", "init", "--email", "a@b.c"], 2),
    ("keys init, empty name", lambda f: _keys_init(""), 2),
    ("keys init, escape in the name", lambda f: _keys_init(f"A{ESC}[2Jb"), 2),
    ("keys init, 10,000-character name", lambda f: _keys_init("n" * 10_000), 2),
    ("keys init, not an email", lambda f: _keys_init("A", "nope"), 2),
    ("keys show, key file missing", lambda f: ["keys", "show", "--key", str(f.root / "nope")], 1),
    ("keys show, key file a FIFO", lambda f: ["keys", "show", "--key", str(f.fifo)], 1),
    ("keys show, key file /dev/zero", lambda f: ["keys", "show", "--key", "/dev/zero"], 1),
    ("keys show, key file a directory", lambda f: ["keys", "show", "--key", str(f.directory)], 2),
    ("keys show, key file random", lambda f: ["keys", "show", "--key", str(f.garbage)], 1),
    # toolkit connect
    ("connect, no address", lambda f: ["connect", "--ticket", "T-1"], 2),
    ("connect, not an address", lambda f: ["connect", "host:port", "--ticket", "T-1"], 2),
    ("connect, port 70000", lambda f: ["connect", "127.0.0.1:70000", "--ticket", "T-1"], 2),
    ("connect, code of letters", lambda f: [*CONNECT[:-1], "abc-def-ghi"], 2),
    ("connect, escape in the ticket", lambda f: [*CONNECT[:3], f"T{ESC}[2J", *CONNECT[4:]], 2),
    ("connect, batch a FIFO", lambda f: [*CONNECT, "--batch", str(f.fifo)], 2),
    ("connect, batch /dev/zero", lambda f: [*CONNECT, "--batch", "/dev/zero"], 2),
    ("connect, batch a directory", lambda f: [*CONNECT, "--batch", str(f.directory)], 2),
    ("connect, batch huge", lambda f: [*CONNECT, "--batch", str(f.huge)], 2),
    ("connect, batch random bytes", lambda f: [*CONNECT, "--batch", str(f.garbage)], 2),
    ("connect, batch not commands", lambda f: [*CONNECT, "--batch", str(f.sealed)], 2),
    (
        "connect, nothing listens",
        lambda f: [*CONNECT, "--key", str(f.key), "--batch", str(f.batch)],
        4,
    ),
    # toolkit share: each must be refused before it listens (a listening share never exits)
    ("share --ttl inf", lambda f: ["share", "--ttl", "inf"], 2),
    ("share --ttl 1e300", lambda f: ["share", "--ttl", "1e300"], 2),
    ("share --ttl nan", lambda f: ["share", "--ttl", "nan"], 2),
    ("share --ttl -5", lambda f: ["share", "--ttl", "-5"], 2),
    ("share --listen nonsense", lambda f: ["share", "--listen", "no such host:1"], 2),
    ("share --scope unknown", lambda f: ["share", "--scope", "root"], 2),
    ("share --policy missing", lambda f: ["share", "--policy", str(f.root / "nope.toml")], 2),
    ("share --policy a FIFO", lambda f: ["share", "--policy", str(f.fifo)], 2),
    ("share --policy /dev/zero", lambda f: ["share", "--policy", "/dev/zero"], 2),
    ("share --policy a directory", lambda f: ["share", "--policy", str(f.directory)], 2),
    ("share --policy nested 5,000 deep", lambda f: ["share", "--policy", str(f.nested)], 2),
    ("share --policy huge", lambda f: ["share", "--policy", str(f.huge)], 2),
    ("share --code-file, no such dir", lambda f: ["share", "--code-file", str(f.root / "no/c")], 2),
    ("share --code-file a directory", lambda f: ["share", "--code-file", str(f.directory)], 2),
    ("share --allowed-signers a FIFO", lambda f: ["share", SIGNERS, str(f.fifo)], 2),
    # toolkit tickets
    ("tickets show, not a ticket id", lambda f: ["tickets", "show", f"T-1/../..{ESC}"], 2),
    ("tickets, unknown backend", lambda f: ["tickets", "show", "T-1", "--backend", "nope"], 2),
]


@pytest.mark.parametrize(
    ("args", "code"), [(a, c) for _, a, c in CASES], ids=[n for n, _, _ in CASES]
)
def test_bad_input_is_one_sentence_with_its_exit_code(files: Files, args: Args, code: int) -> None:
    argv = args(files)
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "toolkit", *argv],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DEADLINE,
            env=env,
            cwd=files.root,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"toolkit {' '.join(argv)[:120]} did not end in {DEADLINE} s")
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == code, err
    assert err.strip(), "no message"
    assert "Traceback" not in err and "internal error" not in err, err
    assert ESC not in err and ESC.encode() not in done.stdout
    message = [line for line in err.splitlines() if line.strip()]
    assert len(message) <= 4, err  # a sentence, a hint: not a wall of text
