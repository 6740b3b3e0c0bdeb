"""Files a command reads: regular files within a cap, everything else one sentence."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest

from toolkit.errors import ExitCode
from toolkit.inputs import UnreadableInput, open_regular, read_regular, read_text


def test_reads_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_text("hello é")
    assert read_regular(path, what="the file") == "hello é".encode()
    assert read_text(path, what="the file") == "hello é"


def _refusal(path: Path | str, **kw: int) -> UnreadableInput:
    with pytest.raises(UnreadableInput) as caught:
        read_regular(path, what="the policy file", **kw)
    assert caught.value.exit_code is ExitCode.USAGE
    return caught.value


def test_a_fifo_is_refused_at_once_without_waiting_for_a_writer(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    done = threading.Event()
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_regular(fifo, what="the policy file")
        except BaseException as exc:
            result.append(exc)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(10):
        # Unblock the reader before failing, so the thread can end.
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("reading a FIFO waited for a writer")
    (exc,) = result
    assert isinstance(exc, UnreadableInput)
    why = "it is a FIFO (named pipe), not a regular file"
    assert exc.message == f"Cannot read the policy file {fifo}: {why}."


def test_devices_directories_and_sockets_are_refused(tmp_path: Path) -> None:
    assert "character device" in _refusal("/dev/zero").message
    assert "directory" in _refusal(tmp_path).message
    sock_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        assert "not a regular file" in _refusal(sock_path).message


def test_a_symlink_to_a_device_is_judged_by_what_it_opens(tmp_path: Path) -> None:
    link = tmp_path / "policy.toml"
    link.symlink_to("/dev/zero")
    assert "character device" in _refusal(link).message


def test_missing_file_is_marked_missing(tmp_path: Path) -> None:
    exc = _refusal(tmp_path / "nope")
    assert exc.missing
    assert exc.message.endswith(": no such file.")


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big"
    path.write_bytes(b"x" * 2049)
    assert _refusal(path, limit=2048).message.endswith("it is larger than 2 KiB.")
    assert read_regular(path, what="x", limit=2049) == b"x" * 2049


def test_not_utf8_is_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "latin1"
    path.write_bytes(b"caf\xe9")
    with pytest.raises(UnreadableInput, match=r"not UTF-8 text \(byte 3\)\.$"):
        read_text(path, what="the batch file")


def test_escape_characters_in_the_path_are_not_printed(tmp_path: Path) -> None:
    exc = _refusal(tmp_path / "a\x1b[2Jb")
    assert "\x1b" not in exc.message and "\\x1b[2J" in exc.message


def test_open_regular_hands_back_a_blocking_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    with open_regular(path, what="the transcript") as f:
        assert os.get_blocking(f.fileno())
        assert f.read() == b"abc"


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("T-1", "T-1"),
        ("INC#42", "INC#42"),
        ("a/../../etc/passwd", "a_.._.._etc_passwd"),
        ("..", "_"),
        ("..hidden", "hidden"),
        ("tick et ☃", "tick_et_"),
        ("x" * 100, "x" * 64),
    ],
)
def test_a_peers_text_as_part_of_a_file_name(text: str, part: str) -> None:
    from toolkit.paths import name_part

    assert name_part(text) == part
    assert "/" not in name_part(text) and name_part(text) not in ("", ".", "..")
