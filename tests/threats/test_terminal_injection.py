"""Threat: text from a transcript, a peer or a file name that drives the reader's terminal.

A technician controls every string in their own transcript (name, email,
ticket, end reason) and can put escape sequences in them, as can a customer
host name or a file name. Printed raw, ``ESC[2A ESC[1G ESC[2K`` moves the
cursor up and erases a line, so a supervisor's terminal shows a SEALED report
for a TAMPERED file. Each test renders the real command through a pty and a
terminal emulator (pyte) and judges what a person would see.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.helpers import EMAIL, new_signer, write_allowed_signers
from tests.integration.share_process import Person, sharing
from tests.terminal_screen import screen_of
from toolkit.tickets.base import Attachment, Ticket
from toolkit.transcript.recorder import Recorder, new_header

ESC = "\x1b"
UP_AND_ERASE = f"{ESC}[2A{ESC}[1G{ESC}[2K"
TOOLKIT = [sys.executable, "-m", "toolkit"]


def _fake_report(path: Path) -> str:
    """What the attacker wants the supervisor to see instead of the truth."""
    return (
        f"{ESC}[H{ESC}[2J{path}\r\n  technician   Alice Tech <{EMAIL}>\r\n"
        f"  operations   1, refusals 0\r\nSEALED {path}\r\n{ESC}[8m"
    )


def _record(path: Path, *, ticket: str = "T-1", reason: str = "completed", ops: int = 3) -> Path:
    signer = new_signer()
    header = new_header("Alice Tech", EMAIL, signer, ticket, scope=["diagnostics"])
    rec = Recorder.create(path, header, signer, checkpoint_events=2)
    rec.event("consent", method="spake2", result="ok")
    for i in range(ops):
        rec.output(f"output line {i}\r\n".encode())
        rec.event("operation", op="run", argv=["uptime"], exit_status=0, index=i)
    rec.close(reason)
    write_allowed_signers(path.with_name("allowed_signers"), signer)
    return path


def _verify(path: Path) -> tuple[int, list[str], str]:
    signers = path.with_name("allowed_signers")
    screen = screen_of([*TOOLKIT, "verify", "--allowed-signers", signers, path], cwd=path.parent)
    return screen.code, screen.lines, screen.text


def test_an_escape_laden_ticket_cannot_make_a_tampered_file_look_sealed(tmp_path: Path) -> None:
    path = tmp_path / "evil.cast"
    _record(path, ticket="T-1" + UP_AND_ERASE + _fake_report(path))
    data = path.read_bytes()
    path.write_bytes(data.replace(b"output line 2", b"OUTPUT LINE 2"))  # after a checkpoint

    code, lines, text = _verify(path)

    assert code == 1
    assert lines[-1] == f"TAMPERED {path}"  # the verdict is the last thing on the screen
    assert not any(line.startswith("SEALED") for line in lines), text
    assert "\\x1b[2A\\x1b[1G\\x1b[2K" in text  # shown as text, not obeyed


def test_an_escape_laden_end_reason_cannot_change_the_counts_shown(tmp_path: Path) -> None:
    # The customer's copy records the technician's end reason; it must not redraw the report.
    reason = f"done{ESC}[3A{ESC}[1G{ESC}[2K  operations   999, refusals 0{ESC}[3B"
    path = _record(tmp_path / "customer.cast", reason=reason, ops=4)

    code, lines, text = _verify(path)

    assert code == 0 and lines[-1] == f"SEALED {path}"
    operations = [line for line in lines if line.lstrip().startswith("operations")]
    assert operations == ["  operations   4, refusals 0"], text
    ended = next(line for line in lines if line.lstrip().startswith("ended"))
    assert ended.startswith("  ended        done\\x1b[3A")


@pytest.mark.parametrize("width", [80, 120])
def test_spaces_cannot_wrap_a_value_into_a_row_of_its_own(tmp_path: Path, width: int) -> None:
    # Padding pushes the rest of the end reason to the next screen line, lined up as a row.
    lead, fake = "  ended        ", "  operations   2, refusals 0"
    reason = "completed" + " " * (width - len(lead) - len("completed")) + fake
    path = _record(tmp_path / "padded.cast", reason=reason, ops=40)
    argv = [*TOOLKIT, "verify", "--allowed-signers", "allowed_signers", path.name]
    screen = screen_of(argv, cwd=path.parent, width=width)  # short names: nothing else wraps

    assert screen.code == 0 and screen.lines[-1] == f"SEALED {path.name}"
    rows = [line for line in screen.lines if line.lstrip().startswith("operations")]
    assert rows == ["  operations   40, refusals 0"], screen.text


def test_a_file_name_with_escapes_is_shown_escaped(tmp_path: Path) -> None:
    path = _record(tmp_path / f"name{ESC}[2J{ESC}]0;pwned{chr(7)}.cast")

    code, lines, _ = _verify(path)

    assert code == 0
    assert lines[-1].startswith("SEALED ") and lines[-1].endswith(
        "name\\x1b[2J\\x1b]0;pwned\\x07.cast"
    )
    assert f"{ESC}]0;" not in _verify_raw(path)


def _verify_raw(path: Path) -> str:
    signers = path.with_name("allowed_signers")
    screen = screen_of([*TOOLKIT, "verify", "--allowed-signers", signers, path], cwd=path.parent)
    return screen.raw.decode("utf-8", "replace")


def test_the_printed_ssh_keygen_line_quotes_a_hostile_principal(tmp_path: Path) -> None:
    # A supervisor may paste this line into a shell: the principal comes from the file.
    signer = new_signer()
    email = "a@b.c;id>pwned"
    header = new_header("Alice Tech", email, signer, "T-1")
    path = tmp_path / "quoted.cast"
    rec = Recorder.create(path, header, signer)
    rec.close("completed")
    write_allowed_signers(tmp_path / "allowed_signers", signer, email=email)

    _, lines, _ = _verify(path)

    line = next(x for x in lines if x.lstrip().startswith("ssh-keygen"))
    assert "-I 'a@b.c;id>pwned'" in line


def test_json_output_carries_escapes_only_as_json_escapes(tmp_path: Path) -> None:
    path = _record(tmp_path / "evil.cast", ticket="T-1" + UP_AND_ERASE)
    signers = path.with_name("allowed_signers")
    screen = screen_of([*TOOLKIT, "verify", "--json", "--allowed-signers", signers, path])
    assert ESC.encode() not in screen.raw
    assert json.loads(screen.raw.decode())["ticket"] == "T-1" + UP_AND_ERASE


# -- the technician's terminal: what the customer's machine sends -------------------------

NOTES = f"BEFORE\n{ESC}[2J{ESC}[HFAKE PROMPT $ \n{ESC}]0;pwned\a after\n"


def test_a_file_from_the_customers_machine_cannot_drive_the_technicians_terminal(
    tmp_path: Path,
) -> None:
    # A log file on the customer's machine may hold anything anyone wrote into it.
    customer = Person.make(tmp_path / "customer")
    (customer.home / "notes.txt").write_text(NOTES)
    policy = customer.root / "policy.toml"
    policy.write_text('[files]\nallow = ["~/notes.txt"]\n')
    technician = Person.make(tmp_path / "technician")
    made = technician.toolkit("keys", "init", "--name", "Alice Tech", "--email", EMAIL)
    assert made.returncode == 0, made.stderr
    batch = technician.root / "batch"
    batch.write_text("read ~/notes.txt\n")
    with sharing(customer, "--policy", policy, logs=tmp_path / "logs") as share:
        argv = [*TOOLKIT, "connect", share.address, "--code", share.code, "--ticket", "T-1"]
        screen = screen_of([*argv, "--batch", batch], env=technician.env(), cwd=technician.root)

    assert screen.code == 0, screen.text
    assert "BEFORE" in screen.text  # the screen was not cleared
    assert "\\x1b[2J\\x1b[HFAKE PROMPT $" in screen.text
    assert "\\x1b]0;pwned\\x07 after" in screen.text
    assert b"\x1b]0;" not in screen.raw and b"\x1b[2J" not in screen.raw


# -- what a ticket system sends ---------------------------------------------------------


class _HostileTickets:
    """A ticket system whose every string carries escape sequences."""

    name = "hostile"
    max_attachment_bytes = None

    def ticket(self, ticket: str) -> Ticket:
        attachment = Attachment(
            name="t.cast",
            size=10,
            sha256="",
            attached_at=f"2026-12-03{ESC}[2J",
            location=f"https://x/{ESC}]8;;https://evil/{ESC}\\link",
            comment=f"sealed{ESC}[1A{ESC}[2K\nsecond line",
        )
        return Ticket(ticket, (attachment,), title=f"Printer{ESC}[H{ESC}[2Jjammed")


def test_a_ticket_systems_strings_are_shown_escaped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from toolkit.cli import run
    from toolkit.tickets import plugins

    monkeypatch.setattr(plugins, "open_backend", lambda name, passphrase=None: _HostileTickets())
    assert run(["tickets", "show", "T-1"]) == 0
    out = capsys.readouterr().out
    assert ESC not in out
    assert "ticket T-1: Printer\\x1b[H\\x1b[2Jjammed" in out
    assert "\\x1b]8;;https://evil/\\x1b\\link" in out
