"""The retry file: the hosts to run again, one name a line, read back by ``--limit @FILE``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from toolkit import paths
from toolkit.errors import UsageError
from toolkit.text import printable


def default_path(inventory: Path) -> Path:
    """``<inventory>.retry`` next to the inventory, as Ansible writes ``<playbook>.retry``."""
    return inventory.with_name(inventory.name + ".retry")


def write(path: Path, names: Sequence[str], *, header: str = "") -> None:
    """Write the names atomically (a crash leaves the old file or the new one).

    A path that exists and is not a regular file (a FIFO, a directory) is refused
    rather than replaced.
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UsageError(
            f"Cannot write the retry file {printable(str(path), 200)}: it is not a regular file."
        )
    lines = [f"# {printable(header, 300)}"] if header else []
    text = "\n".join([*lines, *names]) + "\n"
    try:
        paths.atomic_write(path, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise UsageError(
            f"Cannot write the retry file {printable(str(path), 200)}: "
            f"{(exc.strerror or str(exc)).lower()}.",
            hint="Give another place with --retry-file.",
        ) from None


__all__ = ["default_path", "write"]
