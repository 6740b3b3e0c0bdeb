"""The grant's text format: round trip, every refusal of the strict parser, and
ssh-keygen as the oracle for the signature in both directions."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers import new_signer, run
from toolkit.errors import UsageError
from toolkit.grants import (
    MAX_GRANT_BYTES,
    NAMESPACE,
    Grant,
    GrantedProcedure,
    GrantError,
    issue,
    load,
)
from toolkit.grants.model import new_id, render_body
from toolkit.identity import sshsig
from toolkit.identity.keys import blob_from_line, fingerprint, public_line
from toolkit.identity.signer import KeySigner, key_file_signer

NOW = datetime(2026, 12, 3, 18, 0, 0, tzinfo=UTC)
ISSUER = "owner@example.com"
DIGEST = "ab" * 32
FIX = GrantedProcedure("fix", "restart-unit", DIGEST)
HOST_FP = "SHA256:" + "A" * 43


def make(signer: KeySigner | None = None, /, **overrides: object) -> Grant:
    values: dict[str, object] = {
        "issuer": ISSUER,
        "technician": "alice@example.com",
        "procedures": [FIX],
        "scopes": ["diagnostics"],
        "hosts": [HOST_FP, "web-01"],
        "ticket": "T-17",
        "not_before": NOW,
        "not_after": NOW + timedelta(hours=8),
        "uses": 3,
        "now": NOW,
    }
    values.update(overrides)
    return issue(signer or new_signer(), **values)  # type: ignore[arg-type]


def test_issue_writes_the_documented_body_and_parses_back_identically() -> None:
    signer = new_signer()
    tech = public_line(new_signer().public_blob)
    grant = make(signer, technician=tech)
    lines = grant.body.decode().splitlines()
    assert lines[0] == "toolkit-grant v1"
    assert lines[1].startswith("id: g-") and len(lines[1]) == len("id: g-") + 26
    assert lines[2:] == [
        "issued: 2026-12-03T18:00:00Z",
        f"issuer: {ISSUER}",
        f"technician: {tech}",
        f"procedure: fix restart-unit sha256:{DIGEST}",
        "scope: diagnostics",
        f"host: {HOST_FP}",
        "host: web-01",
        "ticket: T-17",
        "not-before: 2026-12-03T18:00:00Z",
        "not-after: 2026-12-04T02:00:00Z",
        "uses: 3",
    ]
    data = grant.to_bytes()
    assert data.startswith(grant.body)
    assert data[len(grant.body) :].startswith(b"-----BEGIN SSH SIGNATURE-----\n")
    again = Grant.parse(data)
    assert again == grant
    assert again.to_bytes() == data
    assert again.sha256 == hashlib.sha256(data).hexdigest()
    assert again.technician_key == blob_from_line(tech)
    assert again.signer_key == signer.public_blob
    assert again.scopes == frozenset({"diagnostics"})
    assert again.names("fix", "restart-unit") == FIX
    assert again.names("diagnostic", "restart-unit") is None
    assert again.names("fix", "other") is None
    sig = sshsig.SSHSig.from_bytes(again.signature)
    assert (sig.namespace, sig.hash_algorithm) == (NAMESPACE, "sha512")
    assert sshsig.verify(sig, again.body, NAMESPACE) == signer.public_blob


def test_a_principal_technician_has_no_key_and_ids_are_fresh() -> None:
    grant = make()
    assert grant.technician_key is None
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("g-") and len(i) == 28 for i in ids)
    assert {c for i in ids for c in i[2:]} <= set("abcdefghijklmnopqrstuvwxyz234567")


def test_load_reads_a_file_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    grant = make()
    path = tmp_path / "g.grant"
    path.write_bytes(grant.to_bytes())
    assert load(path) == grant
    with pytest.raises(UsageError, match="no such file"):
        load(tmp_path / "missing")
    with pytest.raises(UsageError, match="directory"):
        load(tmp_path)
    big = tmp_path / "big"
    big.write_bytes(b"x" * (MAX_GRANT_BYTES + 1))
    with pytest.raises(UsageError, match="larger than 48 KiB"):
        load(big)
    with pytest.raises(UsageError, match="character device"):
        load(Path("/dev/zero"))


# -- the parser's refusals ------------------------------------------------------------------


def _replace(old: str, new: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return edit


def _body() -> str:
    return render_body(
        id="g-" + "a" * 26,
        issued=NOW,
        issuer=ISSUER,
        technician="alice@example.com",
        procedures=[FIX],
        scopes=["diagnostics"],
        hosts=[HOST_FP],
        ticket="T-17",
        not_before=NOW,
        not_after=NOW + timedelta(hours=1),
        uses=1,
    ).decode()


REFUSED: list[tuple[str, Callable[[str], str], str]] = [
    ("magic", _replace("toolkit-grant v1", "toolkit-grant v2"), "does not start with"),
    ("unknown key", _replace("ticket: T-17\n", "ticket: T-17\ncolour: red\n"), "'colour' is not"),
    ("no space", _replace("uses: 1", "uses:1"), "write it as 'uses: VALUE'"),
    ("order", _replace("issued: 2026-12-03T18:00:00Z\nissuer: owner@example.com\n",
                       "issuer: owner@example.com\nissued: 2026-12-03T18:00:00Z\n"),
     "line 4: issued comes too late"),
    ("duplicate single", _replace("ticket: T-17\n", "ticket: T-17\nticket: T-18\n"),
     "line 10: a second ticket line"),
    ("repeatable not in a row", _replace(f"host: {HOST_FP}\n",
                                         f"host: {HOST_FP}\nticket: T-17\nhost: web-02\n"),
     "line 10: host comes too late"),
    ("missing", _replace("uses: 1\n", ""), "has no uses line"),
    ("no host", _replace(f"host: {HOST_FP}\n", ""), "has no host line"),
    ("nothing granted", _replace(f"procedure: fix restart-unit sha256:{DIGEST}\n"
                                 "scope: diagnostics\n", ""), "grants nothing"),
    ("CR", _replace("ticket: T-17\n", "ticket: T-17\r\n"), "line 9: a grant has LF line ends only"),
    ("escape", _replace("issuer: owner", "issuer: \x1b[2Jowner"), "line 4: it holds a control"),
    ("zero width", _replace("issuer: owner", "issuer: own\u200ber"), "line 4: it holds a control"),
    ("bidi", _replace("ticket: T-17", "ticket: T-\u202e17"), "line 9: it holds a control"),
    ("nbsp", _replace("ticket: T-17", "ticket: T-17\u00a0"), "line 9: it holds a control"),
    ("trailing space", _replace("uses: 1", "uses: 1 "), "leading or trailing spaces"),
    ("not utf-8", _replace("ticket: T-17", "ticket: T-\udcff17"), "line 9: it is not UTF-8"),
    ("time form", _replace("not-before: 2026-12-03T18:00:00Z", "not-before: 2026-12-03 18:00"),
     r"line 10 \(not-before\): a time is written like"),
    ("time zone", _replace("issued: 2026-12-03T18:00:00Z", "issued: 2026-12-03T18:00:00+01:00"),
     r"line 3 \(issued\)"),
    ("no such date", _replace("issued: 2026-12-03T18", "issued: 2026-02-30T18"),
     "no such date"),
    ("window", _replace("not-after: 2026-12-03T19:00:00Z", "not-after: 2026-12-03T18:00:00Z"),
     "not-after must be later than not-before"),
    ("id", _replace("id: g-aaaa", "id: g-AAAA"), r"line 2 \(id\): a grant id"),
    ("id short", _replace("id: g-aaaa", "id: g-aaa"), r"line 2 \(id\)"),
    ("issuer space", _replace("issuer: owner@example.com", "issuer: owner @example.com"),
     r"line 4 \(issuer\): a principal has no spaces"),
    ("key with comment", _replace("technician: alice@example.com",
                                  "technician: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA"
                                  "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA x@y"),
     r"technician\): a technician's key is a key type and its base64, without a comment"),
    ("bad key", _replace("technician: alice@example.com", "technician: ssh-ed25519 AAAA"),
     r"line 5 \(technician\)"),
    ("key type lies", _replace("technician: alice@example.com",
                               "technician: ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA"
                               "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
     r"line 5 \(technician\): a public key line's type does not match"),
    ("kind", _replace("procedure: fix", "procedure: shell"), "kind is fix or diagnostic"),
    ("procedure name", _replace("fix restart-unit", "fix Restart_Unit"), "lower-case-with-dashes"),
    ("digest", _replace(f"sha256:{DIGEST}", f"sha256:{DIGEST.upper()}"), "64 lower-case hex"),
    ("digest short", _replace(f"sha256:{DIGEST}", f"sha256:{DIGEST[:-1]}"), "64 lower-case hex"),
    ("digest words", _replace(f"sha256:{DIGEST}", f"sha256:{DIGEST} x"), "KIND NAME sha256:HEX"),
    ("shell", _replace("scope: diagnostics", "scope: shell"), "a shell is never granted"),
    ("scope", _replace("scope: diagnostics", "scope: everything"), "diagnostics or fixes"),
    ("same scope twice", _replace("scope: diagnostics\n", "scope: diagnostics\n" * 2),
     "line 8: the same scope twice"),
    ("same procedure twice", _replace(f"procedure: fix restart-unit sha256:{DIGEST}\n",
                                      f"procedure: fix restart-unit sha256:{DIGEST}\n"
                                      f"procedure: fix restart-unit sha256:{'cd' * 32}\n"),
     "the fix restart-unit twice"),
    ("fingerprint", _replace(f"host: {HOST_FP}", f"host: {HOST_FP[:-1]}"), "43 base64"),
    ("fingerprint chars", _replace(f"host: {HOST_FP}", f"host: {HOST_FP[:-1]}*"), "43 base64"),
    ("host name", _replace(f"host: {HOST_FP}", "host: web/01"), r"\(host\): a host is"),
    ("same host twice", _replace(f"host: {HOST_FP}\n", f"host: {HOST_FP}\n" * 2),
     "the same host twice"),
    ("ticket", _replace("ticket: T-17", "ticket: ../etc"), r"\(ticket\): a ticket id"),
    ("uses zero", _replace("uses: 1", "uses: 0"), r"\(uses\): uses is a whole number"),
    ("uses big", _replace("uses: 1", "uses: 100001"), r"\(uses\)"),
    ("uses sign", _replace("uses: 1", "uses: +1"), r"\(uses\)"),
    ("uses leading zero", _replace("uses: 1", "uses: 01"), r"\(uses\)"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_the_parser_refuses_naming_the_line(edit: Callable[[str], str], message: str) -> None:
    body = edit(_body()).encode("utf-8", "surrogateescape")
    signed = body + sshsig.sign(new_signer(), body, NAMESPACE).armor().encode()
    with pytest.raises(GrantError, match=message) as caught:
        Grant.parse(signed, "g.grant")
    assert caught.value.exit_code == 2
    assert "\x1b" not in caught.value.message and "\u202e" not in caught.value.message


def test_the_signature_part_is_strict() -> None:
    body = _body().encode()
    armour = sshsig.sign(new_signer(), body, NAMESPACE).armor().encode()
    assert Grant.parse(body + armour).body == body
    with pytest.raises(GrantError, match="has no signature"):
        Grant.parse(body)
    with pytest.raises(GrantError, match="not as ssh-keygen writes it"):
        Grant.parse(body + armour + b"\n")
    with pytest.raises(GrantError, match="not as ssh-keygen writes it"):
        Grant.parse(body + armour.replace(b"\n", b"\n\n", 2).replace(b"\n\n", b"\n", 1))
    with pytest.raises(GrantError, match="signature is malformed"):
        Grant.parse(body + armour.replace(b"U1NIU0lH", b"WFNIU0lH"))  # not SSHSIG
    with pytest.raises(GrantError, match="signature is malformed"):
        Grant.parse(body + b"-----BEGIN SSH SIGNATURE-----\n!!\n-----END SSH SIGNATURE-----\n")
    with pytest.raises(GrantError, match="larger than 48 KiB"):
        Grant.parse(body + b"x" * MAX_GRANT_BYTES + armour)


ISSUE_REFUSED: list[tuple[dict[str, object], str]] = [
    ({"scopes": ["shell"]}, "a shell is never granted"),
    ({"procedures": [], "scopes": []}, "at least one procedure or scope"),
    ({"hosts": []}, "at least one host"),
    ({"hosts": ["web 01"]}, "host 'web 01' is refused"),
    ({"uses": 0}, "uses is a whole number"),
    ({"ticket": "a/b"}, "ticket 'a/b' is refused"),
    ({"technician": "al ice"}, "technician 'al ice' is refused"),
    ({"issuer": "own\x1ber"}, r"issuer 'own\\x1ber' is refused"),
    ({"not_before": NOW + timedelta(hours=1), "not_after": NOW + timedelta(hours=1)},
     "later than its not-before"),
    ({"not_before": NOW - timedelta(days=2), "not_after": NOW - timedelta(days=1)},
     "has already passed"),
    ({"not_after": datetime(2026, 12, 4)}, "needs a time zone"),
    ({"procedures": [GrantedProcedure("fix", "x", "00")]}, "64 lower-case hex"),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "message"), ISSUE_REFUSED)
def test_issue_refuses_what_the_parser_would(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(GrantError, match=message):
        make(**overrides)


def test_times_are_stored_in_utc_to_the_second() -> None:
    from datetime import timezone

    east = timezone(timedelta(hours=2))
    grant = make(
        not_before=datetime(2026, 12, 3, 22, 0, 0, 700_000, tzinfo=east),
        not_after=datetime(2026, 12, 4, 2, 0, 0, tzinfo=east),
    )
    assert b"not-before: 2026-12-03T20:00:00Z\nnot-after: 2026-12-04T00:00:00Z\n" in grant.body
    assert grant.not_before == datetime(2026, 12, 3, 20, 0, 0, tzinfo=UTC)


# -- ssh-keygen as the oracle ---------------------------------------------------------------


def _no_passphrase() -> str:
    raise AssertionError("no passphrase should be asked for")


def test_ssh_keygen_verifies_a_grant_we_issued(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path
) -> None:
    grant = make(key_file_signer(keygen_key, _no_passphrase))
    data = grant.to_bytes()
    at = data.index(b"-----BEGIN SSH SIGNATURE-----")
    (tmp_path / "body").write_bytes(data[:at])
    (tmp_path / "sig").write_bytes(data[at:])
    pub = keygen_key.with_name(keygen_key.name + ".pub").read_text().split()
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'{ISSUER} namespaces="{NAMESPACE}" {pub[0]} {pub[1]}\n')

    def verify(namespace: str, principal: str = ISSUER) -> subprocess.CompletedProcess[bytes]:
        return run(
            ssh_keygen, "-Y", "verify", "-f", signers, "-I", principal, "-n", namespace,
            "-s", tmp_path / "sig", stdin=(tmp_path / "body").read_bytes(),
        )  # fmt: skip

    done = verify(NAMESPACE)
    assert done.returncode == 0, done.stderr
    assert verify("toolkit-consent").returncode != 0
    assert verify(NAMESPACE, "someone@example.com").returncode != 0
    changed = (tmp_path / "body").read_bytes().replace(b"uses: 3", b"uses: 9")
    (tmp_path / "body").write_bytes(changed)
    assert verify(NAMESPACE).returncode != 0


def test_a_grant_signed_by_ssh_keygen_parses_and_verifies(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path
) -> None:
    body = _body().encode()
    path = tmp_path / "body"
    path.write_bytes(body)
    subprocess.run(
        [ssh_keygen, "-q", "-Y", "sign", "-f", keygen_key, "-n", NAMESPACE, path], check=True
    )
    data = body + path.with_name("body.sig").read_bytes()
    grant = Grant.parse(data)
    assert grant.to_bytes() == data
    ours = key_file_signer(keygen_key, _no_passphrase)
    assert grant.signer_key == ours.public_blob
    sig = sshsig.SSHSig.from_bytes(grant.signature)
    assert sshsig.verify(sig, grant.body, NAMESPACE) == ours.public_blob
    assert fingerprint(grant.signer_key).startswith("SHA256:")
