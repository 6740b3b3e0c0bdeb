"""SSH settings every toolkit connection shares: agent, technician and relay alike.

AES-GCM first: with AES instructions it runs about twice chacha20's speed here
(docs/protocol.md); OpenSSH's usual choices follow. A large channel window
and packets keep bulk output from waiting on round trips.
"""

from __future__ import annotations

import functools
import os
from typing import Any

CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)
WINDOW = 8 * 1024 * 1024
MAX_PACKET = 256 * 1024

# glibc's malloc serves requests above M_MMAP_THRESHOLD (128 KiB to start) with a
# fresh mmap, and gives the top of its heap back above M_TRIM_THRESHOLD: a
# 256 KiB packet's every copy then page-faults in new memory. Measured here, that
# made asyncssh's receive of 256 KiB packets six times as costly per byte as of
# 64 KiB ones (bench/README.md, Sessions). Fixed values also stop glibc's own
# threshold from creeping up and down with what was last freed.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 4 * 1024 * 1024
TRIM_THRESHOLD = 16 * 1024 * 1024


def _glibc() -> Any | None:
    """The C library's symbols if it is glibc, else None (never raises)."""
    confstr = getattr(os, "confstr", None)  # not on Windows
    try:
        if confstr is None or not confstr("CS_GNU_LIBC_VERSION"):
            return None  # another C library, whose allocator has its own rules
        import ctypes

        return ctypes.CDLL(None)
    except Exception:  # no ctypes, or no symbols to load
        return None


@functools.cache
def tune_allocator() -> bool:
    """Keep packet-sized buffers in glibc's heap; whether it applied (False elsewhere).

    Never raises: a connection must not depend on it (asyncio would only log the
    error from ``connection_made`` and leave the connection without a transport).
    """
    libc = _glibc()
    try:
        return libc is not None and bool(
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except Exception:  # no mallopt: run untuned
        return False


def release_memory() -> bool:
    """Give the free pages inside glibc's heap back to the system; whether any went.

    With the thresholds above, the buffers of a burst of traffic that ended are
    kept for the next one; a long-running process (``toolkit relay``) calls this
    now and then so that they do not stay resident for good.
    """
    libc = _glibc()
    try:
        return libc is not None and bool(libc.malloc_trim(0))
    except Exception:
        return False


__all__ = [
    "CIPHERS",
    "MAX_PACKET",
    "MMAP_THRESHOLD",
    "TRIM_THRESHOLD",
    "WINDOW",
    "release_memory",
    "tune_allocator",
]
