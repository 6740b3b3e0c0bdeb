"""One host's session, the parts that need no agent: its request, its refusal reasons."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import new_signer
from toolkit.consent import Scope
from toolkit.consent.errors import WrongCode
from toolkit.errors import ConsentRefused, HostKeyRefused
from toolkit.fleet.inventory import Host
from toolkit.fleet.session import refusal_reason, request_for
from toolkit.grants.check import REFUSALS, GrantRefused
from toolkit.identity.store import Identity
from toolkit.session.workflow import SessionRequest

WHO = Identity("Alice Tech", "alice@example.com", new_signer(), "test")
SCOPES = frozenset({Scope.DIAGNOSTICS})


def _request(host: Host, **kwargs: Any) -> SessionRequest:
    args: dict[str, Any] = {
        "identity": WHO,
        "ticket": "OPS-1",
        "scopes": SCOPES,
        "grant": None,
        "host_key_check": None,
        "allowed_signers": None,
    }
    args.update(kwargs)
    return request_for(host, **args)


def test_a_direct_host_is_its_address_with_no_code() -> None:
    request = _request(Host("web-01", address=("10.0.0.5", 7022)))
    assert (request.place.host, request.place.port, request.place.route) == ("10.0.0.5", 7022, None)
    assert (request.code, request.ticket, request.scopes) == (None, "OPS-1", SCOPES)


def test_the_grant_and_the_pin_go_into_the_request() -> None:
    def check(blob: bytes) -> None:
        return None

    grant: Any = object()
    request = _request(
        Host("web-01", address=("10.0.0.5", 7022)), grant=grant, host_key_check=check
    )
    assert request.grant is grant and request.host_key_check is check and request.code is None


def test_a_relay_host_is_reached_by_its_name() -> None:
    host = Host("db-01", relay="relay.example", relay_name="db-one")
    request = _request(host)
    route = request.place.route
    assert route is not None and route.name == "db-one"
    assert request.place.shown(None) == f"the agent db-one at the relay {route.address}"


@pytest.mark.parametrize("word", REFUSALS)
def test_a_grants_refusal_is_named_by_its_word(word: str) -> None:
    assert refusal_reason(GrantRefused(word, "The grant g-x says no.")) == word


def test_other_refusals_keep_their_own_reason() -> None:
    assert refusal_reason(WrongCode("The code did not match.", tries_left=2)) == WrongCode.reason
    assert refusal_reason(HostKeyRefused("The agent offered the host key X, but ...")) == "host-key"
    assert refusal_reason(ConsentRefused("Something else.")) == "refused"
