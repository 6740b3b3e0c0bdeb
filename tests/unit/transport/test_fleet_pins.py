"""Pinned agent host keys: known goes on, changed is always refused, unknown is asked or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolkit.errors import ConsentRefused, ExitCode, UsageError
from toolkit.identity.keys import fingerprint
from toolkit.transport.pins import HostKeyRefused, KnownAgents, default_path, label_of

KEY_A = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"A" * 32
KEY_B = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"B" * 32
FP_A, FP_B = fingerprint(KEY_A), fingerprint(KEY_B)


def test_a_pinned_key_goes_on_by_name_or_address(tmp_path: Path) -> None:
    path = tmp_path / "known_agents"
    path.write_text(f"# pins\nweb-01 {FP_A}\n10.0.0.5:7022 {FP_B}\n[::1]:7 {FP_A}\n")
    pins = KnownAgents(path)
    pins.check("web-01", KEY_A)
    pins.checker("web-02", ("10.0.0.5", 7022), None)(KEY_B)  # not by name: by address
    pins.checker("v6", ("::1", 7), None)(KEY_A)
    assert pins.lookup("web-01") == {FP_A}
    assert label_of("::1", 7) == "[::1]:7"


def test_a_changed_key_is_always_refused_even_with_someone_to_ask(tmp_path: Path) -> None:
    path = tmp_path / "known_agents"
    path.write_text(f"web-01 {FP_A}\n")
    asked: list[str] = []

    def ask(label: str, fp: str) -> bool:
        asked.append(label)
        return True

    pins = KnownAgents(path, ask=ask)
    with pytest.raises(HostKeyRefused) as caught:
        pins.check("web-01", KEY_B)
    message = caught.value.message
    assert FP_A in message and FP_B in message and "web-01" in message
    assert caught.value.exit_code == ExitCode.REFUSED and isinstance(caught.value, ConsentRefused)
    assert asked == []
    assert path.read_text() == f"web-01 {FP_A}\n"  # nothing saved


def test_the_inventory_pin_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "known_agents"
    path.write_text(f"web-01 {FP_A}\n")
    pins = KnownAgents(path, ask=lambda label, fp: True)
    pins.checker("web-01", None, FP_B)(KEY_B)
    with pytest.raises(HostKeyRefused, match="the inventory pins"):
        pins.checker("web-01", None, FP_B)(KEY_A)


def test_unknown_is_refused_without_anyone_to_ask(tmp_path: Path) -> None:
    pins = KnownAgents(tmp_path / "missing")
    with pytest.raises(HostKeyRefused, match="not pinned") as caught:
        pins.check("web-01", KEY_A)
    assert f"web-01 {FP_A}" in (caught.value.hint or "")
    assert not (tmp_path / "missing").exists()


def test_unknown_asked_yes_is_saved_no_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "config" / "toolkit" / "known_agents"
    answers = iter([False, True])
    asked: list[tuple[str, str]] = []

    def ask(label: str, fp: str) -> bool:
        asked.append((label, fp))
        return next(answers)

    pins = KnownAgents(path, ask=ask)
    with pytest.raises(HostKeyRefused):
        pins.check("127.0.0.1:7022", KEY_A)
    assert not path.exists()
    pins.check("127.0.0.1:7022", KEY_A)
    assert asked == [("127.0.0.1:7022", FP_A)] * 2
    assert path.read_text() == f"127.0.0.1:7022 {FP_A}\n"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    KnownAgents(path).check("127.0.0.1:7022", KEY_A)  # read back, nothing asked


def test_the_default_file_is_in_the_config_dir(isolated: Path) -> None:
    assert default_path() == isolated / "config" / "toolkit" / "known_agents"


@pytest.mark.parametrize(
    "line",
    ["web-01", f"web 01 {FP_A}", "web-01 MD5:aa", f"web-01 {FP_A} extra", f"a\x1b[2J {FP_A}"],
)
def test_a_bad_line_is_refused_with_its_number(tmp_path: Path, line: str) -> None:
    path = tmp_path / "known_agents"
    path.write_text(f"ok {FP_A}\n{line}\n")
    with pytest.raises(UsageError, match="line 2: not") as caught:
        KnownAgents(path)
    assert "\x1b" not in caught.value.message


def test_a_file_that_is_not_a_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="FIFO"):
        KnownAgents(fifo)
    with pytest.raises(UsageError, match="directory"):
        KnownAgents(tmp_path)
