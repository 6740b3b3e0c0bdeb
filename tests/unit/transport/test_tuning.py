"""Process tuning for bulk SSH traffic (toolkit.transport.tuning)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from toolkit.transport.tuning import CIPHERS, release_memory, tune_allocator

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
        assert release_memory() is False
    finally:
        tune_allocator.cache_clear()


# A burst: buffers of 256 KiB to 2 MiB, with small objects that outlive them.
_BURST = """
import gc
from toolkit.transport.tuning import release_memory, tune_allocator
def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmRSS"))
tune_allocator()
big, keep = [], []
for i in range(100):
    for size in (256 << 10, 512 << 10, 1 << 20, 2 << 20):
        buf = bytearray(size)
        buf[::4096] = b"x" * len(range(0, size, 4096))
        big.append(buf)
    keep.append(bytearray(2000))
del big
gc.collect()
kept = rss()
released = release_memory()
print(kept, rss(), released)
"""


@pytest.mark.skipif(
    not _glibc(), reason="release_memory calls glibc's malloc_trim; this libc is not glibc"
)
def test_release_memory_gives_back_what_a_burst_left() -> None:
    out = subprocess.run([sys.executable, "-c", _BURST], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    kept, after, released = out.stdout.split()
    # About 380 MiB of freed buffers: held in the tuned heap, then given back.
    assert int(kept) - int(after) > 300 and released == "True", out.stdout


def test_no_cbc_cipher_is_offered() -> None:
    # batching.attach drops asyncssh's ignore packets for anything but CBC.
    assert CIPHERS and not any("cbc" in name for name in CIPHERS)
