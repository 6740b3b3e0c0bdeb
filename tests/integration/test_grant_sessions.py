"""Consent by a grant, end to end: real `toolkit share --accept-grants-from` and `toolkit run
--grant` processes on loopback, with the test plugin's fixes (tests.integration.test_run_fix).

The machine's owner is a key made here; its allowed_signers line (namespace toolkit-grant) is
what share is given. Each grant is issued in-process for the share's own host key, since a
share's host key lives as long as it does. Uses and revocations are set in the customer's
ledger, where share keeps them (the customer's data dir).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.integration.share_process import Share, sharing
from tests.integration.test_run_fix import Sides, fix_ops, recap, sides, summary
from tests.integration.test_share_connect import (
    customer_copy,
    events,
    technician_transcript,
    verified,
)
from toolkit.grants import Grant, GrantedProcedure, issue
from toolkit.grants.ledger import Ledger
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import blob_from_line, blob_of, fingerprint, public_line
from toolkit.identity.signer import KeySigner

OWNER = "owner@example.com"
NOW = datetime.now(UTC).replace(microsecond=0)


def _signer() -> KeySigner:
    return KeySigner(ed25519.Ed25519PrivateKey.generate())


def _other_fingerprint() -> str:
    return fingerprint(blob_of(ed25519.Ed25519PrivateKey.generate().public_key()))


def declaration_sha256(plugins: Path, name: str) -> str:
    """The digest of the test plugin's fix ``name``, as the customer's agent computes it."""
    spec = importlib.util.spec_from_file_location(
        f"grant_test_plugin_{abs(hash(plugins))}", plugins / "toolkit_run_test_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (fix,) = [p for p in module.plugin.procedures if p.name == name]
    return str(fix.sha256)


@dataclass
class World:
    sides: Sides
    owner: KeySigner
    issuers: Path  # share's --accept-grants-from
    technician_key: str  # the technician's public key line
    signers: Path  # the technician's allowed_signers (toolkit verify of their copy)

    @property
    def ledger(self) -> Ledger:
        return Ledger(self.sides.customer.data / "grants")

    def grant(self, share: Share, **changes: Any) -> Grant:
        """A grant for the fix mark on this share's host, for ticket T-1, valid now."""
        if "procedures" not in changes:
            assert self.sides.customer.path is not None
            mark = declaration_sha256(self.sides.customer.path, "mark")
            changes["procedures"] = [GrantedProcedure("fix", "mark", mark)]
        values: dict[str, Any] = {
            "issuer": OWNER,
            "technician": self.technician_key,
            "scopes": [],
            "hosts": [share.line()["host_key"]],
            "ticket": "T-1",
            "not_before": NOW - timedelta(minutes=5),
            "not_after": NOW + timedelta(hours=1),
            "uses": 3,
        }
        signer = changes.pop("signer", self.owner)
        values.update(changes)
        return issue(signer, **values)

    def write(self, grant: Grant | bytes, name: str = "grant.txt") -> Path:
        path = self.sides.technician.root / name
        path.write_bytes(grant if isinstance(grant, bytes) else grant.to_bytes())
        return path


def _owner(root: Path, signers: Path) -> tuple[KeySigner, Path, str, Path]:
    """The owner's key, share's --accept-grants-from file, the technician's key line."""
    owner = _signer()
    issuers = root / "issuers"
    issuers.write_text(f'{OWNER} namespaces="toolkit-grant" {public_line(owner.public_blob)}\n')
    (entry,) = AllowedSigners.from_file(signers).entries
    return owner, issuers, public_line(entry.key_blob), signers


@pytest.fixture
def world(tmp_path: Path, identity: Path, signers: Path) -> World:
    both = sides(tmp_path, identity, mine="1.0", theirs="1.0")
    return World(both, *_owner(tmp_path, signers))


def _sharing(world: World, *, terminal: bool = False) -> Any:
    customer = world.sides.customer
    return sharing(
        customer,
        "--policy", customer.root / "policy.toml",
        "--scope", "diagnostics", "--scope", "fixes",
        "--accept-grants-from", world.issuers,
        logs=world.sides.logs,
        terminal=terminal,
    )  # fmt: skip


@pytest.fixture
def share(world: World) -> Iterator[Share]:
    with _sharing(world) as running:
        yield running


def run_with(
    world: World, share: Share, grant: Path, *args: str, fix: str = "mark", host_key: str = ""
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    done = world.sides.technician.toolkit(
        "run", fix, share.address, "--grant", grant,
        "--host-key", host_key or share.line()["host_key"],
        "--ticket", "T-1", "-p", "name=marked", "--json", *args,
    )  # fmt: skip
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return done, lines


def refused_with(done: subprocess.CompletedProcess[str], lines: list[dict[str, Any]]) -> str:
    """The grant refusal a run that never started its session ended with (exit 3)."""
    assert done.returncode == 3, done.stderr
    (line,) = lines
    assert line["error"]["code"] == "grant-refused", line
    assert line["result"] == "refused"
    return str(line["error"]["grant_refusal"])


def consent_event(path: Path) -> dict[str, Any]:
    first = events(path)[0]
    assert first["type"] == "consent"
    return first


# -- a valid grant ----------------------------------------------------------------------


def test_a_valid_grant_runs_the_fix_with_no_code_and_no_question(world: World) -> None:
    # On a terminal and without --yes: any question would wait for an answer that never comes.
    with _sharing(world, terminal=True) as share:
        grant = world.grant(share)
        done, lines = run_with(world, share, world.write(grant))
        assert share.wait() == 0  # share serves one session, then ends on its own
        shown = share.stderr()
    assert done.returncode == 0, (done.stderr, shown)
    assert (world.sides.customer.home / "marked").exists()
    result = summary(lines)
    assert (result["result"], result["verdict"]) == ("changed", "SEALED")
    assert "Allow" not in shown and "[y/n]" not in shown.lower()
    assert f"with the grant {grant.id}" in done.stderr
    assert world.ledger.used(grant.id) == 1
    # The customer's screen said who came in by which grant, and each step.
    assert f"grant {grant.id} by {OWNER} (use 1 of 3)" in shown
    for step in ("check", "apply", "verify"):
        assert f"fix mark ({step}) -> exit 0 (grant {grant.id})" in shown
    # Both copies hold the whole grant, its verdict and the grant's approval, and verify.
    ours = technician_transcript(world.sides.technician)
    theirs = customer_copy(shown)
    verified(world.sides.technician, ours, world.signers)
    verified(world.sides.customer, theirs, theirs.with_name(theirs.name + ".allowed_signers"))
    for copy in (ours, theirs):
        consent = consent_event(copy)
        assert consent["method"] == "grant"
        recorded = consent["grant"]
        assert recorded["text"].encode() == grant.to_bytes()
        assert (recorded["id"], recorded["sha256"]) == (grant.id, grant.sha256)
        assert (recorded["issuer"], recorded["use"], recorded["uses"]) == (OWNER, 1, 3)
        assert fix_ops(copy) == [
            ("fix", "check"),
            ("fix", "apply"),
            ("fix", "verify"),
            ("fix", "check"),
        ]
        (approval,) = [e for e in events(copy) if e["type"] == "approval"]
        assert (approval["by"], approval["grant"]) == ("grant", grant.id), approval
    assert consent_event(theirs)["grant"]["verdict"] == f"accepted by {OWNER}"
    # The agent's grant history says who used it (the grant names a key: that key, not
    # the email the technician claims beside it), for which ticket, and how it ended.
    (used,) = world.ledger.history(grant.id)
    key = fingerprint(blob_from_line(world.technician_key))
    assert (used.number, used.technician, used.ticket) == (1, key, "T-1")
    assert used.transcript == str(theirs) and used.outcome is not None
    assert "completed" in used.outcome


# -- refused before the session ---------------------------------------------------------


def _past(hours: int) -> datetime:
    return NOW - timedelta(hours=hours)


@pytest.mark.parametrize(
    "reason, changes",
    [
        (
            "expired",
            {"not_before": _past(3), "not_after": _past(1), "now": _past(4)},
        ),
        (
            "not-yet-valid",
            {"not_before": NOW + timedelta(hours=1), "not_after": NOW + timedelta(hours=2)},
        ),
        ("other-host", {"hosts": [_other_fingerprint(), "web-01"]}),
        ("other-ticket", {"ticket": "T-2"}),
        ("untrusted-issuer", {"signer": _signer()}),
    ],
)
def test_a_grant_is_refused_with_its_reason(
    world: World, share: Share, reason: str, changes: dict[str, Any]
) -> None:
    grant = world.grant(share, **changes)
    done, lines = run_with(world, share, world.write(grant))
    assert refused_with(done, lines) == reason
    assert "refused the grant" in done.stderr
    assert not (world.sides.customer.home / "marked").exists()
    assert world.ledger.used(grant.id) == 0
    assert "refused 127.0.0.1:" in share.stderr()


def test_a_grant_for_another_technician_is_refused(world: World, share: Share) -> None:
    someone = public_line(_signer().public_blob)
    done, lines = run_with(world, share, world.write(world.grant(share, technician=someone)))
    assert refused_with(done, lines) == "other-technician"


def test_a_forged_grant_one_byte_changed_is_refused(world: World, share: Share) -> None:
    data = world.grant(share, uses=1).to_bytes()
    forged = data.replace(b"\nuses: 1\n", b"\nuses: 9\n")
    assert forged != data and len(forged) == len(data)
    done, lines = run_with(world, share, world.write(forged))
    assert refused_with(done, lines) == "forged"


def test_a_used_up_grant_is_refused(world: World, share: Share) -> None:
    grant = world.grant(share, uses=1)
    world.ledger.spend(grant, technician="x@example.com", ticket="T-1", session="s", peer="p",
                       now=NOW)  # fmt: skip
    done, lines = run_with(world, share, world.write(grant))
    assert refused_with(done, lines) == "used-up"
    assert world.ledger.used(grant.id) == 1


def test_a_revoked_grant_is_refused(world: World, share: Share) -> None:
    grant = world.grant(share)
    assert world.ledger.revoke(grant.id, reason="laptop stolen", now=NOW)
    done, lines = run_with(world, share, world.write(grant))
    assert refused_with(done, lines) == "revoked"


def test_a_refused_grant_costs_the_code_nothing(world: World, share: Share) -> None:
    grant = world.grant(share, ticket="T-2")
    for _ in range(3):  # as many as the code has tries
        done, lines = run_with(world, share, world.write(grant))
        assert refused_with(done, lines) == "other-ticket"
    done = world.sides.technician.toolkit(
        "run", "mark", share.address, "--code", share.code, "--ticket", "T-1",
        "-p", "name=marked", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (world.sides.customer.home / "marked").exists()


# -- refused by the technician, before anything is sent ----------------------------------


def test_a_changed_host_key_is_refused_before_the_grant_is_sent(world: World, share: Share) -> None:
    grant = world.grant(share)
    pin = _other_fingerprint()
    done, lines = run_with(world, share, world.write(grant), host_key=pin)
    assert done.returncode == 3, done.stderr
    (line,) = lines
    assert line["error"]["code"] == "host-key"
    assert f"not the pinned {pin}" in done.stderr
    # The agent never saw the grant: no use spent, nothing said of a grant, no refusal.
    assert world.ledger.used(grant.id) == 0
    shown = share.stderr()
    assert grant.id not in shown and "grant" not in shown
    assert not (world.sides.customer.home / "marked").exists()


def test_a_grant_without_a_pinned_host_key_is_refused_unless_known_agents_pins_it(
    world: World, share: Share
) -> None:
    path = world.write(world.grant(share))
    args = ("run", "mark", share.address, "--grant", path, "--ticket", "T-1", "-p", "name=marked")
    done = world.sides.technician.toolkit(*args)  # no terminal to ask on
    assert done.returncode == 3, done.stderr
    assert "which is not pinned, and nobody confirmed it" in done.stderr
    assert world.ledger.used(Grant.parse(path.read_bytes()).id) == 0
    # The known agents file pins it, as ssh's known_hosts would: the run goes ahead.
    known = world.sides.technician.root / "config" / "toolkit" / "known_agents"
    known.parent.mkdir(parents=True, exist_ok=True)
    known.write_text(f"{share.address} {share.line()['host_key']}\n")
    done = world.sides.technician.toolkit(*args)
    assert done.returncode == 0, done.stderr
    assert world.ledger.used(Grant.parse(path.read_bytes()).id) == 1


# -- refused per operation ----------------------------------------------------------------


def test_a_fix_the_grant_does_not_name_is_refused(world: World, share: Share) -> None:
    assert world.sides.customer.path is not None
    other = declaration_sha256(world.sides.customer.path, "half-mark")
    grant = world.grant(share, procedures=[GrantedProcedure("fix", "half-mark", other)])
    path = world.write(grant)
    # toolkit run sees it first: no agent would run the fix, and each would spend a use.
    done, _ = run_with(world, share, path)
    assert done.returncode == 2, done.stderr
    assert f"The grant {grant.id} does not name the fix mark (it names half-mark)" in done.stderr
    assert world.ledger.used(grant.id) == 0
    # Asked for anyway (a session's batch), the agent refuses it: its own check.
    batch = world.sides.technician.root / "batch.txt"
    batch.write_text("fix mark -p name=marked\n")
    done = world.sides.technician.toolkit(
        "connect", share.address, "--grant", path, "--host-key", share.line()["host_key"],
        "--ticket", "T-1", "--scope", "diagnostics", "--scope", "fixes", "--batch", batch,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"refused: the grant {grant.id} does not name the fix mark" in done.stderr
    assert not (world.sides.customer.home / "marked").exists()
    assert world.ledger.used(grant.id) == 1  # consent passed: the use is spent
    theirs = customer_copy(share.stderr())
    assert [e["op"] for e in events(theirs) if e["type"] == "refusal"] == ["fix"]


def test_a_fix_named_with_another_declaration_is_refused(world: World, share: Share) -> None:
    grant = world.grant(share, procedures=[GrantedProcedure("fix", "mark", "0" * 64)])
    done, lines = run_with(world, share, world.write(grant))
    assert done.returncode == 3, done.stderr
    assert f"the grant {grant.id} names mark with another declaration (sha256 {'0' * 64}" in (
        done.stderr
    )
    assert not (world.sides.customer.home / "marked").exists()
    assert summary(lines)["result"] == "refused"
    assert recap(done.stderr).endswith("(exit 3: refused)") or "exit 3" in recap(done.stderr)


def test_the_technician_cannot_bring_a_code_and_a_grant(world: World, share: Share) -> None:
    done = world.sides.technician.toolkit(
        "run", "mark", share.address, "--grant", world.write(world.grant(share)),
        "--host-key", share.line()["host_key"], "--code", share.code, "--ticket", "T-1",
        "-p", "name=marked",
    )  # fmt: skip
    assert done.returncode == 2 and "not both" in done.stderr, done.stderr


# -- connect, and a technician named by principal ----------------------------------------


def test_connect_with_a_grant_runs_a_batch_within_its_scope(world: World, share: Share) -> None:
    grant = world.grant(share, procedures=[], scopes=["diagnostics"])
    batch = world.sides.technician.root / "batch.txt"
    batch.write_text("read ~/notes.txt\nrun uname -a\nfix mark -p name=marked\n")
    done = world.sides.technician.toolkit(
        "connect", share.address, "--grant", world.write(grant),
        "--host-key", share.line()["host_key"], "--ticket", "T-1",
        "--scope", "diagnostics", "--scope", "fixes", "--batch", batch, "--json",
    )  # fmt: skip
    assert done.returncode == 3, done.stderr  # the fix is refused: the grant names none
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r.get("status") for r in results[:3]] == ["ok", "ok", "refused"], results
    assert not (world.sides.customer.home / "marked").exists()
    ours = technician_transcript(world.sides.technician)
    assert consent_event(ours)["grant"]["id"] == grant.id
    assert consent_event(ours)["granted"] == ["diagnostics"]  # the grant gives no fixes


def test_a_technician_named_by_principal_needs_the_issuers_trust(world: World) -> None:
    (entry,) = AllowedSigners.from_file(world.signers).entries
    vouched = f'alice@example.com namespaces="toolkit-consent" {public_line(entry.key_blob)}\n'
    for trusted, expected in ((False, 3), (True, 0)):
        if trusted:
            world.issuers.write_text(world.issuers.read_text() + vouched)
        with _sharing(world) as share:
            grant = world.grant(share, technician="alice@example.com")
            done, lines = run_with(world, share, world.write(grant))
        assert done.returncode == expected, done.stderr
        if not trusted:
            assert refused_with(done, lines) == "other-technician"
    assert (world.sides.customer.home / "marked").exists()
    # Vouched for as that principal: the ledger names the principal.
    assert world.ledger.history(grant.id)[-1].technician == "alice@example.com"


def test_a_brought_fix_the_grant_names_by_digest_runs_unasked(
    tmp_path: Path, identity: Path, signers: Path
) -> None:
    # The customer's machine lacks the fix: the technician brings its declaration, which
    # otherwise only a person at the customer's screen may approve (never --yes).
    world = World(sides(tmp_path, identity, mine="1.0", theirs=None), *_owner(tmp_path, signers))
    assert world.sides.technician.path is not None
    mine = declaration_sha256(world.sides.technician.path, "mark")
    with _sharing(world, terminal=True) as share:
        grant = world.grant(share, procedures=[GrantedProcedure("fix", "mark", mine)])
        done, lines = run_with(world, share, world.write(grant))
        assert share.wait() == 0
        shown = share.stderr()
    assert done.returncode == 0, (done.stderr, shown)
    result = summary(lines)
    assert (result["result"], result["brought"]) == ("changed", True)
    assert "Allow" not in shown
    assert (world.sides.customer.home / "marked").exists()
    approvals = [e for e in events(customer_copy(shown)) if e["type"] == "approval"]
    assert approvals and {a["grant"] for a in approvals} == {grant.id}
