"""What ``toolkit connect`` and ``toolkit run`` do alike before a session: where, as whom.

Both reach a customer's agent at HOST:PORT or through a relay, with the
customer's code given or asked, as the technician's identity; both answer
an error before the session with one JSON line for scripts. One place for
each, so the two commands cannot drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._identity import load_identity
from toolkit.cli._relay import confirm_relay_host, relay_route
from toolkit.errors import ExitCode, ToolkitError, UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

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


GrantOption = Annotated[
    Path | None,
    typer.Option(
        "--grant",
        metavar="FILE",
        help="Consent given in advance: a grant the agent's owner signed, instead of a code "
        "(needs --host-key).",
        dir_okay=False,
    ),
]
HostKeyOption = Annotated[
    str | None,
    typer.Option(
        "--host-key",
        metavar="SHA256:...",
        help="The agent's host key fingerprint: anything else is refused before a grant is sent.",
        show_default=False,
    ),
]

#: An SSH key fingerprint as ssh-keygen -l and toolkit print it.
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def check_fingerprint(text: str, option: str = "--host-key") -> str:
    """``text`` when it is a SHA256 fingerprint; UsageError (not repeating it) otherwise."""
    if not FINGERPRINT.fullmatch(text):
        raise UsageError(
            f"{option} takes the agent's host key fingerprint, like SHA256: and 43 "
            "characters of base64 (toolkit share and toolkit serve print it)."
        )
    return text


def session_request(
    place: Place,
    ticket: str,
    code: str | None,
    scopes: frozenset[Scope],
    key: Path | None,
    agent: str | None,
    *,
    verdict: bool,
    grant: Path | None = None,
    host_key: str | None = None,
    fix: str | None = None,
) -> SessionRequest:
    """The session to run: the code checked (or a terminal to ask it on), or the grant read
    with the agent's host key pinned; a relay's host key confirmed, then the identity
    unlocked, in that order (no passphrase for a typo)."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.consent import parse_code
    from toolkit.session.workflow import SessionRequest

    if grant is not None:
        if code is not None:
            raise UsageError("Give --code or --grant, not both.")
        if place.route is not None and place.route.name is None:
            raise UsageError(
                "--grant cannot reach an agent through a relay's rendezvous: that needs "
                "the customer's code.",
                hint="Give the agent's HOST:PORT instead.",
            )
    host_key_check = None
    if host_key is not None:
        from toolkit.transport.ssh import pinned

        host_key_check = pinned(check_fingerprint(host_key))
    elif grant is not None:
        # No code binds the connection to the customer's agent: its host key must be
        # the one pinned for it in the known agents file, or confirmed here as ssh asks.
        host_key_check = _known_agent(place)
    brought = None
    if grant is not None:
        from toolkit.grants import load

        brought = load(grant)
    secret = parse_code(code) if code is not None else None
    if secret is None and brought is None and not sys.stdin.isatty():
        raise UsageError("No --code given and no terminal to ask for it.", hint="Pass --code CODE.")
    if place.route is not None:
        confirm_relay_host(place.route)  # before the passphrase and the code
    if brought is not None and fix is not None:
        from toolkit.grants.check import before_connecting

        before_connecting(brought, fix=fix)
    identity = load_identity(key, agent)
    return SessionRequest(
        place,
        identity,
        ticket,
        scopes,
        secret,
        allowed_signers=default_allowed_signers(),
        verdict=verdict,  # a summary line states it
        grant=brought,
        host_key_check=host_key_check,
    )


def _known_agent(place: Place) -> Callable[[bytes], None]:
    """The host key check of an agent reached with a grant, by the known agents file."""
    from toolkit.cli._pins import known_agents
    from toolkit.transport.pins import label_of

    pins = known_agents(ask=True)
    if place.route is not None and place.route.name is not None:
        return pins.checker(place.route.name, None, None)
    return pins.checker(label_of(place.host, place.port), None, None)


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
    from toolkit.errors import HostKeyRefused

    code = int(exc.exit_code)
    name = exc.reason if isinstance(exc, ConsentError) else _ERROR_CODES.get(exc.exit_code)
    error: dict[str, Any] = {"code": name or "failed", "message": exc.message, "hint": exc.hint}
    if _is_grant_refusal(exc):  # its reason is the grant's: expired, forged, other-host, ...
        error["code"] = "grant-refused"
        error["grant_refusal"] = exc.reason if isinstance(exc, ConsentError) else None
    elif isinstance(exc, HostKeyRefused):
        error["code"] = "host-key"
    tries = getattr(exc, "tries_left", None)
    error["tries_left"] = tries if isinstance(tries, int) else None
    return {"type": "error", "error": error, "exit_code": code}


def _is_grant_refusal(exc: ToolkitError) -> bool:
    from toolkit.grants.check import GrantRefused

    return isinstance(exc, GrantRefused)


__all__ = [
    "FINGERPRINT",
    "GrantOption",
    "HostKeyOption",
    "check_fingerprint",
    "error_line",
    "place_of",
    "session_request",
]
