"""Process tuning for bulk SSH traffic (toolkit.transport.tuning)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from toolkit.transport.tuning import CIPHERS, tune_allocator

# Four 256 KiB buffers alive at once, then freed, as a packet's copies are on
# its way through asyncssh; count the page faults of 100 rounds. A fresh
# interpreter each time: the tuning is process-wide.
_FAULTS = """
import resource, sys
if sys.argv[1] == "tuned":
    from toolkit.transport.tuning import tune_allocator
    if not tune_allocator():
        sys.exit("refused")  # e.g. 32-bit glibc caps the mmap threshold at 512 KiB
source = bytearray(256 * 1024)
def rounds(n):
    for _ in range(n):
        live = [bytes(source) for _ in range(4)]
        del live
rounds(20)  # warm up the heap
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(100)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _glibc() -> bool:
    confstr = getattr(os, "confstr", None)
    try:
        return confstr is not None and bool(confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError):
        return False


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True)
    if out.stderr.strip() == "refused":
        pytest.skip("this glibc refused the thresholds (a 32-bit build caps them)")
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


@pytest.mark.skipif(
    not _glibc(), reason="tune_allocator sets glibc's malloc; this libc is not glibc"
)
def test_packet_sized_buffers_stop_costing_page_faults_once_tuned() -> None:
    # 400 buffers of 64 pages: untuned, glibc gives most back and faults them in again.
    assert _faults("untuned") > 400 * 32
    assert _faults("tuned") < 100


@pytest.mark.parametrize("missing", ["confstr", "ctypes"])
def test_a_platform_without_the_means_runs_untuned(
    missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows has no os.confstr, some builds no ctypes: no tuning, and no error
    (an error here would leave every connection without its transport)."""
    if missing == "confstr":
        monkeypatch.delattr(os, "confstr", raising=False)
    else:
        monkeypatch.setitem(sys.modules, "ctypes", None)
    tune_allocator.cache_clear()
    try:
        assert tune_allocator() is False
    finally:
        tune_allocator.cache_clear()


def test_no_cbc_cipher_is_offered() -> None:
    # batching.attach drops asyncssh's ignore packets for anything but CBC.
    assert CIPHERS and not any("cbc" in name for name in CIPHERS)
