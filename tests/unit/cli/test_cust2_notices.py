"""How a no came about travels to the technician in the agent's notice, bounded and checked."""

from __future__ import annotations

import pytest

from toolkit.consent import Decision, Scope
from toolkit.consent._messages import MessageError, Notice, decode_challenge
from toolkit.consent._notices import notice_error
from toolkit.consent.errors import Declined


@pytest.mark.parametrize("reason", ["declined", "no-answer", "nobody-to-ask", "nothing-offered"])
def test_each_no_travels_as_its_own_notice_word(reason: str) -> None:
    notice = decode_challenge(Notice(reason, 0).encode())
    assert isinstance(notice, Notice)
    error = notice_error(notice, b"key")
    assert isinstance(error, Declined) and error.reason == reason
    assert "did not answer" not in (error.hint or "") or reason == "no-answer"


def test_a_notice_with_a_word_nobody_defined_is_malformed() -> None:
    with pytest.raises(MessageError, match="unknown reason"):
        decode_challenge('{"v":1,"type":"refused","reason":"bored","tries_left":0}')


def test_a_decision_says_how_a_no_came_about_and_nothing_else() -> None:
    assert Decision(False).reason == "declined"
    assert Decision(True, frozenset({Scope.DIAGNOSTICS})).reason is None
    with pytest.raises(ValueError, match="a no is one of"):
        Decision(False, reason="x" * 10_000)
    with pytest.raises(ValueError, match="a yes has no reason"):
        Decision(True, frozenset({Scope.DIAGNOSTICS}), "declined")
