"""The known agents file's question on a terminal, as ssh asks about a server's key."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import toolkit.cli._pins
from toolkit.identity.keys import fingerprint
from toolkit.transport.pins import HostKeyRefused, default_path

KEY = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"K" * 32


def _terminal(monkeypatch: pytest.MonkeyPatch, answers: str, on: bool = True) -> None:
    monkeypatch.setattr(toolkit.cli._pins, "_terminal", lambda: on)
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))


def test_yes_pins_the_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _terminal(monkeypatch, "maybe\nyes\n")
    toolkit.cli._pins.known_agents().check("10.0.0.5:7022", KEY)
    err = capsys.readouterr().err
    assert f"Its host key fingerprint is {fingerprint(KEY)}." in err
    assert "Please type 'yes', 'no' or the fingerprint" in err
    assert default_path().read_text() == f"10.0.0.5:7022 {fingerprint(KEY)}\n"


def test_the_fingerprint_itself_is_a_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch, fingerprint(KEY) + "\n")
    toolkit.cli._pins.known_agents().check("web-01", KEY)
    assert default_path().is_file()


@pytest.mark.parametrize("answers", ["no\n", ""])  # no, and the end of input
def test_no_refuses_and_saves_nothing(monkeypatch: pytest.MonkeyPatch, answers: str) -> None:
    _terminal(monkeypatch, answers)
    with pytest.raises(HostKeyRefused, match="nobody confirmed it"):
        toolkit.cli._pins.known_agents().check("web-01", KEY)
    assert not default_path().exists()


def test_no_terminal_no_question(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _terminal(monkeypatch, "yes\n", on=False)
    with pytest.raises(HostKeyRefused):
        toolkit.cli._pins.known_agents().check("web-01", KEY)
    with pytest.raises(HostKeyRefused):  # a fleet never asks
        _terminal(monkeypatch, "yes\n")
        toolkit.cli._pins.known_agents(ask=False).check("web-01", KEY)
