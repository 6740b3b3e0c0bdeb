"""Every machine's table is complete, its diagram is current, and imports stay cheap."""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from toolkit.consent._diagrams import DEFAULT_DIR, MACHINES, render
from toolkit.consent._machine import Input, Kind, Machine, move, table

DOCS = Path(__file__).parents[3] / "docs" / "state-machines"


@pytest.mark.parametrize("name, cls", [(n, c) for n, c, _ in MACHINES])
def test_table_names_every_state_and_input(name: str, cls: type[Machine[Any]]) -> None:
    pairs = {(s, i) for s in cls.State for i in cls.INPUTS}
    assert set(cls.TRANSITIONS) == pairs
    assert cls.INITIAL in list(cls.State)
    for (state, inp), row in cls.TRANSITIONS.items():
        assert row.to <= set(cls.State), (name, state, inp)
        if row.kind is Kind.MOVE:
            assert row.action is not None and row.to


@pytest.mark.parametrize("name, cls", [(n, c) for n, c, _ in MACHINES])
def test_every_state_is_reachable(name: str, cls: type[Machine[Any]]) -> None:
    seen = {cls.INITIAL}
    frontier = [cls.INITIAL]
    while frontier:
        state = frontier.pop()
        for (s, _), row in cls.TRANSITIONS.items():
            if s is state:
                for target in row.to - seen:
                    seen.add(target)
                    frontier.append(target)
    assert seen == set(cls.State), name


def test_an_incomplete_table_fails_at_class_creation() -> None:
    class S(enum.Enum):
        A = "a"
        B = "b"

    go: Input[None] = Input("go")

    def act(self: Any) -> None:
        return None

    with pytest.raises(TypeError, match=r"missing \['\(B, go\)'\]"):

        class Broken(Machine[S]):
            State = S
            INITIAL = S.A
            INPUTS = (go,)
            TRANSITIONS = table({(S.A, go): move(act, S.B)})


def test_diagrams_match_the_tables() -> None:
    assert DEFAULT_DIR.resolve() == DOCS.resolve()
    expected = render()
    for filename, text in expected.items():
        path = DOCS / filename
        assert path.exists(), f"run python -m toolkit.consent._diagrams to write {filename}"
        assert path.read_text(encoding="utf-8") == text, (
            f"{filename} is stale: run python -m toolkit.consent._diagrams"
        )
    assert {p.name for p in DOCS.glob("*.dot")} >= set(expected)


def test_errors_import_without_spake2_or_cryptography() -> None:
    code = (
        "import sys; import toolkit.consent.errors, toolkit.consent;"
        "from toolkit.consent import KBDINT_NAME;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'spake2','cryptography'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
