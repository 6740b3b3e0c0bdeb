"""Approval requests, decisions, approvers: no scope implies another."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable

import pytest

from tests.unit.consent.fakes import host_key, new_signer
from toolkit.consent import (
    ApprovalRequest,
    AutoApprove,
    Consent,
    Decision,
    Scope,
    get_decision,
    scope_names,
    scopes,
)
from toolkit.identity.keys import fingerprint

D, F, S = Scope.DIAGNOSTICS, Scope.FIXES, Scope.SHELL
KEY = new_signer().public_blob


def request(requested: set[Scope], offered: set[Scope]) -> ApprovalRequest:
    return ApprovalRequest(
        name="Alice Tech",
        email="alice@example.com",
        key=KEY,
        trusted=False,
        ticket="T-1",
        requested=frozenset(requested),
        offered=frozenset(offered),
    )


def test_grant_defaults_to_requested_and_offered() -> None:
    req = request({D, F}, {D})
    assert req.grantable == {D}
    assert req.grant() == Decision(True, frozenset({D}))
    assert req.fingerprint == fingerprint(KEY)


@pytest.mark.parametrize(
    "requested, offered",
    [({D, F}, {D, F}), ({F}, {D, F, S}), ({D}, {D, F, S}), ({S}, {D, F})],
)
def test_shell_is_never_implied(requested: set[Scope], offered: set[Scope]) -> None:
    req = request(requested, offered)
    assert S not in req.grantable
    with pytest.raises(ValueError):
        req.grant({S})


def test_shell_when_asked_and_offered() -> None:
    assert request({D, S}, {D, S}).grant().granted == {D, S}
    assert request({D, S}, {D, S}).grant({D}).granted == {D}


def test_cannot_grant_what_was_not_asked_or_offered() -> None:
    req = request({D}, {D, F})
    with pytest.raises(ValueError, match="fixes"):
        req.grant({F})
    with pytest.raises(ValueError):
        req.grant(set())
    with pytest.raises(ValueError):
        Decision(True, frozenset({F})).check_against(req)
    Decision(True, frozenset({D})).check_against(req)


def test_decision_invariants() -> None:
    assert Decision.deny() == Decision(False) == request({D}, {D}).decline()
    with pytest.raises(ValueError):
        Decision(True, frozenset())
    with pytest.raises(ValueError):
        Decision(False, frozenset({D}))
    with pytest.raises(TypeError):
        Decision(True, {D})  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Decision(True, frozenset({"shell"}))  # type: ignore[arg-type]


def test_scope_names() -> None:
    assert scopes(["shell", "diagnostics", Scope.FIXES]) == {D, F, S}
    assert scope_names({S, D}) == ["diagnostics", "shell"]
    with pytest.raises(ValueError, match="known: diagnostics, fixes, shell"):
        scopes(["root"])


def test_auto_approve_grants_as_asked_and_warns_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    approver = AutoApprove()
    with caplog.at_level(logging.WARNING, logger="toolkit.consent"):
        assert approver.ask(request({D, S}, {D})).granted == {D}
        # Nothing asked for is offered: a no that says so (the technician hears which).
        assert approver.ask(request({S}, {D})) == Decision(False, reason="nothing-offered")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "without asking" in warnings[0].getMessage()
    assert fingerprint(KEY) in warnings[0].getMessage()


class SyncApprover:
    def __init__(self, answer: object) -> None:
        self.answer = answer
        self.asked: list[ApprovalRequest] = []

    def ask(self, request: ApprovalRequest) -> Decision:
        self.asked.append(request)
        return self.answer  # type: ignore[return-value]


class AsyncApprover:
    async def _answer(self, request: ApprovalRequest) -> Decision:
        await asyncio.sleep(0)
        return request.grant()

    def ask(self, request: ApprovalRequest) -> Awaitable[Decision]:
        return self._answer(request)


def test_get_decision_takes_sync_and_async_approvers() -> None:
    req = request({D}, {D})
    sync = SyncApprover(req.grant())
    assert asyncio.run(get_decision(sync, req)) == req.grant()
    assert sync.asked == [req]
    assert asyncio.run(get_decision(AsyncApprover(), req)) == req.grant()
    assert asyncio.run(get_decision(SyncApprover("yes"), req)) == Decision.deny()
    assert asyncio.run(get_decision(SyncApprover(True), req)) == Decision.deny()


def test_consent_event_names_everything_but_secrets() -> None:
    hk = host_key()
    consent = Consent(
        name="Alice Tech",
        email="alice@example.com",
        key=KEY,
        ticket="T-1",
        requested=frozenset({D, F}),
        granted=frozenset({D}),
        host_key=hk,
        trusted=True,
    )
    assert consent.as_event() == {
        "method": "spake2",
        "result": "approved",
        "technician": "Alice Tech",
        "email": "alice@example.com",
        "key_fingerprint": fingerprint(KEY),
        "trusted": True,
        "ticket": "T-1",
        "requested": ["diagnostics", "fixes"],
        "granted": ["diagnostics"],
        "host_key_fingerprint": fingerprint(hk),
    }
    assert "key=" not in repr(consent)
