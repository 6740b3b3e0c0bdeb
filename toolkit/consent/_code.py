"""The one-time code: made, shown, parsed, expired, counted and burned.

A code is 9 random digits from :mod:`secrets`, shown in three groups
(``417-093-552``) so that it reads well over the phone. It is held only as a
:class:`~toolkit.secrets.Secret`; nothing here formats, logs or raises it.

Through a relay (docs/relay.md) the first group is the rendezvous name, the
*nameplate*: the relay hands it out among the rendezvous active at that
moment, 3 digits while they last, then 4, then 5 (``4170-093-552``). It is
not secret. The last two groups are always 6 random digits and stay secret;
the PAKE is keyed with the whole code either way. A code is therefore 9 to
11 digits, and its first group is whatever comes before the last six.

:class:`OneTimeCode` is the machine for one code: ACTIVE until it is used once
(CONSUMED), gets its 3rd wrong try (BURNED), or passes its deadline or is
replaced (EXPIRED). :class:`CodeBook` holds the code toolkit share currently
shows and makes a fresh one when asked.

Handshakes may run concurrently against one code (see docs/consent.md,
"Concurrent attempts"): the code is not locked while a handshake waits for
its peer, so nobody can hold it hostage. Each handshake asks again when it
checks the technician's answer (:meth:`OneTimeCode.begin`); the first
success consumes the code, and every failed check costs a try, so running
attempts in parallel buys a guesser nothing.
"""

from __future__ import annotations

import enum
import re
import secrets
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

from toolkit.consent._machine import Input, Machine, move, stay, table
from toolkit.consent.errors import CodeBurned, CodeExpired, CodeFormatError, CodeUsed
from toolkit.secrets import Secret

CODE_DIGITS = 9
#: The last two groups: random, secret, whatever the first group is.
SECRET_DIGITS = 6
#: A nameplate (a relay's first group) is 3 digits, widened up to 5 when names run out.
NAMEPLATE_WIDTHS = (3, 4, 5)
DEFAULT_TTL = 600.0
DEFAULT_TRIES = 3

Clock = Callable[[], float]

_SEPARATORS = re.compile(r"[\s-]+")
_DIGITS = re.compile(
    rf"[0-9]{{{NAMEPLATE_WIDTHS[0] + SECRET_DIGITS},{NAMEPLATE_WIDTHS[-1] + SECRET_DIGITS}}}"
)
#: No leading zero, so that a nameplate's width is part of its value (and it fits a port).
_NAMEPLATE = re.compile(rf"[1-9][0-9]{{{NAMEPLATE_WIDTHS[0] - 1},{NAMEPLATE_WIDTHS[-1] - 1}}}")


def new_code(nameplate: str | None = None) -> Secret:
    """A fresh code: 9 uniformly random digits, or ``nameplate`` and 6 random digits."""
    if nameplate is None:
        return Secret(f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}")
    check_nameplate(nameplate)
    return Secret(f"{nameplate}{secrets.randbelow(10**SECRET_DIGITS):0{SECRET_DIGITS}d}")


def check_nameplate(name: str) -> str:
    """``name`` if it can be a code's first group at a relay (100 to 99999); else ValueError."""
    if not _NAMEPLATE.fullmatch(name):
        raise ValueError("a rendezvous name is 3 to 5 digits, not starting with 0")
    return name


def parse_code(text: str) -> Secret:
    """The code a person typed, with or without dashes and spaces, as 9 to 11 digits.

    Raises CodeFormatError (which never repeats what was typed).
    """
    digits = _SEPARATORS.sub("", text)
    if not _DIGITS.fullmatch(digits):
        raise CodeFormatError()
    return Secret(digits)


def nameplate_of(code: Secret) -> str:
    """The code's first group: the rendezvous name at a relay (not secret)."""
    digits = parse_code(code.reveal()).reveal()
    return digits[: len(digits) - SECRET_DIGITS]


def grouped(code: Secret) -> Secret:
    """The code as shown to the customer: ``417-093-552`` (``4170-093-552`` when wider)."""
    return Secret(grouped_digits(parse_code(code.reveal()).reveal()))


def grouped_digits(text: str) -> str:
    """The digits of ``text`` (all of a code, or what is typed so far), grouped as the
    customer reads them; anything but ASCII digits is dropped. More digits than the
    narrowest code's are a relay's code, whose first group is wider (``4170-093-552``).
    """
    digits = "".join(c for c in text if c in "0123456789")[: NAMEPLATE_WIDTHS[-1] + SECRET_DIGITS]
    wider = len(digits) > NAMEPLATE_WIDTHS[0] + SECRET_DIGITS
    first = len(digits) - SECRET_DIGITS if wider else NAMEPLATE_WIDTHS[0]
    groups = [digits[:first], digits[first : first + 3], digits[first + 3 :]]
    return "-".join(g for g in groups if g)


class CodeSource(Protocol):
    """What a handshake needs from the code it runs against."""

    def begin(self) -> Secret:
        """The digits, if the code can still be used; else raise why not."""
        ...

    def succeeded(self) -> None:
        """Someone proved they know the code: it is used up."""
        ...

    def failed(self) -> int:
        """A wrong try; returns the tries left (0: now burned)."""
        ...


class CodeState(enum.Enum):
    ACTIVE = "active"
    CONSUMED = "consumed"
    BURNED = "burned"
    EXPIRED = "expired"


_BEGIN: Input[Secret] = Input("begin")
_SUCCEED: Input[None] = Input("succeeded")
_FAIL: Input[int] = Input("failed")
_EXPIRE: Input[None] = Input("deadline")
_RETIRE: Input[None] = Input("retire")


class OneTimeCode(Machine[CodeState]):
    """One code: valid for ``ttl`` seconds, usable once, burned after ``tries`` wrong tries.

    ``clock`` is monotonic seconds (``time.monotonic``; tests pass a fake).
    Expiry is checked whenever the code is asked anything, so there is no
    timer to run.
    """

    State = CodeState

    def __init__(
        self,
        code: Secret,
        *,
        ttl: float = DEFAULT_TTL,
        tries: int = DEFAULT_TRIES,
        clock: Clock = time.monotonic,
    ) -> None:
        if ttl <= 0 or tries < 1:
            raise ValueError("a code needs a positive ttl and at least one try")
        self._digits = parse_code(code.reveal())
        self._clock = clock
        self._deadline = clock() + ttl
        self._tries_left = tries
        self._state = CodeState.ACTIVE

    # --- queries -----------------------------------------------------------

    @property
    def state(self) -> CodeState:
        self._tick()
        return self._state

    @property
    def tries_left(self) -> int:
        self._tick()
        return self._tries_left

    @property
    def display(self) -> Secret:
        """The code in three groups, for toolkit share to show (``reveal()`` it there)."""
        return grouped(self._digits)

    def spent_digits(self) -> Secret | None:
        """The digits once the code can no longer be used (None while it is ACTIVE).

        For recognising an old code (docs/consent.md, "An old code"): a live
        code's digits leave only through :meth:`begin`.
        """
        return None if self.state is CodeState.ACTIVE else self._digits

    def remaining(self) -> float:
        """Seconds until the code expires; 0 once it cannot be used."""
        if self.state is not CodeState.ACTIVE:
            return 0.0
        return max(0.0, self._deadline - self._clock())

    def __repr__(self) -> str:
        return f"OneTimeCode(<redacted>, {self._state.name}, tries_left={self._tries_left})"

    # --- inputs ------------------------------------------------------------

    def begin(self) -> Secret:
        """The digits for a handshake, if the code is ACTIVE; else CodeUsed/Burned/Expired."""
        self._tick()
        return self._fire(_BEGIN)

    def succeeded(self) -> None:
        self._tick()
        self._fire(_SUCCEED)

    def failed(self) -> int:
        self._tick()
        return self._fire(_FAIL)

    def retire(self) -> None:
        """The customer made a new code: this one stops working now."""
        self._tick()
        self._fire(_RETIRE)

    def _tick(self) -> None:
        if self._state is CodeState.ACTIVE and self._clock() >= self._deadline:
            self._fire(_EXPIRE)

    # --- actions -----------------------------------------------------------

    def _lend(self) -> Secret:
        self._enter(CodeState.ACTIVE)
        return self._digits

    def _consume(self) -> None:
        self._enter(CodeState.CONSUMED)

    def _count_failure(self) -> int:
        self._tries_left -= 1
        self._enter(CodeState.ACTIVE if self._tries_left > 0 else CodeState.BURNED)
        return self._tries_left

    def _expire(self) -> None:
        self._enter(CodeState.EXPIRED)

    def _refuse(self) -> NoReturn:
        if self._state is CodeState.CONSUMED:
            raise CodeUsed("This consent code was already used.")
        if self._state is CodeState.BURNED:
            raise CodeBurned("This consent code is burned after too many wrong tries.")
        raise CodeExpired("This consent code has expired or was replaced by a new one.")

    def _report_tries(self) -> int:
        return self._tries_left

    def _nothing(self) -> None:
        return None

    INPUTS = (_BEGIN, _SUCCEED, _FAIL, _EXPIRE, _RETIRE)
    INITIAL = CodeState.ACTIVE
    TRANSITIONS = table(
        {
            (CodeState.ACTIVE, _BEGIN): move(_lend, CodeState.ACTIVE, note="lend the digits"),
            (CodeState.ACTIVE, _SUCCEED): move(_consume, CodeState.CONSUMED),
            (CodeState.ACTIVE, _FAIL): move(
                _count_failure,
                (CodeState.ACTIVE, "tries left > 0"),
                (CodeState.BURNED, "no tries left"),
            ),
            (CodeState.ACTIVE, _EXPIRE): move(_expire, CodeState.EXPIRED, note="ttl passed"),
            (CodeState.ACTIVE, _RETIRE): move(_expire, CodeState.EXPIRED, note="replaced"),
            # CONSUMED, BURNED and EXPIRED are terminal. A handshake that asks
            # again is refused with the state's error; late reports change nothing.
            (CodeState.CONSUMED, _BEGIN): stay(_refuse, "raises CodeUsed"),
            (CodeState.CONSUMED, _SUCCEED): stay(_refuse, "raises CodeUsed"),
            (CodeState.CONSUMED, _FAIL): stay(_report_tries, "late failure: no effect"),
            (CodeState.CONSUMED, _EXPIRE): stay(_nothing, "no effect"),
            (CodeState.CONSUMED, _RETIRE): stay(_nothing, "no effect"),
            (CodeState.BURNED, _BEGIN): stay(_refuse, "raises CodeBurned"),
            (CodeState.BURNED, _SUCCEED): stay(_refuse, "raises CodeBurned"),
            (CodeState.BURNED, _FAIL): stay(_report_tries, "late failure: no effect"),
            (CodeState.BURNED, _EXPIRE): stay(_nothing, "no effect"),
            (CodeState.BURNED, _RETIRE): stay(_nothing, "no effect"),
            (CodeState.EXPIRED, _BEGIN): stay(_refuse, "raises CodeExpired"),
            (CodeState.EXPIRED, _SUCCEED): stay(_refuse, "raises CodeExpired"),
            (CodeState.EXPIRED, _FAIL): stay(_report_tries, "late failure: no effect"),
            (CodeState.EXPIRED, _EXPIRE): stay(_nothing, "no effect"),
            (CodeState.EXPIRED, _RETIRE): stay(_nothing, "no effect"),
        }
    )


class CodeBook:
    """The code toolkit share shows now; ``fresh()`` replaces it.

    toolkit share makes a fresh code only when the customer asks for one (or
    a relay gave it a new rendezvous name), never because of what a
    connection did; the old one stops working at once. The book remembers
    the code it replaced last (:attr:`previous`), so that a technician who
    types it hears that it is old instead of spending a try of the new one.
    """

    def __init__(
        self,
        *,
        ttl: float = DEFAULT_TTL,
        tries: int = DEFAULT_TRIES,
        clock: Clock = time.monotonic,
        generate: Callable[[], Secret] = new_code,
    ) -> None:
        self._ttl = ttl
        self._tries = tries
        self._clock = clock
        self._generate = generate
        self._current = self._make()
        self._previous: Secret | None = None
        self.made = 1

    def _make(self) -> OneTimeCode:
        return OneTimeCode(self._generate(), ttl=self._ttl, tries=self._tries, clock=self._clock)

    @property
    def current(self) -> OneTimeCode:
        return self._current

    @property
    def previous(self) -> Secret | None:
        """The digits of the code the current one replaced, if any."""
        return self._previous

    def fresh(self) -> OneTimeCode:
        """Retire the current code and make a new one (never the same digits)."""
        self._current.retire()
        self._previous = self._current.spent_digits()
        made = self._make()
        # 1 in 10^6 at a relay: the old code would then be taken for the new one.
        while self._previous is not None and made._digits == self._previous:
            made = self._make()
        self._current = made
        self.made += 1
        return self._current

    def __repr__(self) -> str:
        return f"CodeBook({self._current!r})"


__all__ = [
    "CODE_DIGITS",
    "DEFAULT_TRIES",
    "DEFAULT_TTL",
    "NAMEPLATE_WIDTHS",
    "SECRET_DIGITS",
    "Clock",
    "CodeBook",
    "CodeSource",
    "CodeState",
    "OneTimeCode",
    "check_nameplate",
    "grouped",
    "grouped_digits",
    "nameplate_of",
    "new_code",
    "parse_code",
]
