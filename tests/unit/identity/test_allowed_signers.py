from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.helpers import EMAIL, new_signer, run
from toolkit.errors import UsageError
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners, UntrustedSigner, match_pattern_list
from toolkit.identity.keys import public_line

NS = "toolkit-transcript"


@pytest.mark.parametrize(
    ("value", "patterns", "expected"),
    [
        ("alice@example.com", "alice@example.com", True),
        ("alice@example.com", "*@example.com", True),
        ("alice@example.com", "?lice@example.com", True),
        ("alice@example.com", "bob@example.com,*@example.com", True),
        ("alice@example.com", "*@example.com,!alice@*", False),
        ("alice@example.com", "*@example.org", False),
        ("alice@example.com", "[a]lice@example.com", False),  # no character classes in OpenSSH
    ],
)
def test_openssh_pattern_lists(value: str, patterns: str, expected: bool) -> None:
    assert match_pattern_list(value, patterns) is expected


def test_plain_line_trusts_exactly_its_key_principal_and_namespaces() -> None:
    signer, other = new_signer(), new_signer()
    trust = AllowedSigners.from_text(
        "# team keys\n\n"
        f'{EMAIL} namespaces="toolkit-*" {public_line(signer.public_blob)} a comment\n'
    )
    assert trust.check(EMAIL, signer.public_blob, NS).lineno == 3
    with pytest.raises(UntrustedSigner, match="no line names"):
        trust.check(EMAIL, other.public_blob, NS)
    with pytest.raises(UntrustedSigner, match="no line names"):
        trust.check("bob@example.com", signer.public_blob, NS)
    with pytest.raises(UntrustedSigner, match="namespace"):
        trust.check(EMAIL, signer.public_blob, "file")


def test_validity_window() -> None:
    signer = new_signer()
    line = public_line(signer.public_blob)
    trust = AllowedSigners.from_text(
        f'{EMAIL} valid-after="20260101Z",valid-before="20270101000000Z" {line}\n'
    )
    trust.check(EMAIL, signer.public_blob, NS, at=datetime(2026, 6, 1, tzinfo=UTC))
    with pytest.raises(UntrustedSigner, match="not valid before"):
        trust.check(EMAIL, signer.public_blob, NS, at=datetime(2025, 12, 31, tzinfo=UTC))
    with pytest.raises(UntrustedSigner, match="expired"):
        trust.check(EMAIL, signer.public_blob, NS, at=datetime(2027, 1, 1, tzinfo=UTC))


def test_expired_line_agrees_with_ssh_keygen(tmp_path: Path, ssh_keygen: str) -> None:
    signer = new_signer()
    data = tmp_path / "data"
    data.write_bytes(b"payload")
    sig = tmp_path / "data.sig"
    sig.write_text(sshsig.sign(signer, b"payload", NS).armor())
    for bounds, ok in [('valid-before="20200101"', False), ('valid-after="20200101"', True)]:
        signers = tmp_path / "allowed_signers"
        signers.write_text(f"{EMAIL} {bounds} {public_line(signer.public_blob)}\n")
        theirs = run(ssh_keygen, "-Y", "verify", "-f", signers, "-I", EMAIL, "-n", NS, "-s", sig,
                     stdin=b"payload")  # fmt: skip
        assert (theirs.returncode == 0) is ok
        trust = AllowedSigners.from_file(signers)
        if ok:
            trust.check(EMAIL, signer.public_blob, NS)
        else:
            with pytest.raises(UntrustedSigner):
                trust.check(EMAIL, signer.public_blob, NS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice@example.com\n", "needs principals and a key"),
        ("alice@example.com ssh-ed25519 !!notbase64\n", "base64"),
        ('alice@example.com frobnicate="x" {key}\n', "unknown option frobnicate"),
        ('alice@example.com valid-after="2026" {key}\n', "bad time"),
        ('alice@example.com namespaces="x {key}\n', "unbalanced quotes|needs principals|line 1"),
    ],
)
def test_malformed_lines_are_usage_errors_naming_the_line(text: str, message: str) -> None:
    key = public_line(new_signer().public_blob)
    with pytest.raises(UsageError, match=message) as info:
        AllowedSigners.from_text(text.format(key=key))
    assert "line 1" in info.value.message


def test_unreadable_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="Cannot read"):
        AllowedSigners.from_file(tmp_path / "missing")
