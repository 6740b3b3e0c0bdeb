"""The agent's mount table, from /proc/self/mountinfo: which mounts are its own, and
under which other names a file can be reached.

A bind mount makes a directory (or a file) visible at a second place: after
``mount --bind ~/.ssh /var/log/app`` the key's real path, as the kernel reports
it for an opened descriptor, is ``/var/log/app/id_ed25519``. An overlay serves
the files of its layer directories under its own mount point: with
``lowerdir=~/.ssh`` mounted on ``/var/log/app``, ``/var/log/app/config`` is
``~/.ssh/config``. Deny patterns are therefore also matched against a file's
:func:`aliases`: for the mount the file lies on, its path inside the file
system (the mount's root plus the rest), seen through every mount of the same
file system, and, for an overlay, inside each layer; and so on from those
names, transitively.

What this cannot see: an overlay layer shown as a relative path (mountinfo
shows the options as they were given, relative to a working directory nobody
recorded), which :class:`Unlocatable` reports so the file can be refused; and
file systems that serve other directories' files without saying so (FUSE ones
such as bindfs, an NFS export of the same machine), which look like any other
file system. docs/policy.md lists these limits.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
#: How many other names one file may have before the agent stops counting and refuses it.
MAX_ALIASES = 256
_ESCAPE = re.compile(rb"\\([0-7]{3})")
#: Overlay options that name directories whose files the overlay serves.
_LAYER_OPTIONS = ("lowerdir", "lowerdir+", "datadir+", "upperdir")


class Unlocatable(Exception):
    """A file's other names cannot all be known (an overlay layer given as a relative path)."""


@dataclass(frozen=True)
class Mount:
    device: str  # "major:minor"
    root: str  # the directory of the file system that is mounted here
    point: str  # where it is mounted
    id: int = -1  # the mount id, as /proc/self/fdinfo/<fd> gives it (mnt_id)
    fstype: str = ""
    options: tuple[str, ...] = ()  # the file system's own (super block) options

    def layers(self) -> tuple[str, ...]:
        """The directories an overlay serves files from (lower, data-only and upper layers)."""
        found: list[str] = []
        for option in self.options:
            key, _, value = option.partition("=")
            if key in _LAYER_OPTIONS:
                found += [layer for layer in _split_layers(value) if layer]
        return tuple(found)


def _split_layers(value: str) -> Iterator[str]:
    """``a:b::c`` (``\\`` escapes the next character, as overlayfs takes it) -> a, b, "", c."""
    layer: list[str] = []
    chars = iter(value)
    for c in chars:
        if c == "\\":
            layer.append(next(chars, ""))
        elif c == ":":
            yield "".join(layer)
            layer = []
        else:
            layer.append(c)
    yield "".join(layer)


def _unescape(field: bytes) -> str:
    return os.fsdecode(_ESCAPE.sub(lambda m: bytes([int(m[1], 8)]), field))


def _parse(line: bytes) -> Mount | None:
    # id parent major:minor root point options [optional fields...] - fstype source super-options
    fields = line.split(b" ")
    if len(fields) < 5:
        return None
    fstype = ""
    options: tuple[str, ...] = ()
    if b"-" in fields[6:]:
        tail = fields[fields.index(b"-", 6) + 1 :]
        if tail:
            fstype = _unescape(tail[0])
        if len(tail) >= 3:
            options = tuple(_unescape(o) for o in tail[2].split(b","))
    try:
        mount_id = int(fields[0])
    except ValueError:
        mount_id = -1
    return Mount(fields[2].decode("ascii", "replace"), _unescape(fields[3]), _unescape(fields[4]),
                 mount_id, fstype, options)  # fmt: skip


def read_mounts(path: str = MOUNTINFO) -> tuple[Mount, ...]:
    """The mount table in kernel order; empty when it cannot be read."""
    try:
        with open(path, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return ()
    return tuple(m for m in map(_parse, lines) if m is not None)


def mount_id(fd: int) -> int | None:
    """The id of the mount ``fd`` lies on (``mnt_id`` in /proc/self/fdinfo), or None."""
    try:
        with open(f"/proc/self/fdinfo/{fd}", "rb") as f:
            for line in f:
                if line.startswith(b"mnt_id:"):
                    return int(line.split(b":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def root_mount_id() -> int | None:
    """The mount the agent's root directory lies on.

    mountinfo lists only the mounts reachable from the process's root, so a
    chrooted agent's table leaves out the mount that holds its root.
    """
    try:
        fd = os.open("/", os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return mount_id(fd)
    finally:
        os.close(fd)


def by_id(mounts: Sequence[Mount], mount_id: int | None) -> Mount | None:
    """The mount with this id, or None."""
    return next((m for m in mounts if m.id == mount_id), None)


def under(path: str, top: str) -> str | None:
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


def _deepest(path: str, mounts: Sequence[Mount]) -> Mount | None:
    here: Mount | None = None
    for mount in mounts:  # the deepest mount point wins; a later mount covers an earlier one
        if under(path, mount.point) is not None and (
            here is None or len(mount.point) >= len(here.point)
        ):
            here = mount
    return here


def inside(path: str, mount: Mount) -> str | None:
    """``path``, which lies on ``mount``, as a path inside its file system."""
    rest = under(path, mount.point)
    return None if rest is None else _join(mount.root, rest)


def _direct(path: str, mounts: Sequence[Mount], mount_id: int | None) -> list[str]:
    """The other names of ``path`` one mount away: other mounts of its file system,
    and an overlay's layers."""
    here = by_id(mounts, mount_id)
    if here is None or under(path, here.point) is None:
        here = _deepest(path, mounts)
    if here is None:
        return []
    within = inside(path, here)
    assert within is not None
    found = []
    for mount in mounts:
        below = under(within, mount.root) if mount.device == here.device else None
        if below is not None:
            found.append(_join(mount.point, below))
    if here.fstype == "overlay":
        for layer in here.layers():
            if not layer.startswith("/"):
                raise Unlocatable(f"overlay on {here.point} has the relative layer {layer!r}")
            found.append(_join(layer, within))
    return [p for p in found if p != path]


def aliases(path: str, mounts: Sequence[Mount], mount_id: int | None = None) -> tuple[str, ...]:
    """Other absolute paths that name the same file as ``path`` through other mounts.

    ``mount_id`` is the mount the file was found on, when known (else the
    deepest mount point above ``path``). Raises :class:`Unlocatable` when a
    name cannot be known, or there are more than :data:`MAX_ALIASES`.
    """
    found: list[str] = []
    todo: list[tuple[str, int | None]] = [(path, mount_id)]
    while todo:
        current, current_id = todo.pop()
        for other in _direct(current, mounts, current_id):
            if other != path and other not in found:
                if len(found) == MAX_ALIASES:
                    raise Unlocatable(f"more than {MAX_ALIASES} names")
                found.append(other)
                todo.append((other, None))
    return tuple(found)


__all__ = [
    "MAX_ALIASES",
    "MOUNTINFO",
    "Mount",
    "Unlocatable",
    "aliases",
    "by_id",
    "inside",
    "mount_id",
    "read_mounts",
    "root_mount_id",
    "under",
]
