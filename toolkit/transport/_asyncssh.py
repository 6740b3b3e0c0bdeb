"""asyncssh, loaded without the compiler runs of its liboqs probe.

When imported, asyncssh looks for liboqs (for sntrup761 key exchange) with
``ctypes.util.find_library``, which on Linux asks the ldconfig cache and
then, where gcc and ld are installed, compiles and links a probe with each:
about 25 ms of every toolkit process that speaks SSH, on a session's
critical path. Through :func:`load`, the probe asks the ldconfig cache only,
where a system's liboqs is registered. toolkit's own connections negotiate
mlkem768x25519 (from cryptography) before sntrup761 in any case.
"""

from __future__ import annotations

import sys
from types import ModuleType

_OQS = ("oqs", "liboqs")


def load() -> ModuleType:
    """``import asyncssh``, once per process: call it before importing a module that does."""
    loaded = sys.modules.get("asyncssh")
    if loaded is not None:
        return loaded
    import ctypes.util

    cached = getattr(ctypes.util, "_findSoname_ldconfig", None)
    if cached is None or not sys.platform.startswith("linux"):
        import asyncssh

        return asyncssh
    find = ctypes.util.find_library

    def find_in_cache(name: str) -> str | None:
        return cached(name) if name in _OQS else find(name)

    ctypes.util.find_library = find_in_cache
    try:
        import asyncssh
    finally:
        ctypes.util.find_library = find
    return asyncssh


__all__ = ["load"]
