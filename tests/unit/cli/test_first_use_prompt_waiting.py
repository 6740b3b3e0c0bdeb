"""The line that says a command waits, and for what (issue 15)."""

from __future__ import annotations

import io

from toolkit.cli.prompt import Waiting


def test_the_waiting_line_fits_one_row_and_keeps_the_time() -> None:
    line = Waiting("fix flush-dns", stream=io.StringIO())
    assert line.text() is None  # quiet at first: quick commands do not flicker
    line.notice(1, {"asking": "fix flush-dns (outside the approved scope)"})
    assert line.text() == (
        "waiting for the customer to approve fix flush-dns (outside the approved scope) ... 0s"
    )
    short = line.text(60)
    assert short is not None and len(short) <= 60 and short.endswith(" ... 0s"), short
    line.notice(1, {"answered": True})
    assert line.text() is None  # running again, quiet again
    line.notice(1, {"asking": "\x1b[2Jfix x"})
    assert "\x1b" not in (line.text() or "")
