"""What the technician's side raises for the agent's notices, the code's and the grant's.

A notice is the agent's refusal in place of a challenge (toolkit.consent._messages).
Both handshakes of the technician's side, the code's (_technician) and the
grant's (_grant), turn notices into errors here, so that neither imports the other.
"""

from __future__ import annotations

from toolkit.consent._messages import GRANT_REFUSED, MAX_DETAIL, Notice
from toolkit.consent.errors import (
    NOTICE_ERRORS,
    CodeBurned,
    CodeExpired,
    CodeUsed,
    ConsentError,
    Declined,
    IdentityProofFailed,
    KeyMismatch,
    MalformedMessage,
    NoAnswer,
    NobodyToAsk,
    NothingOffered,
    SessionNotStarted,
    WrongCode,
)
from toolkit.identity.keys import fingerprint
from toolkit.text import printable


def _tries_text(tries_left: int) -> str:
    if tries_left <= 0:
        return "the code is now burned: ask the customer for a new one"
    return f"{tries_left} {'try' if tries_left == 1 else 'tries'} left"


def _host_key_text(host_key: bytes) -> str:
    return f"this side saw the host key {fingerprint(host_key)}"


def notice_error(notice: Notice, host_key: bytes) -> ConsentError:
    """The error a technician raises for the agent's notice; ``host_key`` as this side saw it.

    The notice is not authenticated: someone in the middle can turn "the code
    was right but the keys differ" into "wrong code". So a wrong code, too,
    names the host key this side saw, for comparing with the customer's screen.
    """
    if notice.reason == GRANT_REFUSED:
        return grant_notice_error(notice)
    cls = NOTICE_ERRORS[notice.reason]
    n = notice.tries_left
    if cls is WrongCode:
        return WrongCode(
            f"The customer's agent did not accept the code ({_tries_text(n)}); "
            f"{_host_key_text(host_key)}.",
            tries_left=n,
        )
    if cls is KeyMismatch:
        return KeyMismatch(
            "The customer's agent found the code right but the handshake wrong: it did not "
            f"see the host key this side saw ({fingerprint(host_key)}), so someone may be in "
            "the middle. Compare it with the host key toolkit share shows on the customer's "
            f"screen ({_tries_text(n)}).",
            tries_left=n,
        )
    if cls is MalformedMessage:
        return MalformedMessage(
            f"The customer's agent could not read this side's answer ({_tries_text(n)}).",
            tries_left=n,
        )
    messages: dict[type[ConsentError], str] = {
        CodeBurned: "The code is burned after too many wrong tries.",
        CodeExpired: "This code has expired or the customer replaced it: ask for a new one.",
        CodeUsed: "The code was already used.",
        IdentityProofFailed: "The customer's agent could not verify this side's signature.",
        Declined: "The customer declined the session.",
        NoAnswer: "The customer did not answer in time: nobody let you in.",
        NobodyToAsk: "Nobody could be asked: the customer's toolkit share has no terminal "
        "to ask on and no --yes.",
        NothingOffered: "The customer's toolkit share offers none of the scopes you asked for.",
        SessionNotStarted: "The customer's agent accepted the code but could not start "
        "the session: its copy of the transcript could not be created.",
    }
    return cls(messages[cls])


def grant_refused(reason: str, message: str) -> ConsentError:
    from toolkit.grants.check import GrantRefused

    return GrantRefused(reason, message)


def grant_notice_error(notice: Notice) -> ConsentError:
    """The GrantRefused a grant-refused notice names, its reason and sentence from its detail."""
    from toolkit.grants.check import REFUSALS

    detail = notice.detail or ""
    reason, _, sentence = detail.partition(": ")
    if reason not in REFUSALS:
        reason, sentence = "forged", detail
    sentence = printable(sentence or "no reason given", MAX_DETAIL)
    return grant_refused(reason, f"The customer's agent refused the grant: {sentence}")


__all__ = ["grant_notice_error", "grant_refused", "notice_error"]
