"""toolkit share shows a technician as trusted when its allowed_signers vouches for sealing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import EMAIL, allowed_signers_line, new_signer, write_allowed_signers
from toolkit.cli.share import _trust
from toolkit.consent import untrusted
from toolkit.errors import ToolkitError
from toolkit.transcript.models import NAMESPACE_CHECKPOINT, NAMESPACE_SEAL


def test_a_key_allowed_to_seal_is_trusted_as_its_email(tmp_path: Path) -> None:
    signer, stranger = new_signer(), new_signer()
    trust = _trust(write_allowed_signers(tmp_path / "allowed_signers", signer))
    assert trust(signer.public_blob, EMAIL)
    assert not trust(signer.public_blob, "mallory@example.com")
    assert not trust(stranger.public_blob, EMAIL)


def test_a_key_allowed_for_another_namespace_is_not(tmp_path: Path) -> None:
    signer = new_signer()
    path = tmp_path / "allowed_signers"
    path.write_text(allowed_signers_line(signer, namespaces=(NAMESPACE_CHECKPOINT,)))
    assert NAMESPACE_SEAL != NAMESPACE_CHECKPOINT
    assert not _trust(path)(signer.public_blob, EMAIL)


def test_no_file_trusts_nobody_and_a_bad_one_is_an_error_at_once(tmp_path: Path) -> None:
    assert _trust(None) is untrusted
    bad = tmp_path / "allowed_signers"
    bad.write_text("alice@example.com ssh-ed25519 notbase64!!\n")
    with pytest.raises(ToolkitError):
        _trust(bad)
