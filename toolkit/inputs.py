"""Files a command was told to read: regular files only, and never more than a cap.

A path on the command line may name a FIFO (opening it for reading waits for
a writer that may never come), a device (``/dev/zero`` never ends), a
directory or a file far larger than the command can use. Every file the CLI
reads is opened here, without blocking, and refused with one sentence unless
it is a regular file within its size limit. (The agent's own file reads for
the technician are a different matter: toolkit.policy.files.)
"""

from __future__ import annotations

import errno
import io
import os
import stat
from pathlib import Path

from toolkit.errors import UsageError

#: What a small input file (a policy, an allowed_signers file, a batch, a signature) may weigh.
SMALL = 4 << 20

_KINDS = (
    (stat.S_ISDIR, "it is a directory"),
    (stat.S_ISFIFO, "it is a FIFO (named pipe), not a regular file"),
    (stat.S_ISCHR, "it is a character device, not a regular file"),
    (stat.S_ISBLK, "it is a block device, not a regular file"),
    (stat.S_ISSOCK, "it is a socket, not a regular file"),
)


class UnreadableInput(UsageError):
    """A file given to a command is missing, unreadable, not a regular file or too large."""

    def __init__(self, what: str, path: Path | str, why: str, *, missing: bool = False) -> None:
        from toolkit.text import printable

        super().__init__(f"Cannot read {what} {printable(str(path), 200)}: {why}.")
        self.missing = missing


def _size(limit: int) -> str:
    if limit >= 1 << 20 and limit % (1 << 20) == 0:
        return f"{limit >> 20} MiB"
    if limit >= 1 << 10 and limit % (1 << 10) == 0:
        return f"{limit >> 10} KiB"
    return f"{limit} bytes"


def open_regular(path: Path | str, *, what: str, limit: int | None = None) -> io.BufferedReader:
    """``path`` opened for reading, if it is a regular file (of at most ``limit`` bytes).

    Raises :class:`UnreadableInput` otherwise. The checks are made on the
    opened descriptor, so a file swapped in between cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise UnreadableInput(what, path, "no such file", missing=True) from None
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        if exc.errno == errno.ENXIO:  # a Unix socket
            why = "it is not a regular file"
        raise UnreadableInput(what, path, why) from None
    except ValueError:  # a NUL byte in the path
        raise UnreadableInput(what, path, "the path holds a NUL character") from None
    try:
        info = os.fstat(fd)
        for test, why in _KINDS:
            if test(info.st_mode):
                raise UnreadableInput(what, path, why)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableInput(what, path, "it is not a regular file")
        if limit is not None and info.st_size > limit:
            raise UnreadableInput(what, path, f"it is larger than {_size(limit)}")
        os.set_blocking(fd, True)
        return open(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, *, what: str, limit: int = SMALL) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; else UnreadableInput.

    The limit holds even for a file that grows while it is read.
    """
    with open_regular(path, what=what, limit=limit) as f:
        try:
            data = f.read(limit + 1)
        except OSError as exc:
            raise UnreadableInput(what, path, (exc.strerror or str(exc)).lower()) from None
    if len(data) > limit:
        raise UnreadableInput(what, path, f"it is larger than {_size(limit)}")
    return data


def read_text(path: Path | str, *, what: str, limit: int = SMALL) -> str:
    """:func:`read_regular`, decoded as UTF-8 (else UnreadableInput)."""
    data = read_regular(path, what=what, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(what, path, f"it is not UTF-8 text (byte {exc.start})") from None


__all__ = ["SMALL", "UnreadableInput", "open_regular", "read_regular", "read_text"]
