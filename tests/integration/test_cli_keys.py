"""`toolkit keys` through the real entry point, in process and as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import run
from toolkit.cli import run as toolkit
from toolkit.identity.keys import blob_from_line, fingerprint

ALICE = ["--name", "Alice Tech", "--email", "alice@example.com"]


def test_init_without_keyring_uses_encrypted_file_and_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_KEY_PASSPHRASE", "correct horse battery")
    assert toolkit(["keys", "init", *ALICE]) == 0
    captured = capsys.readouterr()
    assert "encrypted with your passphrase (no usable OS keyring was found)" in captured.err
    assert captured.out.startswith("SHA256:")

    assert toolkit(["keys", "show", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert view["name"] == "Alice Tech" and view["email"] == "alice@example.com"
    assert view["store"] == "encrypted-file"
    assert fingerprint(blob_from_line(view["public_key"])) == view["fingerprint"]

    assert toolkit(["keys", "allowed-signers"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(
        'alice@example.com namespaces="toolkit-transcript-checkpoint,toolkit-transcript,'
        'toolkit-manifest,toolkit-run-summary" '
    )
    assert line.endswith(view["public_key"])


def test_fingerprint_matches_ssh_keygen(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ssh_keygen: str
) -> None:
    assert toolkit(["keys", "init", *ALICE, "--no-passphrase"]) == 0
    capsys.readouterr()
    toolkit(["keys", "show", "--json"])
    view = json.loads(capsys.readouterr().out)
    pub = tmp_path / "k.pub"
    pub.write_text(view["public_key"] + "\n")
    listed = run(ssh_keygen, "-l", "-f", pub).stdout.decode()
    assert listed.split()[1] == view["fingerprint"]


def test_errors_are_one_sentence_with_exit_code_and_no_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, keygen_key: Path
) -> None:
    assert toolkit(["keys", "show"]) == 1
    err = capsys.readouterr().err
    assert "No technician key yet." in err and "toolkit keys init" in err
    assert "Traceback" not in err

    # No passphrase source and no terminal: say how to give one.
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    assert toolkit(["keys", "init", *ALICE]) == 1
    assert "TOOLKIT_KEY_PASSPHRASE" in capsys.readouterr().err

    monkeypatch.setenv("TOOLKIT_KEY_PASSPHRASE", "correct horse battery")
    assert toolkit(["keys", "init", *ALICE]) == 0
    assert toolkit(["keys", "init", *ALICE]) == 1
    assert "already exists" in capsys.readouterr().err

    monkeypatch.setenv("TOOLKIT_KEY_PASSPHRASE", "wrong wrong wrong")
    key_file = Path(os.environ["XDG_DATA_HOME"]) / "toolkit" / "identity_ed25519"
    assert toolkit(["keys", "show", "--key", str(key_file)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Wrong passphrase") and "Traceback" not in err

    assert toolkit(["keys", "show", "--agent"]) == 1
    assert "ssh-agent" in capsys.readouterr().err

    assert toolkit(["keys", "init", "--name", "A", "--email", "nope"]) == 2
    assert toolkit(["keys", "frobnicate"]) == 2
    assert toolkit(["keys", "show", "--key", str(keygen_key), "--agent=x"]) == 2


def test_key_file_and_agent_identities(
    capsys: pytest.CaptureFixture[str], keygen_key: Path, ssh_agent: str
) -> None:
    assert toolkit(["keys", "show", "--key", str(keygen_key), "--json"]) == 0
    by_file = json.loads(capsys.readouterr().out)
    assert by_file["store"] == "key-file" and by_file["email"] == "alice@example.com"
    subprocess.run(["ssh-add", "-q", keygen_key], check=True, capture_output=True)
    assert toolkit(["keys", "show", "--json", "--agent"]) == 0  # --agent alone: the only key
    by_agent = json.loads(capsys.readouterr().out)
    assert by_agent["store"] == "ssh-agent"
    assert by_agent["fingerprint"] == by_file["fingerprint"]
    assert toolkit(["keys", "show", "--agent", by_file["fingerprint"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fingerprint"] == by_file["fingerprint"]


def test_keyring_store_through_the_console_script(tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PYTHON_KEYRING_BACKEND="tests.keyring_backend.FileKeyring",
        TOOLKIT_TEST_KEYRING=str(tmp_path / "keyring.json"),
        PYTHONPATH=str(Path(__file__).parents[2]),
    )
    exe = Path(sys.executable).with_name("toolkit")
    done = subprocess.run(
        [exe, "keys", "init", *ALICE], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "stored in the OS keyring (FileKeyring)" in done.stderr
    assert "OPENSSH PRIVATE KEY" in (tmp_path / "keyring.json").read_text()
    shown = subprocess.run(
        [exe, "keys", "show", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert json.loads(shown.stdout)["store"] == "keyring (FileKeyring)"


@pytest.mark.parametrize(
    ("name", "email", "says"),
    [
        ("Al\x1b[2Jice", "alice@example.com", "The name holds a control or invisible character"),
        ("x" * 10_000, "alice@example.com", "The name is empty or longer than 128 characters"),
        ("Alice\u202e", "alice@example.com", "control or invisible character"),
        ("Alice", "alice\x07@example.com", "The email holds a control or invisible character"),
        ("Alice", "a" * 250 + "@example.com", "The email is empty or longer than 254"),
    ],
)
def test_init_refuses_what_every_agent_would_refuse(
    name: str, email: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Accepted here, such a name would make every later `toolkit connect` fail at consent.
    assert toolkit(["keys", "init", "--name", name, "--email", email, "--no-keyring"]) == 2
    err = capsys.readouterr().err
    assert says in err and "customers' agents refuse" in err
    assert "\x1b" not in err and "Traceback" not in err
    assert toolkit(["keys", "show"]) == 1  # nothing was made


def test_init_trims_spaces_around_name_and_email(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_KEY_PASSPHRASE", "correct horse battery")
    assert toolkit(["keys", "init", "--name", " Alice Tech ", "--email", "alice@example.com "]) == 0
    capsys.readouterr()
    assert toolkit(["keys", "show", "--json"]) == 0
    view = json.loads(capsys.readouterr().out)
    assert (view["name"], view["email"]) == ("Alice Tech", "alice@example.com")


def test_a_key_file_that_is_a_fifo_or_a_device_is_refused_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "id_ed25519"
    os.mkfifo(fifo)
    for key in (fifo, Path("/dev/zero")):
        assert toolkit(["keys", "show", "--key", str(key)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("Cannot read the key file") and "not a regular file" in err
