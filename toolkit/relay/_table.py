"""The relay's rendezvous table: nameplates handed out, renewed, looked up, expired.

No I/O and no asyncssh: the server feeds it registrations, lookups and lost
connections, with a clock it can fake. A rendezvous is one of:

- ACTIVE: its agent's connection is up and its deadline has not passed;
  technicians reach the agent through it.
- WAITING: its agent's connection dropped before the deadline. The name
  stays reserved for that agent (the same key) so that it can reconnect and
  keep showing the same code; lookups are refused meanwhile.
- EXPIRED: the deadline passed. The name stays out of circulation for a
  cool-down, so that a technician holding an old code does not reach a new
  customer's agent (and cost it a try); only the same agent may renew it.

Names are 3 digits while any is free, then 4, then 5 (up to 65535, since a
name travels as a port number in ``tcpip-forward``), chosen at random among
the free ones, never with a leading zero.

A stable name (toolkit serve's, e.g. ``web-01``; never digits only, so never a
code's) is ACTIVE while its agent's connection holds it, and gone when that
drops: whose it is, the relay's --agents file says, not the table, so it
needs no cool-down. It does not count against the limits below.

So that nobody takes the name space, one source (address) and one owner
(key) hold at most ``per_source`` and ``per_owner`` names at once, counting
every state: a waiting or cooling-down name is out of circulation too. A
renewal or reclaim of one's own name is never refused for it. The counts
exist only while a name does, so they are as bounded as the table.
"""

from __future__ import annotations

import enum
import math
import secrets
import time
from array import array
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field

from toolkit.consent._code import NAMEPLATE_WIDTHS, check_nameplate
from toolkit.relay._wire import NAMED_PORT, is_stable_name

Clock = Callable[[], float]
#: The highest name: a name is a port number in ``tcpip-forward``.
MAX_NAME = 65535
DEFAULT_COOLDOWN = 60.0
DEFAULT_MAX_TTL = 3600.0


class State(enum.Enum):
    ACTIVE = "active"
    WAITING = "waiting"
    EXPIRED = "expired"


class Refused(Exception):
    """A registration or lookup the table refuses; ``reason`` is short and safe to log and send."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class Rendezvous:
    name: str
    owner: str  # the agent's key fingerprint at the relay
    deadline: float
    holder: Hashable | None  # the agent's live connection; None while it reconnects
    route: str = ""  # what the server needs to reach the agent (the forward's listen host)
    created: float = 0.0
    source: str = ""  # where it was registered from (toolkit.relay._limits.source_of)
    lookups: int = field(default=0)
    stable: bool = False  # a service's stable name (toolkit relay --agents), not a number

    @property
    def port(self) -> int:
        """The port of the forward: the name itself, or NAMED_PORT for a stable name."""
        return NAMED_PORT if self.stable else int(self.name)

    def state(self, now: float) -> State:
        if now >= self.deadline:
            return State.EXPIRED
        return State.ACTIVE if self.holder is not None else State.WAITING


class _FreeNames:
    """The names nobody holds, per width: a random one, or a given one, taken in O(1)."""

    def __init__(self) -> None:
        self._free = [
            array("I", range(10 ** (w - 1), min(10**w, MAX_NAME + 1))) for w in NAMEPLATE_WIDTHS
        ]
        self._at = array("i", [-1]) * (MAX_NAME + 1)  # name -> its index in its width's list
        for names in self._free:
            for i, name in enumerate(names):
                self._at[name] = i

    @staticmethod
    def _width(name: int) -> int:
        return len(str(name)) - NAMEPLATE_WIDTHS[0]

    def take(self, name: int) -> bool:
        """Mark ``name`` held; False if it already was."""
        i = self._at[name]
        if i < 0:
            return False
        names = self._free[self._width(name)]
        last = names.pop()
        if last != name:
            names[i] = last
            self._at[last] = i
        self._at[name] = -1
        return True

    def give_back(self, name: int) -> None:
        if self._at[name] < 0:
            names = self._free[self._width(name)]
            self._at[name] = len(names)
            names.append(name)

    def draw(self, draw: Callable[[int], int]) -> int | None:
        """A random free name of the narrowest width that has one, taken."""
        for names in self._free:
            if names:
                name = names[draw(len(names))]
                self.take(name)
                return name
        return None


class Table:
    """Every rendezvous the relay knows, by name."""

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        cooldown: float = DEFAULT_COOLDOWN,
        max_ttl: float = DEFAULT_MAX_TTL,
        per_holder: int = 4,
        per_source: int | None = None,
        per_owner: int | None = None,
        draw: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self._clock = clock
        self._cooldown = cooldown
        self._max_ttl = max_ttl
        self._per_holder = per_holder
        self._per_source = per_source
        self._per_owner = per_owner
        self._draw = draw
        self._names: dict[str, Rendezvous] = {}
        self._by_holder: dict[Hashable, set[str]] = {}
        self._held_by_source: Counter[str] = Counter()
        self._held_by_owner: Counter[str] = Counter()
        self._free = _FreeNames()

    def __len__(self) -> int:
        return len(self._names)

    def __iter__(self) -> Iterator[Rendezvous]:
        return iter(list(self._names.values()))

    def get(self, name: str) -> Rendezvous | None:
        return self._names.get(name)

    # -- the agent's side ------------------------------------------------------------

    def register(
        self,
        owner: str,
        holder: Hashable,
        ttl: float,
        name: str | None = None,
        route: str = "",
        source: str = "",
    ) -> tuple[Rendezvous, bool]:
        """Hand out a name (``name`` None) or claim/renew ``name``; (rendezvous, renewed).

        Raises Refused: the name is malformed or someone else's, ``holder``,
        ``source`` or ``owner`` holds as many as it may, or no name is free.
        """
        now = self._clock()
        ttl = min(max(ttl, 1.0), self._max_ttl)
        if name is not None:
            try:
                check_nameplate(name)
            except ValueError:
                raise Refused("not a rendezvous name") from None
            if int(name) > MAX_NAME:
                raise Refused("not a rendezvous name")
            held = self._names.get(name)
            if held is not None:
                if held.owner != owner:
                    raise Refused("the name is in use")
                self._move(held, holder)
                held.deadline, held.route = now + ttl, route
                return held, True
        self._check_room(holder)
        self._check_share(owner, source)
        if name is not None:
            self._free.take(int(name))
            chosen = name
        else:
            drawn = self._free.draw(self._draw)
            if drawn is None:
                raise Refused("no rendezvous name is free")
            chosen = str(drawn)
        rendezvous = Rendezvous(chosen, owner, now + ttl, holder, route, now, source)
        self._names[chosen] = rendezvous
        self._by_holder.setdefault(holder, set()).add(chosen)
        self._held_by_source[source] += 1
        self._held_by_owner[owner] += 1
        return rendezvous, False

    def claim(
        self, name: str, owner: str, holder: Hashable, route: str = "", source: str = ""
    ) -> tuple[Rendezvous, bool]:
        """Hold the stable ``name`` for ``owner``, whose it is (the caller checked that).

        (rendezvous, taken over): a new connection of the same key takes the
        name over, as an agent that reconnected before the relay noticed its
        old connection was gone does. Refused if another key holds it (two keys
        the --agents file lists for one name), or ``holder`` holds its most.
        """
        if not is_stable_name(name):
            raise Refused("not an agent name")
        held = self._names.get(name)
        if held is not None:
            if held.owner != owner:
                raise Refused("another key holds the name now")
            self._move(held, holder)
            held.route = route
            return held, True
        self._check_room(holder)
        now = self._clock()
        rendezvous = Rendezvous(name, owner, math.inf, holder, route, now, source, stable=True)
        self._names[name] = rendezvous
        self._by_holder.setdefault(holder, set()).add(name)
        return rendezvous, False

    def _drop_stable(self, rendezvous: Rendezvous) -> None:
        del self._names[rendezvous.name]
        if rendezvous.holder is not None:
            self._by_holder.get(rendezvous.holder, set()).discard(rendezvous.name)
        rendezvous.holder = None

    def _check_room(self, holder: Hashable) -> None:
        if len(self._by_holder.get(holder, ())) >= self._per_holder:
            raise Refused(f"at most {self._per_holder} rendezvous per connection")

    def _check_share(self, owner: str, source: str) -> None:
        most = self._per_source
        if most is not None and self._held_by_source[source] >= most:
            raise Refused(f"too many rendezvous from your address (at most {most} at once)")
        most = self._per_owner
        if most is not None and self._held_by_owner[owner] >= most:
            raise Refused(f"too many rendezvous for your key (at most {most} at once)")

    def _uncount(self, rendezvous: Rendezvous) -> None:
        for counts, key in (
            (self._held_by_source, rendezvous.source),
            (self._held_by_owner, rendezvous.owner),
        ):
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]  # no entry without a name: bounded by the table

    def _move(self, rendezvous: Rendezvous, holder: Hashable) -> None:
        if rendezvous.holder == holder:
            return
        if rendezvous.holder is not None:
            self._by_holder.get(rendezvous.holder, set()).discard(rendezvous.name)
        self._check_room(holder)
        rendezvous.holder = holder
        self._by_holder.setdefault(holder, set()).add(rendezvous.name)

    def release(self, holder: Hashable) -> list[Rendezvous]:
        """The agent's connection is gone: its rendezvous wait for it until their deadline.

        Its stable names go at once: their agent registers them again when back.
        """
        names = self._by_holder.pop(holder, set())
        dropped = [self._names[n] for n in sorted(names) if n in self._names]
        for rendezvous in dropped:
            if rendezvous.stable:
                del self._names[rendezvous.name]
            rendezvous.holder = None
        return dropped

    def cancel(self, holder: Hashable, name: str) -> Rendezvous | None:
        """The agent gave the name up: it goes into its cool-down at once."""
        rendezvous = self._names.get(name)
        if rendezvous is None or rendezvous.holder != holder:
            return None
        if rendezvous.stable:
            self._drop_stable(rendezvous)
            return rendezvous
        self._by_holder.get(holder, set()).discard(name)
        rendezvous.holder = None
        rendezvous.deadline = min(rendezvous.deadline, self._clock())
        return rendezvous

    # -- the technician's side ---------------------------------------------------------

    def lookup(self, name: str) -> Rendezvous:
        """The ACTIVE rendezvous called ``name``; else Refused saying why."""
        rendezvous = self._names.get(name)
        if rendezvous is None:
            raise Refused("no such rendezvous")
        state = rendezvous.state(self._clock())
        if state is State.EXPIRED:
            raise Refused("the rendezvous expired")
        if state is State.WAITING:
            raise Refused("the customer's agent is reconnecting to the relay; try again shortly")
        rendezvous.lookups += 1
        return rendezvous

    # -- time --------------------------------------------------------------------------

    def sweep(self) -> list[Rendezvous]:
        """Forget rendezvous whose cool-down is over; returns them."""
        now = self._clock()
        gone = [r for r in self._names.values() if now >= r.deadline + self._cooldown]
        for rendezvous in gone:
            del self._names[rendezvous.name]
            self._free.give_back(int(rendezvous.name))
            self._uncount(rendezvous)
            if rendezvous.holder is not None:
                self._by_holder.get(rendezvous.holder, set()).discard(rendezvous.name)
        return gone

    def counts(self) -> dict[str, int]:
        now = self._clock()
        counts = {state.value: 0 for state in State}
        for rendezvous in self._names.values():
            counts[rendezvous.state(now).value] += 1
        return counts


__all__ = ["MAX_NAME", "Refused", "Rendezvous", "State", "Table"]
