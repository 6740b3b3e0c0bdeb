"""Reading, listing and examining files, decided on the file actually opened.

Every operation follows the same steps:

1. Check the request itself: a ``str`` (or ``bytes``) that is valid UTF-8, has
   no NUL byte, is at most :data:`MAX_PATH_BYTES` long, and is absolute or
   starts with ``~/`` (the agent user's home).
2. Walk it one component at a time from the agent's root, each opened with
   ``O_PATH | O_NOFOLLOW`` relative to the directory before it: this gives
   descriptors without opening anything for reading, so a FIFO cannot block,
   a device is not touched, and a denied file is never opened. A symlink is
   read from its descriptor and its target walked in its place (at most
   :data:`MAX_SYMLINKS` in all), so the kernel never follows a link for the
   agent. That matters for /proc's "magic" links (``/proc/<pid>/root``,
   ``cwd``, ``exe``, ``fd/N``, ``map_files/...``), which the kernel follows
   into the process's own view of the machine, another mount namespace
   included: those of other processes are refused, the agent's own are
   followed by their text, in the agent's own namespace.
3. ``fstat`` the descriptor, take its real path from ``/proc/self/fd/N`` and
   its mount from ``/proc/self/fdinfo/N``. The mount must be one of the
   agent's own; the real path, never the string that was asked for, is
   matched against the deny patterns (also under its other names through
   bind mounts and overlay layers), then the allow patterns, then type, hard
   links and size are checked: :func:`file_rule` composes these rules for
   each operation.
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
from toolkit.policy._glob import PatternSet, split_path
from toolkit.policy._mounts import Mount, by_id, inside, mount_id, read_mounts, root_mount_id
from toolkit.policy.rules import (
    AllOf,
    Allowlisted,
    AnyOf,
    Candidate,
    Directory,
    FileRule,
    LeadsToAllowlisted,
    NoAliasNames,
    NotDenied,
    NotRemoved,
    OwnMount,
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
LINES_BLOCK = 64 * 1024  # head and tail read in blocks this size

Operation = Literal["read", "list", "stat"]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY


def file_rule(
    policy: Policy, operation: Operation, mounts: Sequence[Mount] | None = None
) -> FileRule:
    """The rule an operation's target must pass, in the order the checks run.

    ``mounts`` is the agent's mount table (read now when not given).

    - every operation: the file still has a name, it lies on one of the
      agent's own mounts, no deny pattern matches it (under any of its names
      through ``mounts``);
    - ``read``: an allow pattern matches it, it is a regular file, it has one
      hard link (unless ``allow_hardlinks``), it is no bigger than ``max_bytes``;
    - ``list``: an allow pattern matches it or it is a directory on the way to
      one, and it is a directory;
    - ``stat``: an allow pattern matches it or it is a directory on the way to
      one, and a regular file has one hard link (unless ``allow_hardlinks``).
    """
    if mounts is None:
        mounts = read_mounts()
    allow = PatternSet(policy.allow)
    rules: list[FileRule] = [
        NotRemoved(),
        OwnMount(mounts),
        NoAliasNames(mounts),
        NotDenied(policy.deny, mounts),
    ]
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


#: Names a listing looks at, at most: enough for any directory a person reads.
MAX_LIST_NAMES = 20_000


class Listing(list[Entry]):
    """A directory's visible entries, sorted by name; ``path`` is the directory's real path.

    ``truncated``: the directory holds more than MAX_LIST_NAMES names, and only
    that many (in the directory's own order) were looked at.
    """

    def __init__(self, path: str, entries: list[Entry], truncated: bool = False) -> None:
        super().__init__(entries)
        self.path = path
        self.truncated = truncated


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
                raise self._over_cap()
            yield chunk

    def read(self) -> bytes:
        """The whole content, at most ``max_bytes``."""
        return b"".join(self.chunks())

    def _over_cap(self) -> PolicyRefused:
        cap = too_large(self.max_bytes)
        return PolicyRefused(f"refused: {_shown(self.real_path)}: {cap.message}", hint=cap.hint)

    def head(self, lines: int, size: int = LINES_BLOCK) -> Iterator[bytes]:
        """The first ``lines`` lines, each with its newline (the last may have none).

        Reads on in blocks of ``size`` only until the last newline wanted, and
        sends nothing past it; bounded by ``max_bytes`` as :meth:`chunks` is.
        """
        with contextlib.suppress(OSError):
            os.lseek(self.fd, 0, os.SEEK_SET)
        total, left = 0, lines
        while left:
            chunk = os.read(self.fd, min(size, self.max_bytes + 1 - total))
            if not chunk:
                return
            at, found = _newlines(chunk, left, from_end=False)
            left -= found
            if not left:
                chunk = chunk[: at + 1]
            total += len(chunk)
            if total > self.max_bytes:
                raise self._over_cap()
            yield chunk

    def tail(self, lines: int, size: int = LINES_BLOCK) -> Iterator[bytes]:
        """The last ``lines`` lines, as ``tail -n`` gives them (a final newline ends the
        last line; it does not start another).

        Reads backwards from the end in blocks of ``size`` until the line before
        the first one wanted, then sends from there to the end, bounded by
        ``max_bytes``. A file whose size is not what it holds (0 in /proc, 4096
        in /sys, or one cut short meanwhile) is read forwards, as :meth:`chunks`
        reads it.
        """
        end = os.fstat(self.fd).st_size
        if end == 0:
            yield from self._tail_forwards(lines, size)
            return
        blocks: list[bytes] = []
        pos, need, found, start = end, lines, 0, 0
        while pos > 0:
            length = min(size, pos)
            pos -= length
            block = os.pread(self.fd, length, pos)
            if len(block) != length:
                yield from self._tail_forwards(lines, size)
                return
            if not blocks and block.endswith(b"\n"):
                need += 1  # the final newline ends the last line
            blocks.append(block)
            at, counted = _newlines(block, need - found, from_end=True)
            found += counted
            if found == need:
                start = pos + at + 1
                break
            if end - pos > self.max_bytes:
                raise self._over_cap()
        data = b"".join(reversed(blocks))
        sent = data[start - pos :]
        if len(sent) > self.max_bytes:
            raise self._over_cap()
        yield from _pieces(sent)

    def _tail_forwards(self, lines: int, size: int) -> Iterator[bytes]:
        data = b"".join(self.chunks(size))
        need = lines + data.endswith(b"\n")
        at, found = _newlines(data, need, from_end=True)
        yield from _pieces(data[at + 1 :] if found == need else data)

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


def _newlines(data: bytes, wanted: int, *, from_end: bool) -> tuple[int, int]:
    """Up to ``wanted`` newlines of ``data``, counted from its start or its end:
    the index of the last one counted (-1 or len(data) if none) and how many."""
    found, at = 0, len(data) if from_end else -1
    while found < wanted:
        at2 = data.rfind(b"\n", 0, at) if from_end else data.find(b"\n", at + 1)
        if at2 < 0:
            break
        found, at = found + 1, at2
    return at, found


def _pieces(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield bytes(view[start : start + size])


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


def _open_path(absolute: str, mounts: Sequence[Mount]) -> int:
    """Step 2: an O_PATH descriptor of what ``absolute`` names, walked by hand."""
    names = absolute.split("/")[::-1]  # a stack: the next name last
    fd = os.open("/", _PATH_FLAGS)  # the agent's root, even when it is chrooted
    is_dir, links = True, 0
    try:
        while names:
            name = names.pop()
            if name in ("", "."):
                if not is_dir:  # "file/" or "file/.", as the kernel: not a directory
                    raise unavailable()
                continue
            try:
                step = os.open(name, _PATH_FLAGS, dir_fd=fd)
            except OSError:
                raise unavailable() from None
            try:
                mode = os.fstat(step).st_mode
            except OSError:
                os.close(step)
                raise unavailable() from None
            if not stat.S_ISLNK(mode):
                os.close(fd)
                fd, is_dir = step, stat.S_ISDIR(mode)
                continue
            try:
                links += 1
                if links > MAX_SYMLINKS:  # a loop, or a chain too long
                    raise unavailable()
                _not_another_process(fd, mounts)
                target = os.readlink("", dir_fd=step)  # the link as it is now
            except OSError:
                raise unavailable() from None
            finally:
                os.close(step)
            if target.startswith("/"):
                root = os.open("/", _PATH_FLAGS)
                os.close(fd)
                fd = root
            names += target.split("/")[::-1]
        return fd
    except BaseException:
        os.close(fd)
        raise


def _not_another_process(directory: int, mounts: Sequence[Mount]) -> None:
    """Refuses a symlink in another process's ``/proc/<pid>`` directory.

    Every link there is a magic link (``root``, ``cwd``, ``exe``, ``fd/N``,
    ``map_files/...``, ``task/<tid>/...``), leading to what that process sees,
    from its own mount namespace and root. The agent's own (``/proc/self``,
    ``/proc/thread-self``, its pid) pass, and are then followed by their
    text. Links elsewhere in /proc (``self``, ``mounts``) are ordinary.
    """
    here = _mount_id(directory)
    mount = by_id(mounts, here)
    if mount is None:  # only the mount of a chrooted agent's root is missing from its table
        if here != root_mount_id():
            raise unavailable()
        return
    if mount.fstype != "proc":
        return
    path = inside(os.readlink(f"/proc/self/fd/{directory}"), mount)
    if path is None:  # not where its mount says: nothing to tell whose it is
        raise unavailable()
    names = split_path(path)
    if not names or not names[0].isdigit():
        return  # the top of /proc: its links are not any process's
    try:  # the agent's pid as this procfs numbers it (it may be another pid namespace's)
        own = os.readlink(os.path.join(mount.point, "self")) if mount.root == "/" else None
    except OSError:
        own = None
    if names[0] != own:
        raise unavailable()


def _mount_id(fd: int) -> int:
    found = mount_id(fd)
    if found is None:
        raise unavailable()
    return found


def _candidate(fd: int) -> Candidate:
    """Step 3: the descriptor's real path, fstat and mount."""
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")
        st = os.fstat(fd)
        real.encode("utf-8")
    except (OSError, UnicodeEncodeError):
        raise unavailable() from None
    return Candidate(real, st, _mount_id(fd))


def _judge(
    absolute: str, shown: str, rule: FileRule, mounts: Sequence[Mount]
) -> tuple[int, Candidate]:
    """Steps 2 and 3: an O_PATH descriptor the rule passed, and what it decided on."""
    try:
        fd = _open_path(absolute, mounts)
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


@dataclass(frozen=True)
class _Request:
    """Steps 1 to 3 of one request: the O_PATH descriptor its operation's rule passed."""

    shown: str
    absolute: str
    fd: int
    candidate: Candidate
    mounts: tuple[Mount, ...]


def _judged(path: str | bytes, policy: Policy, operation: Operation) -> _Request:
    shown, absolute = _request(path, policy.home)
    mounts = read_mounts()  # one snapshot per request: a mount made later has an unknown id
    fd, candidate = _judge(absolute, shown, file_rule(policy, operation, mounts), mounts)
    return _Request(shown, absolute, fd, candidate, mounts)


def open_for_read(path: str | bytes, policy: Policy) -> OpenedFile:
    """Open an allowlisted regular file for reading; raises PolicyRefused otherwise."""
    req = _judged(path, policy, "read")
    try:
        fd = _reopen(req.fd, _READ_FLAGS, req.shown, req.candidate.stat)
    finally:
        os.close(req.fd)
    return OpenedFile(fd, req.candidate.path, os.fstat(fd), policy.max_bytes)


def stat_path(path: str | bytes, policy: Policy) -> Stat:
    """``stat`` an allowlisted path (symlinks followed, then judged on the target)."""
    req = _judged(path, policy, "stat")
    os.close(req.fd)
    name = os.path.basename(req.absolute.rstrip("/")) or "/"
    st = req.candidate.stat
    return Stat(name, req.candidate.path, kind_of(st.st_mode), st)


def _visible(
    directory: str, name: str, st: os.stat_result, rule: FileRule, mounts: Sequence[Mount]
) -> bool:
    """Whether ``stat`` would allow the entry ``name`` (a symlink: its target)."""
    child = os.path.join(directory, name)
    try:
        if stat.S_ISLNK(st.st_mode):
            fd, _ = _judge(child, "", rule, mounts)
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
    req = _judged(path, policy, "list")
    try:
        dfd = _reopen(req.fd, _READ_FLAGS | os.O_DIRECTORY, req.shown, req.candidate.stat)
    finally:
        os.close(req.fd)
    rule = file_rule(policy, "stat", req.mounts)
    entries = []
    names: list[str] = []
    truncated = False
    try:
        with os.scandir(dfd) as listing:  # lazily: a directory may hold millions of names
            for found in listing:
                if len(names) == MAX_LIST_NAMES:
                    truncated = True
                    break
                names.append(found.name)
        for name in sorted(names):
            try:
                name.encode("utf-8")
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            except (OSError, UnicodeEncodeError):
                continue
            if _visible(req.candidate.path, name, st, rule, req.mounts):
                entries.append(Entry(name, kind_of(st.st_mode), st))
    finally:
        os.close(dfd)
    return Listing(req.candidate.path, entries, truncated)


__all__ = [
    "MAX_LIST_NAMES",
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
