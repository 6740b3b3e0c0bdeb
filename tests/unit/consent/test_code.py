"""The one-time code: format, parsing, and the OneTimeCode machine."""

from __future__ import annotations

import pickle

import pytest

from tests.helpers import FakeClock
from tests.unit.consent.fakes import DIGITS, GROUPED, state
from toolkit.consent import (
    CodeBook,
    CodeBurned,
    CodeExpired,
    CodeFormatError,
    CodeState,
    CodeUsed,
    OneTimeCode,
    check_nameplate,
    grouped,
    nameplate_of,
    new_code,
    parse_code,
)
from toolkit.errors import ExitCode
from toolkit.secrets import Secret


def make(clock: FakeClock | None = None, *, ttl: float = 600.0, tries: int = 3) -> OneTimeCode:
    return OneTimeCode(Secret(DIGITS), clock=clock or FakeClock(), ttl=ttl, tries=tries)


# --- format -------------------------------------------------------------


def test_new_code_is_nine_random_digits_held_as_a_secret() -> None:
    codes = {new_code().reveal() for _ in range(200)}
    assert all(len(c) == 9 and c.isdigit() and c.isascii() for c in codes)
    assert len(codes) > 190  # 1e9 possibilities: collisions would mean a broken source
    code = new_code()
    assert isinstance(code, Secret)
    with pytest.raises(TypeError):
        str(code)
    with pytest.raises(TypeError):
        f"{code}"


def test_codes_use_every_digit_position() -> None:
    # A weak generator (e.g. one fixed group) shows as constant columns.
    columns = list(zip(*(new_code().reveal() for _ in range(300)), strict=True))
    assert all(len(set(col)) == 10 for col in columns)


@pytest.mark.parametrize(
    "typed",
    [GROUPED, DIGITS, "530 271 846", " 530-271-846\n", "530-271846", "530 - 271 - 846"],
)
def test_parse_accepts_groups_dashes_and_spaces(typed: str) -> None:
    assert parse_code(typed).reveal() == DIGITS


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "41709355",
        "417093552012",  # 12 digits: wider than any relay's name
        "530_271_846",
        "530.271.846",
        "abc-def-ghi",
        "\u0664\u0661\u0667\u0660\u0669\u0663\u0665\u0665\u0662",  # Arabic-Indic digits
        "\uff14\uff11\uff17\uff10\uff19\uff13\uff15\uff15\uff12",  # full-width digits
    ],
)
def test_parse_refuses_anything_else_without_echoing_it(typed: str) -> None:
    with pytest.raises(CodeFormatError) as info:
        parse_code(typed)
    err = info.value
    assert err.exit_code is ExitCode.USAGE
    assert "9 digits" in err.diagnostics()
    if typed.strip():
        assert typed.strip() not in err.diagnostics()


def test_grouped_is_three_groups() -> None:
    assert grouped(Secret(DIGITS)).reveal() == GROUPED
    assert make().display.reveal() == GROUPED


# --- a relay's nameplate as the first group ---------------------------------


@pytest.mark.parametrize(
    ("name", "shown"),
    [("417", "417-xxx-xxx"), ("4170", "4170-xxx-xxx"), ("65535", "65535-xxx-xxx")],
)
def test_relay_codes_are_the_nameplate_and_six_secret_digits(name: str, shown: str) -> None:
    codes = [new_code(name) for _ in range(200)]
    for code in codes:
        digits = code.reveal()
        assert digits.startswith(name) and len(digits) == len(name) + 6 and digits.isdigit()
        assert nameplate_of(code) == name
        assert grouped(code).reveal()[: len(name) + 1] == shown[: len(name) + 1]
        assert len(grouped(code).reveal()) == len(shown)
    # The secret part is uniformly random: every digit in every one of its columns.
    columns = list(zip(*(c.reveal()[len(name) :] for c in codes), strict=True))
    assert all(len(set(col)) == 10 for col in columns)
    assert len({c.reveal() for c in codes}) > 190


@pytest.mark.parametrize("typed", ["4170-093-552", "4170093552", "4170 093 552", " 41700-93-552 "])
def test_wider_first_groups_parse_and_regroup(typed: str) -> None:
    code = parse_code(typed)
    digits = "".join(ch for ch in typed if ch.isdigit())
    assert code.reveal() == digits
    name = digits[:-6]
    assert nameplate_of(code) == name
    assert grouped(code).reveal() == f"{name}-{digits[-6:-3]}-{digits[-3:]}"


def test_a_wide_code_keys_the_whole_machine_like_a_short_one() -> None:
    code = OneTimeCode(Secret("41700093552"), clock=FakeClock())
    assert code.display.reveal() == "41700-093-552"
    assert code.begin().reveal() == "41700093552"
    assert [code.failed(), code.failed(), code.failed()] == [2, 1, 0]
    assert state(code) is CodeState.BURNED  # a wider name buys no extra tries


@pytest.mark.parametrize("bad", ["", "41", "017", "0417", "123456", "12a", "\u0664\u0661\u0667"])
def test_nameplates_are_three_to_five_digits_without_a_leading_zero(bad: str) -> None:
    with pytest.raises(ValueError):
        check_nameplate(bad)
    with pytest.raises(ValueError):
        new_code(bad)
    assert check_nameplate("100") == "100"
    assert check_nameplate("99999") == "99999"


def test_repr_never_shows_the_digits() -> None:
    code = make()
    book = CodeBook(generate=lambda: Secret(DIGITS))
    for text in (repr(code), repr(book), repr(code.display)):
        assert DIGITS not in text and GROUPED not in text
    with pytest.raises(TypeError):
        pickle.dumps(code.display)


# --- the machine ----------------------------------------------------------


def test_active_code_lends_its_digits_until_used_once() -> None:
    code = make()
    assert state(code) is CodeState.ACTIVE
    assert code.begin().reveal() == DIGITS
    assert code.begin().reveal() == DIGITS  # concurrent handshakes may each ask
    code.succeeded()
    assert state(code) is CodeState.CONSUMED
    with pytest.raises(CodeUsed):
        code.begin()
    with pytest.raises(CodeUsed):
        code.succeeded()


def test_three_failures_burn_it() -> None:
    code = make()
    assert [code.failed(), code.failed()] == [2, 1]
    assert state(code) is CodeState.ACTIVE
    assert code.failed() == 0
    assert state(code) is CodeState.BURNED
    with pytest.raises(CodeBurned):
        code.begin()
    with pytest.raises(CodeBurned):
        code.succeeded()
    assert code.failed() == 0  # a late failure: no effect
    assert state(code) is CodeState.BURNED


def test_tries_are_configurable() -> None:
    code = make(tries=1)
    assert code.failed() == 0
    assert state(code) is CodeState.BURNED
    with pytest.raises(ValueError):
        make(tries=0)
    with pytest.raises(ValueError):
        make(ttl=0)


def test_expires_at_its_deadline_on_the_injected_clock() -> None:
    clock = FakeClock()
    code = make(clock, ttl=600)
    clock.now += 599.5
    assert state(code) is CodeState.ACTIVE
    assert code.remaining() == pytest.approx(0.5)
    clock.now += 0.5
    assert state(code) is CodeState.EXPIRED
    assert code.remaining() == 0.0
    with pytest.raises(CodeExpired):
        code.begin()


def test_expiry_is_checked_on_every_input() -> None:
    clock = FakeClock()
    code = make(clock)
    clock.now += 601
    with pytest.raises(CodeExpired):
        code.succeeded()  # not silently consumed after its deadline
    assert code.failed() == 3  # late failure on an expired code: no effect


def test_retire_stops_it_at_once() -> None:
    code = make()
    code.retire()
    assert state(code) is CodeState.EXPIRED
    with pytest.raises(CodeExpired):
        code.begin()
    code.retire()  # non-event


@pytest.mark.parametrize("end", ["consumed", "burned", "expired"])
def test_terminal_states_swallow_late_inputs(end: str) -> None:
    clock = FakeClock()
    code = make(clock)
    if end == "consumed":
        code.succeeded()
    elif end == "burned":
        for _ in range(3):
            code.failed()
    else:
        clock.now += 1000
    before = state(code)
    tries = code.tries_left
    code.retire()
    code.failed()
    clock.now += 10_000
    assert (state(code), code.tries_left) == (before, tries)


def test_codebook_fresh_replaces_and_retires() -> None:
    made = iter(["111111111", "222222222"])
    book = CodeBook(generate=lambda: Secret(next(made)), clock=FakeClock())
    first = book.current
    for _ in range(3):
        first.failed()
    assert state(first) is CodeState.BURNED
    second = book.fresh()
    assert book.current is second
    assert state(second) is CodeState.ACTIVE and second.begin().reveal() == "222222222"
    third_made = CodeBook(clock=FakeClock())
    old = third_made.current
    third_made.fresh()
    assert state(old) is CodeState.EXPIRED  # an active code is retired when replaced


def test_error_messages_name_the_state_never_the_code() -> None:
    for setup, exc in [
        (lambda c: c.succeeded(), CodeUsed),
        (lambda c: [c.failed() for _ in range(3)], CodeBurned),
        (lambda c: c.retire(), CodeExpired),
    ]:
        code = make()
        setup(code)
        with pytest.raises(exc) as info:
            code.begin()
        text = info.value.diagnostics()
        assert DIGITS not in text and GROUPED not in text
        assert info.value.exit_code is ExitCode.REFUSED
