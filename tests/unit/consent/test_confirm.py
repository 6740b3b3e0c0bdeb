"""Key confirmation: transcripts, MACs, the two confirmation machines, the signature."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.consent.fakes import Event, RecordingConfirmListener, host_key, new_signer, state
from toolkit.consent import Scope
from toolkit.consent._confirm import (
    CONSENT_NAMESPACE,
    MAC_LENGTH,
    AgentConfirmation,
    ConfirmState,
    TechnicianConfirmation,
    Transcript,
    agent_mac,
    sign_transcript,
    technician_mac,
    verify_transcript_signature,
)
from toolkit.consent._pake import PakeKey
from toolkit.consent.errors import HandshakeOutOfOrder, IdentityProofFailed
from toolkit.identity import sshsig

KEY = PakeKey(bytes(32))
OTHER = PakeKey(bytes([1]) * 32)
DIAG = frozenset({Scope.DIAGNOSTICS})


def transcript(**changes: object) -> Transcript:
    base = Transcript(
        technician_pake=b"A" + bytes(32),
        agent_pake=b"B" + bytes(32),
        host_key=b"host",
        technician_key=b"tech",
        name="Alice Tech",
        email="alice@example.com",
        ticket="T-1",
        requested=DIAG,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_transcript_encoding_is_unambiguous() -> None:
    # Moving bytes across a field boundary must change the encoding.
    a = transcript(name="Alice", email="x@example.com")
    b = transcript(name="Alicex", email="@example.com")
    assert a.to_bytes() != b.to_bytes()
    assert transcript().to_bytes() == transcript().to_bytes()
    order = transcript(requested=frozenset({Scope.SHELL, Scope.DIAGNOSTICS}))
    assert b"diagnostics,shell" in order.to_bytes()


@pytest.mark.parametrize(
    "field, value",
    [
        ("technician_pake", b"A" + b"\x01" * 32),
        ("agent_pake", b"B" + b"\x01" * 32),
        ("host_key", b"mitm"),
        ("technician_key", b"other"),
        ("name", "Mallory"),
        ("email", "mallory@example.com"),
        ("ticket", "T-2"),
        ("requested", frozenset({Scope.SHELL})),
    ],
)
def test_every_field_is_covered_by_both_macs(field: str, value: object) -> None:
    changed = transcript(**{field: value})
    assert technician_mac(KEY, changed) != technician_mac(KEY, transcript())
    assert agent_mac(KEY, changed, DIAG) != agent_mac(KEY, transcript(), DIAG)


def test_macs_differ_by_direction_key_and_grant() -> None:
    t = transcript()
    assert len(technician_mac(KEY, t)) == MAC_LENGTH
    assert technician_mac(KEY, t) != agent_mac(KEY, t, frozenset())
    assert technician_mac(KEY, t) != technician_mac(OTHER, t)
    assert agent_mac(KEY, t, DIAG) != agent_mac(KEY, t, frozenset({Scope.FIXES}))


def test_technician_sends_first_then_checks() -> None:
    events: list[Event] = []
    conf = TechnicianConfirmation(KEY, transcript(), RecordingConfirmListener(events))
    with pytest.raises(HandshakeOutOfOrder):
        conf.verified_key()
    mac = conf.send()
    assert mac == technician_mac(KEY, transcript())
    assert state(conf) is ConfirmState.SENT
    assert conf.send() == mac  # non-event: the same MAC
    with pytest.raises(HandshakeOutOfOrder):
        conf.verified_key()  # sending ours proves nothing about the peer
    conf.check(agent_mac(KEY, transcript(), DIAG), DIAG)
    assert events == [("confirm.confirmed",)]
    assert state(conf) is ConfirmState.VERIFIED
    assert conf.verified_key() is KEY
    conf.check(b"junk", DIAG)  # late: no effect
    assert events == [("confirm.confirmed",)]


@pytest.mark.parametrize(
    "mac, granted",
    [
        (agent_mac(OTHER, transcript(), DIAG), DIAG),  # wrong key (wrong code)
        (agent_mac(KEY, transcript(host_key=b"mitm"), DIAG), DIAG),  # other host key
        (agent_mac(KEY, transcript(), DIAG), frozenset({Scope.SHELL})),  # grant changed
        (technician_mac(KEY, transcript()), DIAG),  # our own MAC reflected
        (b"", DIAG),
    ],
)
def test_technician_mismatch(mac: bytes, granted: frozenset[Scope]) -> None:
    events: list[Event] = []
    conf = TechnicianConfirmation(KEY, transcript(), RecordingConfirmListener(events))
    conf.send()
    conf.check(mac, granted)
    assert events == [("confirm.mismatch",)]
    assert state(conf) is ConfirmState.FAILED
    with pytest.raises(HandshakeOutOfOrder):
        conf.send()
    with pytest.raises(HandshakeOutOfOrder):
        conf.verified_key()


def test_technician_refuses_an_agent_mac_before_its_own() -> None:
    events: list[Event] = []
    conf = TechnicianConfirmation(KEY, transcript(), RecordingConfirmListener(events))
    conf.check(agent_mac(KEY, transcript(), DIAG), DIAG)
    assert events == [("confirm.mismatch",)]
    assert state(conf) is ConfirmState.FAILED


def test_agent_never_sends_before_the_technician_checks_out() -> None:
    events: list[Event] = []
    conf = AgentConfirmation(KEY, transcript(), RecordingConfirmListener(events))
    with pytest.raises(HandshakeOutOfOrder, match="offline"):
        conf.send(DIAG)
    assert state(conf) is ConfirmState.UNVERIFIED and events == []
    conf.check(technician_mac(KEY, transcript()))
    assert events == [("confirm.confirmed",)]
    assert conf.verified_key() is KEY
    mac = conf.send(DIAG)
    assert mac == agent_mac(KEY, transcript(), DIAG)
    assert state(conf) is ConfirmState.SENT
    assert conf.send(DIAG) == mac
    conf.check(b"junk")  # late: no effect
    assert events == [("confirm.confirmed",)]


def test_agent_mismatch_never_releases_its_mac() -> None:
    events: list[Event] = []
    conf = AgentConfirmation(KEY, transcript(), RecordingConfirmListener(events))
    conf.check(technician_mac(OTHER, transcript()))
    assert events == [("confirm.mismatch",)]
    with pytest.raises(HandshakeOutOfOrder):
        conf.send(DIAG)
    conf.check(technician_mac(KEY, transcript()))  # a second chance would be a free guess
    assert events == [("confirm.mismatch",)]
    assert state(conf) is ConfirmState.FAILED


def test_signature_binds_the_key_to_the_transcript() -> None:
    signer = new_signer()
    t = transcript(technician_key=signer.public_blob, host_key=host_key())
    blob = sign_transcript(signer, t)
    assert sshsig.SSHSig.from_bytes(blob).namespace == CONSENT_NAMESPACE
    verify_transcript_signature(blob, t)
    with pytest.raises(IdentityProofFailed):
        verify_transcript_signature(blob, dataclasses.replace(t, ticket="T-2"))
    other = new_signer()
    with pytest.raises(IdentityProofFailed):  # signed by a key other than the one named
        verify_transcript_signature(sign_transcript(other, t), t)
    wrong_ns = sshsig.sign(signer, t.to_bytes(), "file").to_bytes()
    with pytest.raises(IdentityProofFailed):
        verify_transcript_signature(wrong_ns, t)
    with pytest.raises(IdentityProofFailed):
        verify_transcript_signature(b"garbage", t)
