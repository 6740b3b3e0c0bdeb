"""Errors that speak to users.

Every expected failure is a :class:`ToolkitError`: it carries the process exit
code and a ``diagnostics()`` text that says what happened, what it likely
means and what to do next. The CLI prints that text and exits with the code;
nothing else turns errors into output. Messages never contain a consent
code, key material or file contents.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, as documented in ``docs/exit-codes.md``."""

    OK = 0
    FAILED = 1
    USAGE = 2
    REFUSED = 3
    NETWORK = 4
    TICKET_BACKEND = 5
    INTERRUPTED = 130


class ToolkitError(Exception):
    """Base class of every failure a user is meant to read."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The whole text shown to the user: the message, then what to do."""
        if self.hint:
            return f"{self.message}\n{self.hint}"
        return self.message


class CheckFailed(ToolkitError):
    """A check ran and did not pass."""


class UsageError(ToolkitError):
    """The command line or an input file is not what the command takes."""

    exit_code = ExitCode.USAGE


class IdentityError(ToolkitError):
    """The technician's key could not be created, found or used."""


class SignatureError(ToolkitError):
    """An SSHSIG signature is malformed or does not verify."""


class TranscriptFormatError(UsageError):
    """A file is not a toolkit transcript at all."""


class TranscriptVerificationError(CheckFailed):
    """A transcript is not SEALED; the verdict says how and where."""


class TranscriptWriteError(ToolkitError):
    """A transcript (or its seal) could not be written: a full disk, a file size limit."""


class PolicyRefused(ToolkitError):
    """The agent's policy refused an operation."""

    exit_code = ExitCode.REFUSED


class ConsentRefused(ToolkitError):
    """The customer, or the consent handshake, refused the session."""

    exit_code = ExitCode.REFUSED


class HostKeyRefused(ConsentRefused):
    """The agent's SSH host key is not the one pinned for it: nothing was sent to it.

    With a grant there is no code to bind the connection to the customer's
    agent: the host key is what proves who answers. A key other than the one
    pinned may be a reinstalled agent, or someone in the middle. Check the
    fingerprint with whoever runs the agent before pinning a new one.
    """


class TransportError(ToolkitError):
    """The network, a relay or an SSH peer failed."""

    exit_code = ExitCode.NETWORK


class TicketBackendError(ToolkitError):
    """A ticket system refused or could not be reached."""

    exit_code = ExitCode.TICKET_BACKEND


__all__ = [
    "CheckFailed",
    "ConsentRefused",
    "ExitCode",
    "HostKeyRefused",
    "IdentityError",
    "PolicyRefused",
    "SignatureError",
    "TicketBackendError",
    "ToolkitError",
    "TranscriptFormatError",
    "TranscriptVerificationError",
    "TranscriptWriteError",
    "TransportError",
    "UsageError",
]
