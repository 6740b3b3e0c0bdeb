"""Reading, listing and examining files, decided on the file actually opened.

Every operation follows the same steps:

1. Check the request itself: a ``str`` (or ``bytes``) that is valid UTF-8, has
   no NUL byte, is at most :data:`MAX_PATH_BYTES` long, and is absolute or
   starts with ``~/`` (the agent user's home).
2. Open it with ``O_PATH | O_NOFOLLOW``: this gives a descriptor without
   opening the file for reading, so a FIFO cannot block, a device is not
   touched, and a denied file is never opened. If the last component is a
   symlink, read the link from that descriptor and repeat with its target (at
   most :data:`MAX_SYMLINKS` times); the kernel resolves ``..`` and symlinked
   parent directories on the way.
3. ``fstat`` the descriptor, and take its real path from
   ``/proc/self/fd/N``. Match that real path, never the string that was asked
   for, against the deny patterns (also under its other names through bind
   mounts), then the allow patterns, then check type, hard links and size:
   :func:`file_rule` composes these rules for each operation.
4. Only then open the same inode for reading, through ``/proc/self/fd/N``
   (``O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY``), and check it is still
   the file that was judged. Nothing can be swapped in between: the second
   open goes through the descriptor, not through the path.

A path that is denied, not allowlisted or missing is refused with one
generic text, so a refusal never tells whether a file exists.

Usage::

    with open_for_read("/var/log/syslog", policy) as opened:
        data = opened.read()          # at most policy.max_bytes
    entries = list_dir("/var/log", policy)
    info = stat_path("/etc/os-release", policy)
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from toolkit.errors import PolicyRefused
from toolkit.policy._glob import PatternSet
from toolkit.policy._mounts import Mount, read_mounts
from toolkit.policy.rules import (
    AllOf,
    Allowlisted,
    AnyOf,
    Candidate,
    Directory,
    FileRule,
    LeadsToAllowlisted,
    NotDenied,
    NotRemoved,
    RegularFile,
    SingleLink,
    SizeWithin,
    kind_of,
    too_large,
    unavailable,
)

if TYPE_CHECKING:
    from toolkit.policy.model import Policy

MAX_PATH_BYTES = 4095  # PATH_MAX (4096) less the terminating NUL
MAX_SYMLINKS = 40  # as the kernel's own limit
CHUNK = 1 << 20

Operation = Literal["read", "list", "stat"]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def file_rule(policy: Policy, operation: Operation, mounts: Sequence[Mount] = ()) -> FileRule:
    """The rule an operation's target must pass, in the order the checks run.

    - every operation: the file still has a name, no deny pattern matches it
      (under any of its names through ``mounts``);
    - ``read``: an allow pattern matches it, it is a regular file, it has one
      hard link (unless ``allow_hardlinks``), it is no bigger than ``max_bytes``;
    - ``list``: an allow pattern matches it or it is a directory on the way to
      one, and it is a directory;
    - ``stat``: an allow pattern matches it or it is a directory on the way to
      one, and a regular file has one hard link (unless ``allow_hardlinks``).
    """
    allow = PatternSet(policy.allow)
    rules: list[FileRule] = [NotRemoved(), NotDenied(policy.deny, mounts)]
    if operation == "read":
        rules.append(Allowlisted(allow))
    else:
        rules.append(AnyOf([Allowlisted(allow), LeadsToAllowlisted(allow)]))
    if not policy.allow_hardlinks:
        rules.append(SingleLink())
    if operation == "read":
        rules += [RegularFile(), SizeWithin(policy.max_bytes)]
    elif operation == "list":
        rules.append(Directory())
    return AllOf(rules)


class _StatFields:
    """Size and mtime from the ``stat`` that Entry and Stat both carry."""

    stat: os.stat_result

    @property
    def size(self) -> int:
        return self.stat.st_size

    @property
    def mtime(self) -> float:
        return self.stat.st_mtime


@dataclass(frozen=True)
class Entry(_StatFields):
    """One directory entry, as ``lstat`` sees it (a symlink is shown as a symlink)."""

    name: str
    kind: str
    stat: os.stat_result


class Listing(list[Entry]):
    """A directory's visible entries, sorted by name; ``path`` is the directory's real path."""

    def __init__(self, path: str, entries: list[Entry]) -> None:
        super().__init__(entries)
        self.path = path


@dataclass(frozen=True)
class Stat(_StatFields):
    """What ``stat`` tells about an allowed path: ``path`` is its real path."""

    name: str  # the last component of the path that was asked for
    path: str
    kind: str
    stat: os.stat_result


class OpenedFile:
    """A regular file the policy allowed, open for reading.

    The caller owns ``fd``: close it with :meth:`close` or a ``with`` block.
    :meth:`chunks` and :meth:`read` stop at ``max_bytes``: a file that turns
    out longer (it grew, or it is a /proc file whose size reads as 0) raises
    PolicyRefused naming the cap once the cap is passed, having returned no
    byte beyond it.
    """

    def __init__(self, fd: int, real_path: str, stat: os.stat_result, max_bytes: int) -> None:
        self.fd = fd
        self.real_path = real_path
        self.stat = stat
        self.size = stat.st_size
        self.max_bytes = max_bytes
        self.closed = False

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The content from the start, in chunks of at most ``size`` bytes."""
        with contextlib.suppress(OSError):
            os.lseek(self.fd, 0, os.SEEK_SET)
        total = 0
        while True:
            chunk = os.read(self.fd, min(size, self.max_bytes + 1 - total))
            if not chunk:
                return
            total += len(chunk)
            if total > self.max_bytes:
                cap = too_large(self.max_bytes)
                raise PolicyRefused(
                    f"refused: {_shown(self.real_path)}: {cap.message}", hint=cap.hint
                )
            yield chunk

    def read(self) -> bytes:
        """The whole content, at most ``max_bytes``."""
        return b"".join(self.chunks())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)

    def __enter__(self) -> OpenedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenedFile(fd={self.fd}, real_path={self.real_path!r}, size={self.size})"


def _shown(path: str) -> str:
    """A path for a message: quoted, control characters escaped, cut short."""
    text = repr(path)
    return text if len(text) <= 200 else text[:196] + "...'"


def _request(path: str | bytes, home: str) -> tuple[str, str]:
    """Step 1: the path as shown in messages, and as an absolute path to open."""
    if isinstance(path, bytes):
        if b"\0" in path:
            raise PolicyRefused("refused: the path contains a NUL byte")
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyRefused("refused: the path is not valid UTF-8") from None
        size = len(path)
    elif isinstance(path, str):
        text = path
        if "\0" in text:
            raise PolicyRefused("refused: the path contains a NUL byte")
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError:
            raise PolicyRefused("refused: the path is not valid UTF-8") from None
    else:
        raise PolicyRefused("refused: a path must be a string")
    if size > MAX_PATH_BYTES:
        raise PolicyRefused(f"refused: the path is longer than {MAX_PATH_BYTES} bytes")
    if text == "~" or text.startswith("~/"):
        absolute = home + text[1:]
    elif text.startswith("/"):
        absolute = text
    else:
        raise PolicyRefused(
            f"refused: {_shown(text)}: a path must be absolute or start with ~/",
            hint="The agent has no working directory to resolve a relative path against.",
        )
    if len(absolute.encode("utf-8")) > MAX_PATH_BYTES:
        raise PolicyRefused(f"refused: the path is longer than {MAX_PATH_BYTES} bytes")
    return _shown(text), absolute


def _open_path(absolute: str) -> int:
    """Step 2: an O_PATH descriptor of what ``absolute`` names, symlinks followed by hand."""
    current = absolute
    for _ in range(MAX_SYMLINKS + 1):
        try:
            fd = os.open(current, _PATH_FLAGS)
        except (OSError, ValueError):
            raise unavailable() from None
        try:
            if not stat.S_ISLNK(os.fstat(fd).st_mode):
                return fd
            target = os.readlink("", dir_fd=fd)  # the link as it is now, not as it was named
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            os.close(fd)
            raise unavailable() from None
        os.close(fd)
        if not link.startswith("/"):
            raise unavailable()
        current = os.path.join(os.path.dirname(link), target)
    raise unavailable()  # a loop, or a chain too long


def _candidate(fd: int) -> Candidate:
    """Step 3: the descriptor's real path and fstat."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        st = os.fstat(fd)
        real.encode("utf-8")
    except (OSError, UnicodeEncodeError):
        raise unavailable() from None
    return Candidate(real, st)


def _judge(absolute: str, shown: str, rule: FileRule) -> tuple[int, Candidate]:
    """Steps 2 and 3: an O_PATH descriptor the rule passed, and what it decided on."""
    try:
        fd = _open_path(absolute)
    except PolicyRefused as exc:
        raise _refused(shown, exc) from None
    try:
        candidate = _candidate(fd)
        rule.check(candidate)
    except PolicyRefused as exc:
        os.close(fd)
        raise _refused(shown, exc) from None
    return fd, candidate


def _refused(shown: str, exc: PolicyRefused) -> PolicyRefused:
    return PolicyRefused(f"refused: {shown}: {exc.message}", hint=exc.hint)


def _reopen(fd: int, flags: int, shown: str, judged: os.stat_result) -> int:
    """Step 4: open the judged inode itself, through its descriptor."""
    try:
        new = os.open(f"/proc/self/fd/{fd}", flags)
    except OSError as exc:
        reason = (exc.strerror or "error").lower()
        raise PolicyRefused(f"refused: {shown}: the agent cannot open it ({reason})") from None
    st = os.fstat(new)
    if (st.st_dev, st.st_ino, stat.S_IFMT(st.st_mode)) != (
        judged.st_dev,
        judged.st_ino,
        stat.S_IFMT(judged.st_mode),
    ):  # cannot happen through /proc/self/fd; refuse rather than trust it
        os.close(new)
        raise PolicyRefused(f"refused: {shown}: the file changed while it was being opened")
    return new


def open_for_read(path: str | bytes, policy: Policy) -> OpenedFile:
    """Open an allowlisted regular file for reading; raises PolicyRefused otherwise."""
    shown, absolute = _request(path, policy.home)
    pfd, candidate = _judge(absolute, shown, file_rule(policy, "read", read_mounts()))
    try:
        fd = _reopen(pfd, _READ_FLAGS, shown, candidate.stat)
    finally:
        os.close(pfd)
    return OpenedFile(fd, candidate.path, os.fstat(fd), policy.max_bytes)


def stat_path(path: str | bytes, policy: Policy) -> Stat:
    """``stat`` an allowlisted path (symlinks followed, then judged on the target)."""
    shown, absolute = _request(path, policy.home)
    fd, candidate = _judge(absolute, shown, file_rule(policy, "stat", read_mounts()))
    os.close(fd)
    name = os.path.basename(absolute.rstrip("/")) or "/"
    return Stat(name, candidate.path, kind_of(candidate.stat.st_mode), candidate.stat)


def _visible(directory: str, name: str, st: os.stat_result, rule: FileRule) -> bool:
    """Whether ``stat`` would allow the entry ``name`` (a symlink: its target)."""
    child = os.path.join(directory, name)
    try:
        if stat.S_ISLNK(st.st_mode):
            fd, _ = _judge(child, "", rule)
            os.close(fd)
        else:
            rule.check(Candidate(child, st))
    except PolicyRefused:
        return False
    return True


def list_dir(path: str | bytes, policy: Policy) -> Listing:
    """The entries of a directory that is allowlisted or on the way to an allowed path.

    Only entries that :func:`stat_path` would allow are returned, sorted by
    name: denied and unlisted names do not appear, nor do symlinks whose
    target would be refused, nor names that are not valid UTF-8.
    """
    shown, absolute = _request(path, policy.home)
    mounts = read_mounts()
    pfd, candidate = _judge(absolute, shown, file_rule(policy, "list", mounts))
    try:
        dfd = _reopen(pfd, _READ_FLAGS | os.O_DIRECTORY, shown, candidate.stat)
    finally:
        os.close(pfd)
    rule = file_rule(policy, "stat", mounts)
    entries = []
    try:
        for name in sorted(os.listdir(dfd)):
            try:
                name.encode("utf-8")
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except (OSError, UnicodeEncodeError):
                continue
            if _visible(candidate.path, name, st, rule):
                entries.append(Entry(name, kind_of(st.st_mode), st))
    finally:
        os.close(dfd)
    return Listing(candidate.path, entries)


__all__ = [
    "MAX_PATH_BYTES",
    "MAX_SYMLINKS",
    "Entry",
    "Listing",
    "OpenedFile",
    "Operation",
    "Stat",
    "file_rule",
    "list_dir",
    "open_for_read",
    "stat_path",
]
