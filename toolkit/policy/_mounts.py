"""Other names of a file through bind mounts, from /proc/self/mountinfo.

A bind mount makes a directory (or a file) visible at a second place: after
``mount --bind ~/.ssh /var/log/app`` the key's real path, as the kernel reports
it for an opened descriptor, is ``/var/log/app/id_ed25519``. Deny patterns are
therefore also matched against the file's other names: for the mount the path
lies on, its path inside the file system (the mount's root plus the rest),
seen through every other mount of the same file system.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
_ESCAPE = re.compile(rb"\\([0-7]{3})")


@dataclass(frozen=True)
class Mount:
    device: str  # "major:minor"
    root: str  # the directory of the file system that is mounted here
    point: str  # where it is mounted


def _unescape(field: bytes) -> str:
    return os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), field))


def read_mounts(path: str = MOUNTINFO) -> tuple[Mount, ...]:
    """The mount table in kernel order; empty when it cannot be read."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return ()
    mounts = []
    for line in lines:
        fields = line.split(b" ")
        if len(fields) >= 5:
            mounts.append(Mount(fields[2].decode("ascii", "replace"),
                                _unescape(fields[3]), _unescape(fields[4])))  # fmt: skip
    return tuple(mounts)


def _under(path: str, top: str) -> str | None:
    """The rest of ``path`` below ``top`` ("" when equal), or None when not below it."""
    if top == "/":
        return path if path != "/" else ""
    if path == top:
        return ""
    if path.startswith(top + "/"):
        return path[len(top) :]
    return None


def _join(top: str, rest: str) -> str:
    return (top.rstrip("/") + rest) or "/"


def aliases(path: str, mounts: Sequence[Mount]) -> tuple[str, ...]:
    """Other absolute paths that name the same file as ``path`` through other mounts."""
    here: Mount | None = None
    for mount in mounts:  # the deepest mount point wins; a later mount covers an earlier one
        if _under(path, mount.point) is not None and (
            here is None or len(mount.point) >= len(here.point)
        ):
            here = mount
    if here is None:
        return ()
    rest = _under(path, here.point)
    assert rest is not None
    inside = _join(here.root, rest)  # the path inside the file system
    found: list[str] = []
    for mount in mounts:
        if mount.device != here.device:
            continue
        below = _under(inside, mount.root)
        if below is None:
            continue
        other = _join(mount.point, below)
        if other != path and other not in found:
            found.append(other)
    return tuple(found)


__all__ = ["MOUNTINFO", "Mount", "aliases", "read_mounts"]
