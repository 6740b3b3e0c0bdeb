"""Why a consent handshake was refused, in words for the person who reads it.

Every refusal is a :class:`~toolkit.errors.ConsentRefused` (exit code 3). As
in magic-wormhole, the class docstring is the user's explanation: what may
have happened and what to do next. ``diagnostics()`` prints the specific
message first, then that explanation. No message ever holds the consent code,
a key or a MAC; the only numbers in them are tries left.

Each refusal the agent can tell the technician about has a ``reason``: the
word that travels in the agent's notice (see docs/consent.md), so both sides
raise the same class.
"""

from __future__ import annotations

import inspect
from typing import ClassVar

from toolkit.errors import ConsentRefused, ExitCode, UsageError


class ConsentError(ConsentRefused):
    """The consent handshake did not complete."""

    #: The word for this refusal in the agent's notice to the technician.
    reason: ClassVar[str] = "refused"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint if hint is not None else _explain(type(self)))


def _explain(cls: type) -> str:
    """The docstring after its summary line, each paragraph on one line."""
    paragraphs = (inspect.getdoc(cls) or "").split("\n\n")[1:]
    return "\n".join(" ".join(p.split()) for p in paragraphs)


class WrongCode(ConsentError):
    """The one-time code did not match.

    The code was probably mistyped or misheard over the phone. It may also be
    someone else guessing it. Each wrong try uses up one of the code's 3
    tries; after the last one the code is burned and the customer has to ask
    toolkit share for a new one. Check the digits with the customer and try
    again. If you are sure of the digits, someone in the middle may have
    changed the agent's answer: compare the host key fingerprint above with
    the one toolkit share shows on the customer's screen.
    """

    reason = "wrong-code"

    def __init__(self, message: str, *, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class CodeBurned(ConsentError):
    """The one-time code is burned: it had 3 wrong tries.

    Someone may have been guessing it. It cannot be used any more, whoever
    tries it. toolkit share shows the customer where the wrong codes came
    from; the customer asks it for a new code (it makes none on its own) and
    reads that out.
    """

    reason = "burned"


class CodeExpired(ConsentError):
    """The one-time code expired, or the customer replaced it with a new one.

    A code is valid for a few minutes only (10 by default), and toolkit share
    makes a new one only when the customer asks for it. Ask the customer for
    a new code. No try of the new code was used.
    """

    reason = "expired"


class CodeUsed(ConsentError):
    """The one-time code was already used.

    A code works once. If that was not you, someone else connected with it:
    the customer should check who is connected and make a new code.
    """

    reason = "used"


class ConfirmationFailed(ConsentError):
    """The key confirmation failed: someone may be in the middle.

    The two ends of the handshake did not see the same things: the host key
    this side saw is not the key of the customer's agent, or what was sent
    was changed on the way. Something between you and the customer may be
    impersonating the customer's machine (a man-in-the-middle). Nothing was
    sent that lets it use your code or your key. Do not retry over the same
    path: call the customer, compare the host key fingerprint above with the
    one toolkit share shows on their screen, and connect directly.
    """

    reason = "confirmation"


class KeyMismatch(ConfirmationFailed):
    """The code was right, but the two sides saw different keys: someone may be in the middle.

    The customer's agent found that whoever answered knew the code, yet the
    handshake did not cover the agent's own host key (or the technician's key,
    name, ticket or scopes arrived changed). That is what a man-in-the-middle
    that terminates SSH looks like. Compare the host key fingerprint toolkit
    share shows with the one on the technician's screen; if they differ, do
    not use this path. The attempt cost the code one try.
    """

    reason = "mismatch"

    def __init__(self, message: str, *, tries_left: int) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class MalformedMessage(ConsentError):
    """The other side sent a consent message that does not follow the protocol.

    This is a bug in one of the two programs, mismatched toolkit versions, or
    someone tampering with the connection. On the agent's side a malformed
    answer costs a try, like a wrong code. Check that both sides run the same
    toolkit version and try again with a new code.
    """

    reason = "malformed"

    def __init__(self, message: str, *, tries_left: int | None = None) -> None:
        super().__init__(message)
        self.tries_left = tries_left


class IdentityProofFailed(ConsentError):
    """The technician knew the code but could not prove it holds the key it named.

    The consent message is signed with the technician's key so that the
    customer approves the key that will actually be used. This signature was
    missing or wrong: someone who learned the code may be trying to pass as
    another technician. The code is used up; the customer should make a new
    one and read it only to the technician they called.
    """

    reason = "identity"


class Declined(ConsentError):
    """The customer did not approve the session.

    The customer was shown who you are, your key and what you asked for, and
    answered no. Nothing was run on their machine. Talk to the customer
    before trying again.
    """

    reason = "declined"


class NoAnswer(Declined):
    """The customer did not answer in time.

    toolkit share asked the customer whether to let you in, and no answer came
    before the question timed out (5 minutes). Nothing was run on their
    machine. Call the customer; they ask toolkit share for a new code (type n
    and Enter) and answer y when asked.
    """

    reason = "no-answer"


class NobodyToAsk(Declined):
    """Nobody could be asked: the customer's toolkit share has no terminal to ask on.

    toolkit share asks the customer on its terminal before letting anyone in.
    It runs without one (from a script, or with its input redirected) and was
    not started with --yes, so it said no for them. Nothing was run on their
    machine. Ask the customer to run toolkit share in a terminal window (or,
    for an unattended machine, with --yes or a grant).
    """

    reason = "nobody-to-ask"


class NothingOffered(Declined):
    """The customer's toolkit share offers none of the scopes you asked for.

    toolkit share offers diagnostics unless the customer chose otherwise with
    --scope, and a yes can grant only what is both asked for and offered.
    Nothing was run on their machine. Ask the customer which scopes they
    offer, and connect again asking for those (--scope).
    """

    reason = "nothing-offered"


#: The refusal for each way a no comes about (toolkit.consent._approval.DECLINE_REASONS).
DECLINES: dict[str, type[Declined]] = {
    cls.reason: cls for cls in (Declined, NoAnswer, NobodyToAsk, NothingOffered)
}


class SessionNotStarted(ConsentError):
    """The customer's agent could not start the session.

    The code and the customer's yes were accepted, but the customer's side
    could not create its own copy of the transcript (a full disk, a folder it
    cannot write), and no session runs without it. Nothing ran on the
    customer's machine. toolkit share shows the customer why; once that is
    fixed, they start it again and read you a new code.
    """

    reason = "not-started"
    exit_code = ExitCode.FAILED


class GrantsOnly(ConsentError):
    """The customer's agent takes grants only: it shows no code to type.

    It runs as a service (toolkit serve) or with codes turned off, and lets in
    only technicians who bring a grant its owner signed. Connect again with
    --grant FILE (and the agent's host key pinned), or ask the customer to run
    toolkit share for a code.
    """

    reason = "grants-only"


class GrantsNotTaken(ConsentError):
    """The customer's agent does not take grants: it asks for its one-time code.

    A grant works only where the agent was started with
    --accept-grants-from. Ask the customer for the code toolkit share shows
    instead, or to start it with the grant issuer's allowed_signers file.
    """

    reason = "no-grants"


class CodeFormatError(UsageError):
    """The text typed is not a consent code.

    Dashes and spaces are optional. Type the code exactly as toolkit share
    shows it.
    """

    def __init__(self) -> None:
        super().__init__(
            "That is not a consent code: it is 9 digits in three groups, like 417-093-552"
            " (through a relay the first group may have 4 or 5 digits).",
            hint=_explain(CodeFormatError) or None,
        )


class HandshakeOutOfOrder(RuntimeError):
    """A caller used a consent machine against its contract (a bug, not a refusal)."""


#: Refusals the agent may name in a notice, by their wire word.
NOTICE_ERRORS: dict[str, type[ConsentError]] = {
    cls.reason: cls
    for cls in (
        WrongCode,
        CodeBurned,
        CodeExpired,
        CodeUsed,
        MalformedMessage,
        IdentityProofFailed,
        Declined,
        NoAnswer,
        NobodyToAsk,
        NothingOffered,
        KeyMismatch,
        SessionNotStarted,
    )
}


__all__ = [
    "DECLINES",
    "NOTICE_ERRORS",
    "CodeBurned",
    "CodeExpired",
    "CodeFormatError",
    "CodeUsed",
    "ConfirmationFailed",
    "ConsentError",
    "Declined",
    "GrantsNotTaken",
    "GrantsOnly",
    "HandshakeOutOfOrder",
    "IdentityProofFailed",
    "KeyMismatch",
    "MalformedMessage",
    "NoAnswer",
    "NobodyToAsk",
    "NothingOffered",
    "SessionNotStarted",
    "WrongCode",
]
