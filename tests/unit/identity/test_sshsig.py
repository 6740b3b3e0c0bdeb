"""SSHSIG against ssh-keygen as the oracle, in both directions."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import EMAIL, run
from toolkit.errors import SignatureError
from toolkit.identity import sshsig
from toolkit.identity.allowed_signers import AllowedSigners, UntrustedSigner
from toolkit.identity.keys import blob_from_line, fingerprint
from toolkit.identity.signer import KeySigner, agent_signer, key_file_signer

NS = "toolkit-test"
MESSAGE = b"the whole transcript\nwith two lines\n"


def _no_passphrase() -> str:
    raise AssertionError("no passphrase should be asked for")


def keygen_sign(
    ssh_keygen: str, key: Path, data: Path, namespace: str = NS, hashalg: str = "sha512"
) -> bytes:
    """``ssh-keygen -Y sign`` (with ``-O hashalg=...``): the oracle."""
    subprocess.run(
        [ssh_keygen, "-q", "-Y", "sign", "-f", key, "-n", namespace, "-O", f"hashalg={hashalg}",
         data],
        check=True,
    )  # fmt: skip
    return data.with_name(data.name + ".sig").read_bytes()


def keygen_verify(
    ssh_keygen: str, signers: Path, data: Path, sig: Path, principal: str = EMAIL, ns: str = NS
) -> subprocess.CompletedProcess[bytes]:
    return run(
        ssh_keygen, "-Y", "verify", "-f", signers, "-I", principal, "-n", ns, "-s", sig,
        stdin=data.read_bytes(),
    )  # fmt: skip


def make_key(ssh_keygen: str, path: Path, kind: str, *extra: str) -> Path:
    subprocess.run(
        [ssh_keygen, "-q", "-t", kind, *extra, "-N", "", "-C", EMAIL, "-f", path], check=True
    )
    return path


@pytest.mark.parametrize("hashalg", ["sha256", "sha512"])
def test_ed25519_signature_is_byte_identical_to_ssh_keygen(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path, hashalg: str
) -> None:
    data = tmp_path / "file.txt"
    data.write_bytes(MESSAGE)
    expected = keygen_sign(ssh_keygen, keygen_key, data, hashalg=hashalg)
    signer = key_file_signer(keygen_key, _no_passphrase)
    ours = sshsig.sign(signer, MESSAGE, NS, hashalg).armor()
    assert ours.encode() == expected
    assert not ours.startswith("\n") and "\r" not in ours


def test_ssh_keygen_verifies_ours_and_we_verify_ssh_keygens(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path
) -> None:
    data = tmp_path / "file.txt"
    data.write_bytes(MESSAGE)
    signers = tmp_path / "allowed_signers"
    pub = keygen_key.with_name(keygen_key.name + ".pub").read_text()
    signers.write_text(f"{EMAIL} {pub}")
    sig = tmp_path / "ours.sig"
    sig.write_text(sshsig.sign(key_file_signer(keygen_key, _no_passphrase), MESSAGE, NS).armor())
    assert keygen_verify(ssh_keygen, signers, data, sig).returncode == 0
    assert keygen_verify(ssh_keygen, signers, data, sig, ns="other").returncode != 0

    theirs = sshsig.SSHSig.from_bytes(sshsig.dearmor(keygen_sign(ssh_keygen, keygen_key, data)))
    key = sshsig.verify(theirs, MESSAGE, NS)
    assert key == blob_from_line(pub)
    with pytest.raises(SignatureError, match="namespace"):
        sshsig.verify(theirs, MESSAGE, "other")
    with pytest.raises(SignatureError, match="does not match"):
        sshsig.verify(theirs, MESSAGE + b"x", NS)


@pytest.mark.parametrize(
    ("kind", "extra"), [("ecdsa", ("-b", "256")), ("ecdsa", ("-b", "521")), ("rsa", ("-b", "2048"))]
)
def test_other_key_types_both_directions(
    tmp_path: Path, ssh_keygen: str, kind: str, extra: tuple[str, ...]
) -> None:
    key = make_key(ssh_keygen, tmp_path / "id", kind, *extra)
    data = tmp_path / "file.txt"
    data.write_bytes(MESSAGE)
    theirs = sshsig.SSHSig.from_bytes(sshsig.dearmor(keygen_sign(ssh_keygen, key, data)))
    sshsig.verify(theirs, MESSAGE, NS)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{EMAIL} {key.with_name('id.pub').read_text()}")
    sig = tmp_path / "ours.sig"
    sig.write_text(sshsig.sign(key_file_signer(key, _no_passphrase), MESSAGE, NS).armor())
    assert keygen_verify(ssh_keygen, signers, data, sig).returncode == 0


@pytest.mark.parametrize("hashalg", ["sha256", "sha512"])
def test_signing_through_a_real_ssh_agent(
    tmp_path: Path, ssh_keygen: str, ssh_agent: str, keygen_key: Path, hashalg: str
) -> None:
    other = make_key(ssh_keygen, tmp_path / "other", "ed25519")
    for key in (keygen_key, other):
        subprocess.run(["ssh-add", "-q", key], check=True, capture_output=True)
    with pytest.raises(Exception, match="several keys"):
        agent_signer()
    want = blob_from_line(keygen_key.with_name("id_ed25519.pub").read_text())
    signer = agent_signer(fingerprint(want))
    assert signer.public_blob == want
    data = tmp_path / "file.txt"
    data.write_bytes(MESSAGE)
    ours = sshsig.sign(signer, MESSAGE, NS, hashalg).armor()
    # Ed25519 is deterministic: the same bytes as ssh-keygen's, through the agent too.
    assert ours.encode() == keygen_sign(ssh_keygen, keygen_key, data, hashalg=hashalg)
    signers = tmp_path / "allowed_signers"
    signers.write_text(f"{EMAIL} {keygen_key.with_name('id_ed25519.pub').read_text()}")
    sig = tmp_path / "agent.sig"
    sig.write_text(ours)
    assert keygen_verify(ssh_keygen, signers, data, sig).returncode == 0


def test_agent_without_the_key_is_a_clear_error(ssh_agent: str) -> None:
    from toolkit.errors import IdentityError

    with pytest.raises(IdentityError, match="does not hold a key matching") as info:
        agent_signer("SHA256:nothere")
    assert "ssh-add" in info.value.diagnostics()


def _certify(
    ssh_keygen: str, ca: Path, key: Path, principals: str, validity: str = "always:forever"
) -> Path:
    subprocess.run(
        [ssh_keygen, "-q", "-s", ca, "-I", "alice-cert", "-n", principals, "-V", validity,
         key.with_name(key.name + ".pub")],
        check=True,
    )  # fmt: skip
    return key.with_name(key.name + "-cert.pub")


def test_certificate_against_cert_authority_line(
    tmp_path: Path, ssh_keygen: str, ssh_agent: str, keygen_key: Path
) -> None:
    ca = make_key(ssh_keygen, tmp_path / "ca", "ed25519")
    _certify(ssh_keygen, ca, keygen_key, EMAIL)
    ca_pub = ca.with_name("ca.pub").read_text().split()
    signers = tmp_path / "allowed_signers"
    signers.write_text(f'*@example.com cert-authority,namespaces="{NS}" {ca_pub[0]} {ca_pub[1]}\n')
    data = tmp_path / "file.txt"
    data.write_bytes(MESSAGE)

    # ssh-keygen signs with the certificate (-f names it, the key is in the agent);
    # we check trust through the CA line.
    cert_path = keygen_key.with_name("id_ed25519-cert.pub")
    subprocess.run(["ssh-add", "-q", keygen_key], check=True, capture_output=True)
    theirs = sshsig.SSHSig.from_bytes(sshsig.dearmor(keygen_sign(ssh_keygen, cert_path, data)))
    key = sshsig.verify(theirs, MESSAGE, NS)
    trust = AllowedSigners.from_file(signers)
    assert trust.check(EMAIL, key, NS).cert_authority
    with pytest.raises(UntrustedSigner, match="does not name"):
        trust.check("bob@example.com", key, NS)
    with pytest.raises(UntrustedSigner):
        trust.check(EMAIL, key, "other-namespace")

    # We sign with the certificate; ssh-keygen accepts it through the same line.
    signer = key_file_signer(cert_path, _no_passphrase)
    assert isinstance(signer, KeySigner) and signer.public_blob == key
    sig = tmp_path / "ours.sig"
    sig.write_text(sshsig.sign(signer, MESSAGE, NS).armor())
    assert keygen_verify(ssh_keygen, signers, data, sig).returncode == 0
    assert keygen_verify(ssh_keygen, signers, data, sig, principal="bob@example.com").returncode


def test_expired_certificate_and_foreign_ca_are_untrusted(
    tmp_path: Path, ssh_keygen: str, keygen_key: Path
) -> None:
    ca = make_key(ssh_keygen, tmp_path / "ca", "ed25519")
    other_ca = make_key(ssh_keygen, tmp_path / "ca2", "ed25519")
    _certify(ssh_keygen, ca, keygen_key, EMAIL, validity="20200101:20200102")
    cert = blob_from_line(keygen_key.with_name("id_ed25519-cert.pub").read_text())
    ca_line = ca.with_name("ca.pub").read_text()
    trust = AllowedSigners.from_text(f"{EMAIL} cert-authority {ca_line}")
    with pytest.raises(UntrustedSigner, match="expired"):
        trust.check(EMAIL, cert, NS)
    foreign = AllowedSigners.from_text(
        f"{EMAIL} cert-authority {other_ca.with_name('ca2.pub').read_text()}"
    )
    with pytest.raises(UntrustedSigner):
        foreign.check(EMAIL, cert, NS)


def test_armour_round_trip_and_refusals() -> None:
    from tests.helpers import new_signer

    sig = sshsig.sign(new_signer(), MESSAGE, NS)
    text = sig.armor()
    lines = text.splitlines()
    assert (
        lines[0] == "-----BEGIN SSH SIGNATURE-----" and lines[-1] == "-----END SSH SIGNATURE-----"
    )
    assert all(len(line) <= 70 for line in lines[1:-1])
    assert sshsig.SSHSig.from_bytes(sshsig.dearmor(text)) == sig
    with pytest.raises(SignatureError, match="armour"):
        sshsig.dearmor("not a signature")
    with pytest.raises(SignatureError, match="base64"):
        sshsig.dearmor("-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----\n")
    with pytest.raises(SignatureError, match="preamble"):
        sshsig.SSHSig.from_bytes(b"NOTSIG" + sig.to_bytes()[6:])
    with pytest.raises(SignatureError, match="truncated"):
        sshsig.SSHSig.from_bytes(sig.to_bytes()[:-3])
    with pytest.raises(SignatureError, match="trailing"):
        sshsig.SSHSig.from_bytes(sig.to_bytes() + b"\0")
