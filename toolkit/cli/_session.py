"""What ``toolkit connect`` and ``toolkit run`` do alike before a session: where, as whom.

Both reach a customer's agent at HOST:PORT or through a relay, with the
customer's code given or asked, as the technician's identity; both answer
an error before the session with one JSON line for scripts. One place for
each, so the two commands cannot drift apart.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from toolkit.cli._identity import load_identity
from toolkit.cli._relay import confirm_relay_host, relay_route
from toolkit.errors import ExitCode, ToolkitError, UsageError

if TYPE_CHECKING:
    from pathlib import Path

    from toolkit.consent import Scope
    from toolkit.session.workflow import Place, SessionRequest


def place_of(
    address: str | None, relay: str | None, relay_dir: str, name: str | None = None
) -> Place:
    """HOST:PORT as toolkit share printed it, or ``--relay``'s rendezvous; UsageError else."""
    from toolkit.cli.share import parse_address
    from toolkit.session.workflow import Place

    route = relay_route(relay, relay_dir, name)
    if route is not None:
        if address is not None:
            raise UsageError("Give HOST:PORT or --relay, not both.")
        return Place(str(route.address), 0, route)
    if address is None:
        raise UsageError(
            "Where is the customer's toolkit share?",
            hint="Give the HOST:PORT it printed, or --relay [USER@]HOST[:PORT] and its code.",
        )
    host, port = parse_address(address)
    if port == 0:
        raise UsageError(f"{address!r} has no port: use the HOST:PORT that toolkit share printed.")
    return Place(host, port)


def session_request(
    place: Place,
    ticket: str,
    code: str | None,
    scopes: frozenset[Scope],
    key: Path | None,
    agent: str | None,
    *,
    verdict: bool,
) -> SessionRequest:
    """The session to run: the code checked (or a terminal to ask it on), a relay's host key
    confirmed, then the identity unlocked, in that order (no passphrase for a typo)."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.consent import parse_code
    from toolkit.session.workflow import SessionRequest

    secret = parse_code(code) if code is not None else None
    if secret is None and not sys.stdin.isatty():
        raise UsageError("No --code given and no terminal to ask for it.", hint="Pass --code CODE.")
    if place.route is not None:
        confirm_relay_host(place.route)  # before the passphrase and the code
    identity = load_identity(key, agent)
    return SessionRequest(
        place,
        identity,
        ticket,
        scopes,
        secret,
        allowed_signers=default_allowed_signers(),
        verdict=verdict,  # a summary line states it
    )


#: Error codes in JSON error lines, for errors that are not a consent refusal.
_ERROR_CODES = {
    ExitCode.FAILED: "failed",
    ExitCode.USAGE: "usage",
    ExitCode.REFUSED: "refused",
    ExitCode.NETWORK: "network",
    ExitCode.TICKET_BACKEND: "ticket-backend",
}


def error_line(exc: ToolkitError) -> dict[str, Any]:
    """The one JSON line for an error before the session (docs/quickstart.md)."""
    from toolkit.consent import ConsentError

    code = int(exc.exit_code)
    name = exc.reason if isinstance(exc, ConsentError) else _ERROR_CODES.get(exc.exit_code)
    error: dict[str, Any] = {"code": name or "failed", "message": exc.message, "hint": exc.hint}
    tries = getattr(exc, "tries_left", None)
    error["tries_left"] = tries if isinstance(tries, int) else None
    return {"type": "error", "error": error, "exit_code": code}


__all__ = ["error_line", "place_of", "session_request"]
