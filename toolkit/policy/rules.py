"""File rules: small objects with one method that raises.

Each rule looks at a :class:`Candidate` (the real path of an opened descriptor
and its ``fstat``) and either returns nothing or raises
:class:`~toolkit.errors.PolicyRefused`. There is no boolean to forget to check.
Rules compose with :class:`AllOf` and :class:`AnyOf`; an empty ``AllOf``
refuses instead of passing vacuously.

Refusal texts are shown to the technician and written to both transcripts, so
they never say more than the technician may know: a path that is denied, not
on the allowlist, or missing altogether gets the one :data:`UNAVAILABLE`
text, so a refusal never tells whether a file exists. Rules that look at the
file itself (its type, its links, its size) run after the path rules and may
be specific, since by then the path is one the technician may see.

Usage::

    rule = AllOf([OwnMount(mounts), NotDenied(deny, mounts), Allowlisted(allow), RegularFile()])
    rule.check(Candidate(real_path, os.fstat(fd), mount_id))  # raises PolicyRefused
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from toolkit.errors import PolicyRefused
from toolkit.policy._glob import FilePattern, PatternSet
from toolkit.policy._mounts import Mount, Unlocatable, aliases, root_mount_id

logger = logging.getLogger(__name__)

UNAVAILABLE = "not available under the agent's file policy (missing, denied or not allowlisted)"
UNAVAILABLE_HINT = (
    "Only files on the customer's allowlist can be read, listed or examined; "
    "ask the customer if you need another one."
)


def unavailable() -> PolicyRefused:
    """The one refusal for a path that is denied, not allowlisted or missing."""
    return PolicyRefused(UNAVAILABLE, hint=UNAVAILABLE_HINT)


@dataclass(frozen=True)
class Candidate:
    """What a rule decides on: the opened file's real path, its ``fstat`` and its mount.

    ``mount`` is the id of the mount the descriptor lies on (``mnt_id`` in
    /proc/self/fdinfo); None for a directory entry known only by its name,
    which lies on the mount of a directory already judged or on one mounted
    over it, so in the agent's own mount namespace.
    """

    path: str
    stat: os.stat_result
    mount: int | None = None


class FileRule(Protocol):
    """One check. ``check`` returns nothing, or raises PolicyRefused."""

    def check(self, candidate: Candidate) -> None: ...


def kind_of(mode: int) -> str:
    """A word for the file type: file, directory, symlink, fifo, socket, ..."""
    kinds = [
        (stat.S_ISREG, "file"),
        (stat.S_ISDIR, "directory"),
        (stat.S_ISLNK, "symlink"),
        (stat.S_ISFIFO, "fifo"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "unknown")


def _patterns(
    patterns: PatternSet | Iterable[FilePattern], *, ignore_case: bool = False
) -> PatternSet:
    if isinstance(patterns, PatternSet):
        if patterns.ignore_case == ignore_case:
            return patterns
        patterns = patterns.patterns
    return PatternSet(patterns, ignore_case=ignore_case)


class NotDenied:
    """Refuses a path that matches a deny pattern, in any case, under any of its names.

    Deny patterns ignore case: ``**/*.pem`` refuses ``backup.PEM``, and
    ``~/.ssh/**`` refuses ``~/.SSH/id_rsa`` (the key itself on a
    case-insensitive file system). ``mounts`` is a snapshot of the mount
    table: the file's other names through bind mounts are matched too.
    """

    def __init__(
        self, deny: PatternSet | Iterable[FilePattern], mounts: Sequence[Mount] = ()
    ) -> None:
        self.deny = _patterns(deny, ignore_case=True)
        self.mounts = mounts

    def check(self, candidate: Candidate) -> None:
        if not self.deny:
            return
        try:
            names = aliases(candidate.path, self.mounts, candidate.mount)
        except Unlocatable:  # a name the agent cannot know might be a denied one
            raise unavailable() from None
        for path in (candidate.path, *names):
            if self.deny.matches(path):
                raise unavailable()


class OwnMount:
    """Refuses a file on a mount that the agent's own mount table does not show.

    A descriptor reached into another mount namespace (a container's, a
    sandbox's) lies on one of that namespace's mounts: its real path reads
    like a path of the agent's, yet names another file. The mount id of the
    descriptor must be one of those in ``mounts`` (/proc/self/mountinfo), or
    ``root``, the mount holding the agent's root directory (found now when not
    given), which a chrooted agent's mountinfo leaves out.
    """

    def __init__(self, mounts: Sequence[Mount], root: int | None = None) -> None:
        if root is None:
            root = root_mount_id()
        self.ids = frozenset(m.id for m in mounts) | ({root} if root is not None else set())

    def check(self, candidate: Candidate) -> None:
        if candidate.mount is not None and candidate.mount not in self.ids:
            raise unavailable()


#: File systems that answer to other spellings of a name than the one stored: vfat's
#: 8.3 short names (VAULT~1.KDB for vault.kdbx), trailing dots and spaces ignored.
DOS_NAMED = frozenset({"vfat", "msdos", "exfat", "ntfs", "ntfs3", "fuseblk"})
_SHORT_NAME = re.compile(r"~[0-9]")


class NoAliasNames:
    """Refuses a name on a DOS-named file system that may be an alias of another name.

    The real path of a descriptor is the name as it was asked for: on vfat
    ``backup.pem.`` and ``BACKUP~1.PEM`` open ``backup.pem``, and neither
    matches ``**/*.pem``. Names there that end in a dot or a space, or hold
    ``~`` and a digit, are refused; so is a legitimate name of that shape (the
    technician can list the directory, which shows names as stored).
    """

    def __init__(self, mounts: Sequence[Mount]) -> None:
        self.points = {m.id: m.point for m in mounts if m.fstype in DOS_NAMED}

    def check(self, candidate: Candidate) -> None:
        point = self.points.get(candidate.mount) if candidate.mount is not None else None
        if point is None:
            return
        below = candidate.path[len(point) :] if candidate.path.startswith(point) else ""
        for name in below.split("/"):
            if name.endswith((".", " ")) or _SHORT_NAME.search(name):
                raise unavailable()


class Allowlisted:
    """Refuses a path that no allow pattern matches. No patterns: refuses everything."""

    def __init__(self, allow: PatternSet | Iterable[FilePattern]) -> None:
        self.allow = _patterns(allow)

    def check(self, candidate: Candidate) -> None:
        if not self.allow.matches(candidate.path):
            raise unavailable()


class LeadsToAllowlisted:
    """Passes a directory below which an allow pattern could match, so it can be walked.

    With ``/var/log/*.log`` allowed, ``/``, ``/var`` and ``/var/log`` lead
    there; anything that is not a directory is refused.
    """

    def __init__(self, allow: PatternSet | Iterable[FilePattern]) -> None:
        self.allow = _patterns(allow)

    def check(self, candidate: Candidate) -> None:
        if not (stat.S_ISDIR(candidate.stat.st_mode) and self.allow.leads_to(candidate.path)):
            raise unavailable()


class NotRemoved:
    """Refuses a file that has no name left (deleted while open), or a path the kernel
    could not name (the real path of a descriptor is then not an absolute path)."""

    def check(self, candidate: Candidate) -> None:
        if candidate.stat.st_nlink == 0 or not candidate.path.startswith("/"):
            raise unavailable()


class RegularFile:
    """Refuses anything but a regular file: FIFOs, sockets, devices, directories."""

    def check(self, candidate: Candidate) -> None:
        mode = candidate.stat.st_mode
        if not stat.S_ISREG(mode):
            raise PolicyRefused(
                f"not a regular file (it is a {kind_of(mode)}); only regular files can be read"
            )


class Directory:
    """Refuses anything but a directory."""

    def check(self, candidate: Candidate) -> None:
        mode = candidate.stat.st_mode
        if not stat.S_ISDIR(mode):
            raise PolicyRefused(f"not a directory (it is a {kind_of(mode)})")


class SingleLink:
    """Refuses a regular file with more than one hard link.

    A hard link is the same file under a second name. One made inside an
    allowed directory to a denied file (``~/.ssh/id_ed25519``) has a real path
    that the allowlist matches, and nothing about the descriptor names the
    denied place, so files with several links are refused unless the policy
    says ``[files] allow_hardlinks = true``.
    """

    def check(self, candidate: Candidate) -> None:
        st = candidate.stat
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            raise PolicyRefused(
                f"the file has {st.st_nlink} hard links, and files with more than one "
                "are refused because a hard link can give a denied file an allowed name",
                hint="The customer can set [files] allow_hardlinks = true in the agent policy.",
            )


class SizeWithin:
    """Refuses a file whose size is over the cap, before a byte of it is read."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def check(self, candidate: Candidate) -> None:
        if candidate.stat.st_size > self.max_bytes:
            raise too_large(self.max_bytes, candidate.stat.st_size)


def too_large(max_bytes: int, size: int | None = None) -> PolicyRefused:
    what = f"the file is {size} bytes" if size is not None else "the file is longer"
    return PolicyRefused(
        f"{what}, over the agent's cap of {max_bytes} bytes ([files] max_bytes)",
        hint="The customer can raise [files] max_bytes in the agent policy.",
    )


class AllOf:
    """Passes when every rule passes; raises the first refusal. Empty: refuses."""

    def __init__(self, rules: Sequence[FileRule]) -> None:
        self.rules = tuple(rules)

    def check(self, candidate: Candidate) -> None:
        if not self.rules:
            raise PolicyRefused("the policy has no rules (an empty AllOf allows nothing)")
        for rule in self.rules:
            rule.check(candidate)


class AnyOf:
    """Passes when at least one rule passes; else raises the first rule's refusal.

    Empty: refuses.
    """

    def __init__(self, rules: Sequence[FileRule]) -> None:
        self.rules = tuple(rules)

    def check(self, candidate: Candidate) -> None:
        first: PolicyRefused | None = None
        for rule in self.rules:
            try:
                rule.check(candidate)
            except PolicyRefused as exc:
                first = first or exc
            else:
                return
        raise first or PolicyRefused("the policy has no rules (an empty AnyOf allows nothing)")


class UnsafeAllowAll:
    """Passes everything. For tests only: it logs a warning every time it runs."""

    def check(self, candidate: Candidate) -> None:
        logger.warning("UnsafeAllowAll passed %s without checking it: never use this in production",
                       candidate.path)  # fmt: skip


__all__ = [
    "DOS_NAMED",
    "UNAVAILABLE",
    "AllOf",
    "Allowlisted",
    "AnyOf",
    "Candidate",
    "Directory",
    "FileRule",
    "LeadsToAllowlisted",
    "NoAliasNames",
    "NotDenied",
    "NotRemoved",
    "OwnMount",
    "RegularFile",
    "SingleLink",
    "SizeWithin",
    "UnsafeAllowAll",
    "kind_of",
    "too_large",
    "unavailable",
]
