from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli import run as toolkit
from toolkit.tickets.local import LocalTickets


def test_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert toolkit(["tickets", "list"]) == 0
    assert "No tickets yet." in capsys.readouterr().out
    cast = tmp_path / "s.cast"
    cast.write_bytes(b"data")
    LocalTickets().attach("T-7", [cast], "session by Alice")
    assert toolkit(["tickets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [{k: t[k] for k in ("ticket", "subject", "attachments")} for t in listed] == [
        {"ticket": "T-7", "subject": None, "attachments": 1}
    ]
    assert toolkit(["tickets", "show", "T-7", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert Path(shown["attachments"][0]["location"]).read_bytes() == b"data"
    assert toolkit(["tickets", "show", "T-8"]) == 5
    assert "no local ticket" in capsys.readouterr().err
    assert toolkit(["tickets", "show", "../x"]) == 2
