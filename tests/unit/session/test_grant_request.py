"""A session asked with a grant: no code, the agent's host key pinned, no relay rendezvous."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.helpers import new_signer
from tests.session_support import identity
from toolkit.consent import Scope, parse_code
from toolkit.errors import HostKeyRefused, UsageError
from toolkit.grants import Grant, issue
from toolkit.identity.keys import fingerprint, public_line
from toolkit.session.workflow import Place, SessionRequest
from toolkit.transport.relay import RelayAddress, RelayRoute
from toolkit.transport.ssh import pinned

NOW = datetime.now(UTC)
HERE = Place("127.0.0.1", 7022)


def a_grant() -> Grant:
    return issue(
        new_signer(), issuer="owner@example.com",
        technician=public_line(new_signer().public_blob), procedures=[], scopes=["diagnostics"],
        hosts=["web-01"], ticket="T-1", not_before=NOW - timedelta(minutes=1),
        not_after=NOW + timedelta(hours=1), uses=1,
    )  # fmt: skip


def request(place: Place = HERE, **fields: object) -> SessionRequest:
    return SessionRequest(
        place,
        identity(),
        "T-1",
        frozenset({Scope.DIAGNOSTICS}),
        **fields,  # type: ignore[arg-type]
    )


def test_a_grant_needs_the_host_key_pinned_and_no_code() -> None:
    check = pinned("SHA256:" + "A" * 43)
    with pytest.raises(UsageError, match="host key pinned"):
        request(grant=a_grant())
    with pytest.raises(UsageError, match="not both"):
        request(grant=a_grant(), host_key_check=check, code=parse_code("123-456-789"))
    assert request(grant=a_grant(), host_key_check=check).code is None


def test_a_grant_cannot_use_a_relays_rendezvous() -> None:
    route = RelayRoute(RelayAddress("relay.example", port=22))
    with pytest.raises(UsageError, match="rendezvous"):
        request(Place("relay.example", 0, route), grant=a_grant(), host_key_check=pinned("x"))


def test_the_pin_takes_only_its_own_key() -> None:
    key = new_signer().public_blob
    pinned(fingerprint(key))(key)
    with pytest.raises(HostKeyRefused, match="not the pinned"):
        pinned(fingerprint(key))(new_signer().public_blob)


def test_an_agent_that_never_answers_a_grant_is_unreachable_soon(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A port that accepts and says nothing: with a grant nobody is asked, so the technician
    gives up after the grant's login timeout, not the ten minutes a customer may take."""
    import asyncio

    from toolkit.consent import Scope
    from toolkit.errors import TransportError
    from toolkit.transport import ssh

    monkeypatch.setattr(ssh, "GRANT_LOGIN_TIMEOUT", 0.5)

    async def main() -> None:
        held: list[asyncio.StreamWriter] = []

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            held.append(writer)  # never a word back

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        ask = ssh.ConsentAsk(
            identity(), "T-1", frozenset({Scope.DIAGNOSTICS}), None, grant=a_grant(),
            host_key_check=pinned("SHA256:" + "A" * 43),
        )  # fmt: skip
        try:
            with pytest.raises(TransportError, match="Cannot reach the agent"):
                await asyncio.wait_for(ssh.connect("127.0.0.1", port, ask, connect_timeout=0.5), 20)
        finally:
            for writer in held:
                writer.close()
            server.close()

    asyncio.run(main())
