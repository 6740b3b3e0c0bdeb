"""paths: atomic writes never through a planted symlink; what decides who gets in, guarded."""

from __future__ import annotations

from pathlib import Path

from toolkit.paths import atomic_write


def test_a_symlink_at_the_old_temporary_name_is_not_written_through(tmp_path: Path) -> None:
    tmp_path = tmp_path / "shared"
    tmp_path.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    target = tmp_path / "hosts.toml.retry"
    (tmp_path / "hosts.toml.retry.tmp").symlink_to(victim)
    atomic_write(target, b"web-01\n", 0o644)
    assert victim.read_text() == "precious\n"
    assert target.read_bytes() == b"web-01\n" and (target.stat().st_mode & 0o777) == 0o644
    # Nothing of ours is left beside it but the planted link.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hosts.toml.retry", "hosts.toml.retry.tmp", "victim"
    ]  # fmt: skip


def test_the_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "ticket.json"
    target.write_text("old")
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o600


def test_what_decides_who_gets_in_must_be_guarded(tmp_path: Path) -> None:
    """A trust file or ledger another user may change is refused, with how to mend it."""
    import os

    import pytest

    from tests.helpers import new_signer, write_issuers
    from toolkit.errors import UsageError
    from toolkit.grants.acceptance import GrantAcceptance
    from toolkit.grants.ledger import Ledger
    from toolkit.paths import check_guarded

    issuers = write_issuers(tmp_path / "issuers", new_signer())
    issuers.chmod(0o644)
    check_guarded(issuers, "the trust file")
    check_guarded(tmp_path / "not-yet", "the grant ledger")  # made private when created
    issuers.chmod(0o666)
    with pytest.raises(UsageError, match=r"may be changed by another user .* mode 0666"):
        GrantAcceptance.from_file(issuers, Ledger(tmp_path / "grants"))
    issuers.chmod(0o644)
    ledger = tmp_path / "grants"
    ledger.mkdir(mode=0o777)
    ledger.chmod(0o777)
    with pytest.raises(UsageError, match=r"The grant ledger .* may be changed by another user"):
        GrantAcceptance.from_file(issuers, Ledger(ledger))
    if os.geteuid() == 0:  # only root can give a file away
        ledger.chmod(0o700)
        os.chown(issuers, 65534, 65534)
        with pytest.raises(UsageError, match="owner uid 65534"):
            check_guarded(issuers, "the trust file")
