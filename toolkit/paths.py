"""Where toolkit keeps things, through platformdirs.

On Linux this honours XDG_CONFIG_HOME, XDG_DATA_HOME and XDG_STATE_HOME, which
is how tests and scripts isolate runs from each other.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import platformdirs

APP = "toolkit"


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP, appauthor=False))


def data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def state_dir() -> Path:
    return Path(platformdirs.user_state_dir(APP, appauthor=False))


_UNSAFE = re.compile(r"[^A-Za-z0-9._#-]+")


def name_part(text: str, limit: int = 64) -> str:
    """``text`` made safe as part of a file name: no separators, no dots alone, cut short.

    Peers choose such text (a ticket the technician names, say): a ``/`` or a
    ``..`` in it must never reach a path, and an odd character must not make
    a file that cannot be created.
    """
    safe = _UNSAFE.sub("_", text)[:limit].strip(".")
    return safe or "_"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if missing and return it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def check_guarded(path: Path, what: str) -> None:
    """UsageError unless ``path`` is owned by this user (or root) and nobody else may write it.

    For what decides who gets in (an agent's trust file, its grant ledger): a file
    another user can change would let them add an issuer, or give a use back.
    A path that does not exist yet passes (it is made private when created).
    """
    from toolkit.errors import UsageError

    try:
        st = path.stat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"Cannot check {what} {path}: {exc.strerror or exc}.") from None
    owners = {os.geteuid(), 0}
    if st.st_uid not in owners or st.st_mode & 0o022:
        raise UsageError(
            f"{what.capitalize()} {path} may be changed by another user (owner uid "
            f"{st.st_uid}, mode {st.st_mode & 0o7777:04o}): refused, as it decides who gets in.",
            hint=f"chown it to the user the agent runs as and chmod go-w {path}.",
        )


def atomic_write(path: Path, data: bytes, mode: int = 0o600, *, replace: bool = True) -> bool:
    """Write ``path`` so that a crash leaves the old file or the new one, never half.

    A temporary file next to it is written and fsynced, renamed over ``path``
    (or, with ``replace`` False, linked to it, which never replaces a file:
    False then if ``path`` exists), and the directory is fsynced so that the
    rename or link itself survives a crash. The temporary file has a name
    nobody can guess and is created exclusively: a symlink planted at a
    predictable name (in a shared directory, next to an inventory) would
    otherwise have the data written through it.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            finally:
                tmp.unlink(missing_ok=True)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return True


__all__ = [
    "atomic_write",
    "check_guarded",
    "config_dir",
    "data_dir",
    "ensure_private_dir",
    "name_part",
    "state_dir",
]
