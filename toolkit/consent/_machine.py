"""The little state-machine kit the consent machines share.

A machine is a class with a ``State`` enum, one public method per input, and a
transition table at the bottom of the class body that names every
(state, input) pair. Each row says what happens:

- :func:`move`: run an action that may enter one of the listed states;
- :func:`stay`: a documented non-event (a late or duplicate input): the
  action may answer (repeat a refusal, return what it returned before) but the
  state does not change;
- :func:`bug`: the caller broke the machine's contract; raises
  :class:`HandshakeOutOfOrder` and changes nothing.

A table that misses a pair fails when the class is created, so a machine
cannot ship with an input it forgot to think about. :func:`to_dot` draws the
table; ``python -m toolkit.consent._diagrams`` writes docs/state-machines/.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Generic, TypeVar, cast

from toolkit.consent.errors import HandshakeOutOfOrder

R = TypeVar("R")
S = TypeVar("S", bound=enum.Enum)


class Input(Generic[R]):
    """One kind of input a machine accepts; ``R`` is what its method returns."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Input({self.name})"


class Kind(enum.Enum):
    MOVE = "move"
    STAY = "stay"
    BUG = "bug"


@dataclass(frozen=True)
class Row:
    kind: Kind
    action: Callable[..., Any] | None
    to: frozenset[enum.Enum]
    note: str = ""
    #: Per target state: what leads there (for the diagrams).
    why: Mapping[enum.Enum, str] = field(default_factory=dict)


def table(rows: Mapping[tuple[Any, Input[Any]], Row]) -> Mapping[tuple[Any, Input[Any]], Row]:
    """A read-only transition table."""
    return MappingProxyType(dict(rows))


def move(action: Callable[..., Any], *to: enum.Enum | tuple[enum.Enum, str], note: str = "") -> Row:
    """Run ``action``; it may enter any of ``to`` (and nothing else).

    A target may be ``(state, why)`` to say what leads there.
    """
    if not to:
        raise ValueError("a move names the states it may enter")
    states = [t[0] if isinstance(t, tuple) else t for t in to]
    why = {t[0]: t[1] for t in to if isinstance(t, tuple)}
    return Row(Kind.MOVE, action, frozenset(states), note, why)


def stay(action: Callable[..., Any], note: str) -> Row:
    """A documented non-event: ``action`` answers, the state stays."""
    return Row(Kind.STAY, action, frozenset(), note)


def bug(note: str) -> Row:
    """The caller broke the contract: raise HandshakeOutOfOrder, change nothing."""
    return Row(Kind.BUG, None, frozenset(), note)


class Machine(Generic[S]):
    """Base of every consent machine: dispatch through the table, nothing else."""

    State: ClassVar[type[enum.Enum]]
    INITIAL: ClassVar[enum.Enum]
    INPUTS: ClassVar[tuple[Input[Any], ...]]
    TRANSITIONS: ClassVar[Mapping[tuple[Any, Input[Any]], Row]]

    _state: S
    _row: Row | None = None
    _before: S | None = None

    def __init_subclass__(cls, *, abstract: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if abstract:
            return
        missing = [
            f"({state.name}, {inp.name})"
            for state in cls.State
            for inp in cls.INPUTS
            if (state, inp) not in cls.TRANSITIONS
        ]
        extra = [
            f"({s.name}, {i.name})"
            for s, i in cls.TRANSITIONS
            if not isinstance(s, cls.State) or i not in cls.INPUTS
        ]
        if missing or extra:
            raise TypeError(
                f"{cls.__name__}'s transition table is incomplete: missing {missing}, "
                f"unknown {extra}"
            )

    @property
    def state(self) -> S:
        return self._state

    def _fire(self, event: Input[R], *args: Any) -> R:
        state = self._state
        row = type(self).TRANSITIONS[(state, event)]
        if row.kind is Kind.BUG or row.action is None:
            raise HandshakeOutOfOrder(
                f"{type(self).__name__}: {event.name} in state {state.name}: {row.note}"
            )
        outer = (self._row, self._before)
        self._row, self._before = row, state
        try:
            result = row.action(self, *args)
        finally:
            self._row, self._before = outer
        return cast(R, result)

    def _enter(self, state: S) -> None:
        """Called by an action: move to ``state``, which its row must allow."""
        row, before = self._row, self._before
        if row is None or row.kind is not Kind.MOVE or state not in row.to:
            raise HandshakeOutOfOrder(
                f"{type(self).__name__}: no transition from "
                f"{before.name if before is not None else '?'} to {state.name}"
            )
        self._state = state


def to_dot(cls: type[Machine[Any]], name: str, title: str) -> str:
    """The machine's table as a Graphviz digraph (non-events listed in each state's box)."""
    lines = [
        f"// {title}",
        "// Generated from the transition table by `python -m toolkit.consent._diagrams`;",
        "// edit the table, not this file.",
        f"digraph {name} {{",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
        '  start [shape=point, label=""];',
        f"  start -> {cls.INITIAL.name};",
    ]
    order = {inp: n for n, inp in enumerate(cls.INPUTS)}
    for state in cls.State:
        rows = sorted(
            ((inp, row) for (s, inp), row in cls.TRANSITIONS.items() if s is state),
            key=lambda pair: order[pair[0]],
        )
        moves = [(inp, row) for inp, row in rows if row.kind is Kind.MOVE]
        quiet = [inp.name for inp, row in rows if row.kind is Kind.STAY]
        terminal = all(row.to == {state} for _, row in moves)
        label = state.name
        if quiet:
            groups = [", ".join(quiet[i : i + 3]) for i in range(0, len(quiet), 3)]
            label += "\\n(non-events: " + ",\\n".join(groups) + ")"
        shape = ", peripheries=2" if terminal else ""
        lines.append(f'  {state.name} [label="{label}"{shape}];')
        for inp, row in moves:
            for target in sorted(row.to, key=lambda s: list(cls.State).index(s)):
                note = row.why.get(target, row.note)
                text = inp.name + (f"\\n{note}" if note else "")
                lines.append(f'  {state.name} -> {target.name} [label="{text}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


__all__ = ["Input", "Machine", "Row", "bug", "move", "stay", "table", "to_dot"]
