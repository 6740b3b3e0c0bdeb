"""connect's warning before a batch: only a fix's change needs the fixes scope."""

from __future__ import annotations

import pytest

from toolkit.cli import connect
from toolkit.consent import Scope
from toolkit.session.workflow import parse_batch


def _warned(batch: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    said: list[str] = []
    monkeypatch.setattr(connect, "say", lambda text, **_: said.append(text))
    connect._warn_fixes(parse_batch(batch, "b.txt"), frozenset({Scope.DIAGNOSTICS}))
    return said


def test_a_check_or_verify_step_needs_no_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = "fix flush-dns --step check\nfix flush-dns --step verify\n"
    assert _warned(batch, monkeypatch) == []


def test_apply_rollback_and_a_bare_fix_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    batch = (
        "fix flush-dns --step check\nfix flush-dns\n"
        "fix flush-dns --step apply\nfix flush-dns --step rollback\n"
    )
    (warning,) = _warned(batch, monkeypatch)
    assert warning.startswith("warning: b.txt, lines 2, 3, 4: fix needs --scope fixes")
