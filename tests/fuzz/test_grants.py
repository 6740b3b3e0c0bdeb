"""Fuzzing the grant parser and its signature check.

The seed is a real grant. Each example edits its bytes the ways an attacker
or a broken disk would (bits flipped, bytes inserted, deleted or duplicated,
lines dropped, repeated or swapped, hostile values put in), and sometimes
re-signs the edited body with the issuer's key. Whatever the bytes:
- ``Grant.parse`` returns a grant or raises GrantError, nothing else;
- a grant it returns writes back exactly the bytes it was read from, and
  every line of its body is printable;
- a grant whose body differs from what was signed is refused as forged, and
  one re-signed by the issuer passes the signature and issuer checks.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.budget import budget
from tests.helpers import new_signer
from toolkit.grants import NAMESPACE, Grant, GrantedProcedure, GrantError, issue
from toolkit.grants.check import GrantRefused, check_issuer, verify_signature
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners
from toolkit.identity.keys import public_line

NOW = datetime(2026, 12, 3, 18, 0, 0, tzinfo=UTC)
ISSUER = new_signer()
SEED = issue(
    ISSUER,
    issuer="owner@example.com",
    technician=public_line(new_signer().public_blob),
    procedures=[GrantedProcedure("fix", "restart-unit", "ab" * 32)],
    scopes=["diagnostics"],
    hosts=["SHA256:" + "A" * 43, "web-01"],
    ticket="T-17",
    not_before=NOW,
    not_after=NOW + timedelta(hours=8),
    uses=3,
    now=NOW,
)
TRUST = AllowedSigners.from_text(
    f'owner@example.com namespaces="{NAMESPACE}" {public_line(ISSUER.public_blob)}\n'
)
HOSTILE = [
    "\x1b[2J", "\u202e", "\u200b", "\r", "\x00", "\t", " ", ":", ": ", "\n", "shell",
    "-----BEGIN SSH SIGNATURE-----", "sha256:", "SHA256:", "g-", "9" * 30, "\xff", "é",
]  # fmt: skip


@st.composite
def edits(draw: st.DrawFn) -> tuple[bytes, bool]:
    """Edited grant bytes, and whether the body was re-signed by the issuer."""
    data = bytearray(SEED.to_bytes())
    kind = draw(st.sampled_from(["flip", "insert", "delete", "lines", "value"]))
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    elif kind == "delete":
        at = draw(st.integers(0, len(data) - 1))
        del data[at : at + draw(st.integers(1, 8))]
    else:
        lines = SEED.body.decode().split("\n")[:-1]
        i = draw(st.integers(1, len(lines) - 1))
        if kind == "lines":
            j = draw(st.integers(1, len(lines) - 1))
            how = draw(st.sampled_from(["drop", "repeat", "swap"]))
            if how == "drop":
                del lines[i]
            elif how == "repeat":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
        else:
            key, _, value = lines[i].partition(": ")
            piece = draw(st.sampled_from(HOSTILE))
            at = draw(st.integers(0, len(value)))
            lines[i] = f"{key}: {value[:at]}{piece}{value[at:]}"
        edited = ("\n".join(lines) + "\n").encode("utf-8", "surrogatepass")
        data = bytearray(edited + SEED.to_bytes()[len(SEED.body) :])
    # Re-sign what a reader takes for the body: everything up to the BEGIN line.
    split = bytes(data).find(b"\n-----BEGIN SSH SIGNATURE-----\n")
    body = bytes(data[: split + 1])
    if split < 0 or body == SEED.body or not draw(st.booleans()):
        return bytes(data), False
    return body + sshsig.sign(ISSUER, body, NAMESPACE).armor().encode(), True


@budget()
@given(edits())
def test_an_edited_grant_is_refused_or_checks_out(example: tuple[bytes, bool]) -> None:
    data, resigned = example
    try:
        grant = Grant.parse(data, "fuzz")
    except GrantError as exc:
        assert exc.message.isprintable()
        return
    assert grant.to_bytes() == data
    assert all(line.isprintable() for line in grant.body.decode().split("\n"))
    assert Grant.parse(grant.to_bytes()) == grant
    try:
        check_issuer(grant, verify_signature(grant), TRUST, NOW)
    except GrantRefused as exc:
        assert exc.reason in ("forged", "untrusted-issuer")
        assert grant.body != SEED.body or grant.signature != SEED.signature
        assert not resigned or exc.reason != "forged"
    else:
        assert grant.body == SEED.body or resigned
