"""The consent handshake: a one-time code, SPAKE2, key confirmation, the customer's yes.

Pure state machines, no I/O: the asyncssh callbacks feed them text and send
what they return. One object per side and keyboard-interactive attempt::

    from toolkit.consent import (
        AgentHandshake, CodeBook, KBDINT_NAME, KBDINT_PROMPT, TechnicianHandshake,
    )

    # agent (toolkit share)
    book = CodeBook()                     # book.current.display.reveal() -> "417-093-552"
    agent = AgentHandshake(book.current, host_key_blob, offered={Scope.DIAGNOSTICS})
    round1 = agent.challenge()            # instruction of the first kbdint challenge
    request = agent.receive_response(answer1)   # -> ApprovalRequest for the customer
    round2 = agent.approved(decision)     # instruction of the second challenge
    consent = agent.receive_ack(answer2)  # -> Consent; authentication succeeds

    # technician (toolkit connect)
    tech = TechnicianHandshake(signer, host_key_seen, name=..., email=..., ticket=...,
                               scopes=["diagnostics"], code=parse_code(typed))
    answer1 = tech.respond(round1)
    consent = tech.finish(round2)         # raises ConfirmationFailed on a bad agent MAC
    answer2 = ""

docs/consent.md documents the messages, the states and the wiring into
asyncssh; docs/state-machines/ has one diagram per machine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from toolkit.consent._agent import AgentHandshake, AgentState
    from toolkit.consent._approval import (
        ApprovalRequest,
        Approver,
        AutoApprove,
        Consent,
        Decision,
        Scope,
        get_decision,
        scope_names,
        scopes,
    )
    from toolkit.consent._code import (
        CodeBook,
        CodeSource,
        CodeState,
        OneTimeCode,
        check_nameplate,
        grouped,
        nameplate_of,
        new_code,
        parse_code,
    )
    from toolkit.consent._confirm import CONSENT_NAMESPACE
    from toolkit.consent._messages import MAX_MESSAGE_BYTES
    from toolkit.consent._technician import TechnicianHandshake, TechnicianState
    from toolkit.consent._trust import TrustCheck, trust_from_allowed_signers, untrusted
    from toolkit.consent.errors import (
        CodeBurned,
        CodeExpired,
        CodeFormatError,
        CodeUsed,
        ConfirmationFailed,
        ConsentError,
        Declined,
        HandshakeOutOfOrder,
        IdentityProofFailed,
        KeyMismatch,
        MalformedMessage,
        SessionNotStarted,
        WrongCode,
    )

# Importing a submodule (toolkit.consent.errors) must stay cheap: the package
# loads spake2 and cryptography only when one of these names is used.
_LAZY = {
    "AgentHandshake": "toolkit.consent._agent",
    "AgentState": "toolkit.consent._agent",
    "ApprovalRequest": "toolkit.consent._approval",
    "Approver": "toolkit.consent._approval",
    "AutoApprove": "toolkit.consent._approval",
    "CONSENT_NAMESPACE": "toolkit.consent._confirm",
    "CodeBook": "toolkit.consent._code",
    "CodeBurned": "toolkit.consent.errors",
    "CodeExpired": "toolkit.consent.errors",
    "CodeFormatError": "toolkit.consent.errors",
    "CodeSource": "toolkit.consent._code",
    "CodeState": "toolkit.consent._code",
    "CodeUsed": "toolkit.consent.errors",
    "ConfirmationFailed": "toolkit.consent.errors",
    "Consent": "toolkit.consent._approval",
    "ConsentError": "toolkit.consent.errors",
    "Decision": "toolkit.consent._approval",
    "Declined": "toolkit.consent.errors",
    "HandshakeOutOfOrder": "toolkit.consent.errors",
    "IdentityProofFailed": "toolkit.consent.errors",
    "KeyMismatch": "toolkit.consent.errors",
    "MAX_MESSAGE_BYTES": "toolkit.consent._messages",
    "MalformedMessage": "toolkit.consent.errors",
    "OneTimeCode": "toolkit.consent._code",
    "Scope": "toolkit.consent._approval",
    "SessionNotStarted": "toolkit.consent.errors",
    "TechnicianHandshake": "toolkit.consent._technician",
    "TechnicianState": "toolkit.consent._technician",
    "TrustCheck": "toolkit.consent._trust",
    "WrongCode": "toolkit.consent.errors",
    "get_decision": "toolkit.consent._approval",
    "check_nameplate": "toolkit.consent._code",
    "grouped": "toolkit.consent._code",
    "nameplate_of": "toolkit.consent._code",
    "new_code": "toolkit.consent._code",
    "parse_code": "toolkit.consent._code",
    "scope_names": "toolkit.consent._approval",
    "scopes": "toolkit.consent._approval",
    "trust_from_allowed_signers": "toolkit.consent._trust",
    "untrusted": "toolkit.consent._trust",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


#: The name of every consent keyboard-interactive challenge.
KBDINT_NAME = "toolkit consent"
#: The one prompt of every consent challenge (echo off); the payload is the instruction.
KBDINT_PROMPT = "consent: "

__all__ = [
    "CONSENT_NAMESPACE",
    "KBDINT_NAME",
    "KBDINT_PROMPT",
    "MAX_MESSAGE_BYTES",
    "AgentHandshake",
    "AgentState",
    "ApprovalRequest",
    "Approver",
    "AutoApprove",
    "CodeBook",
    "CodeBurned",
    "CodeExpired",
    "CodeFormatError",
    "CodeSource",
    "CodeState",
    "CodeUsed",
    "ConfirmationFailed",
    "Consent",
    "ConsentError",
    "Decision",
    "Declined",
    "HandshakeOutOfOrder",
    "IdentityProofFailed",
    "KeyMismatch",
    "MalformedMessage",
    "OneTimeCode",
    "Scope",
    "SessionNotStarted",
    "TechnicianHandshake",
    "TechnicianState",
    "TrustCheck",
    "WrongCode",
    "check_nameplate",
    "get_decision",
    "grouped",
    "nameplate_of",
    "new_code",
    "parse_code",
    "scope_names",
    "scopes",
    "trust_from_allowed_signers",
    "untrusted",
]
