"""Whose keys the customer's trust settings vouch for, shown with the technician's request.

Apart from the handshake (toolkit.consent._agent): toolkit share sets up
its trust before it shows the code, and must not load the handshake's
SPAKE2 for that.
"""

from __future__ import annotations

from collections.abc import Callable

from toolkit.errors import SignatureError
from toolkit.identity.allowed_signers import AllowedSigners

#: The SSHSIG namespace of the technician's signature over the consent transcript.
CONSENT_NAMESPACE = "toolkit-consent"

#: Decides whether the customer's trust settings vouch for a key (blob) as an email.
TrustCheck = Callable[[bytes, str], bool]


def untrusted(key: bytes, email: str) -> bool:
    """The default trust: nobody is vouched for; the customer judges the fingerprint."""
    return False


def trust_from_allowed_signers(
    signers: AllowedSigners, namespace: str = CONSENT_NAMESPACE
) -> TrustCheck:
    """Trust a key as an email when an allowed_signers line (or CA) says so for ``namespace``."""

    def check(key: bytes, email: str) -> bool:
        try:
            signers.check(email, key, namespace)
        except SignatureError:
            return False
        return True

    return check


__all__ = ["CONSENT_NAMESPACE", "TrustCheck", "trust_from_allowed_signers", "untrusted"]
