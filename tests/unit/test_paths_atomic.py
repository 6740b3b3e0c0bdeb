"""paths.atomic_write: all or nothing, and never through a planted symlink."""

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
