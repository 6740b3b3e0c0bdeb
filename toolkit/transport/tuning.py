"""SSH settings every toolkit connection shares: agent, technician and relay alike.

AES-GCM first: with AES instructions it runs about twice chacha20's speed here
(docs/protocol.md); OpenSSH's usual choices follow. A large channel window
and packets keep bulk output from waiting on round trips.
"""

from __future__ import annotations

import functools
import os

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


@functools.cache
def tune_allocator() -> bool:
    """Keep packet-sized buffers in glibc's heap; whether it applied (False elsewhere).

    Never raises: a connection must not depend on it (asyncio would only log the
    error from ``connection_made`` and leave the connection without a transport).
    """
    confstr = getattr(os, "confstr", None)  # not on Windows
    try:
        glibc = confstr("CS_GNU_LIBC_VERSION") if confstr is not None else None
    except (ValueError, OSError):
        glibc = None
    if not glibc:
        return False  # another C library, whose allocator has its own rules
    try:
        import ctypes

        mallopt = ctypes.CDLL(None).mallopt
        return bool(
            mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
            and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except Exception:  # no ctypes, no mallopt: run untuned
        return False


__all__ = ["CIPHERS", "MAX_PACKET", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "WINDOW", "tune_allocator"]
