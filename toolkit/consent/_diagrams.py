"""Write docs/state-machines/*.dot from the transition tables.

Run ``python -m toolkit.consent._diagrams [DIR]`` after changing a table; a
test fails while a committed diagram differs from its table. Render one with
``dot -Tsvg docs/state-machines/agent.dot -o agent.svg``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from toolkit.consent._agent import AgentHandshake
from toolkit.consent._code import OneTimeCode
from toolkit.consent._confirm import AgentConfirmation, TechnicianConfirmation
from toolkit.consent._grant import AgentGrantHandshake, TechnicianGrantHandshake
from toolkit.consent._machine import Machine, to_dot
from toolkit.consent._pake import Pake, SortedPake
from toolkit.consent._technician import TechnicianHandshake

MACHINES: tuple[tuple[str, type[Machine[Any]], str], ...] = (
    ("code", OneTimeCode, "OneTimeCode: one code, once, 3 tries, until its deadline"),
    ("pake", Pake, "Pake (outer): orders 'code known' and 'peer message arrived'"),
    ("pake_sorted", SortedPake, "SortedPake (inner): runs SPAKE2; bad peer message -> REFUSED"),
    (
        "confirm_technician",
        TechnicianConfirmation,
        "TechnicianConfirmation: send our MAC, then check the agent's",
    ),
    (
        "confirm_agent",
        AgentConfirmation,
        "AgentConfirmation: check the technician's MAC before sending ours",
    ),
    ("agent", AgentHandshake, "AgentHandshake: the customer's side, one kbdint attempt"),
    ("technician", TechnicianHandshake, "TechnicianHandshake: the technician's side"),
    (
        "grant_agent",
        AgentGrantHandshake,
        "AgentGrantHandshake: the customer's side of consent by a grant",
    ),
    (
        "grant_technician",
        TechnicianGrantHandshake,
        "TechnicianGrantHandshake: the technician's side of consent by a grant",
    ),
)

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "docs" / "state-machines"


def render() -> dict[str, str]:
    """File name -> Graphviz text, for every consent machine."""
    return {f"{name}.dot": to_dot(cls, name, title) for name, cls, title in MACHINES}


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else DEFAULT_DIR
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in render().items():
        (out / filename).write_text(text, encoding="utf-8")
        print(out / filename)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
