"""OpenedFile.head and .tail: the lines `head -n` and `tail -n` give, read in blocks.

Compared with coreutils on many small shapes (blocks of a few bytes, so line
ends fall on every block boundary), and checked to read no further than the
lines they send: head stops within one block of its last line, tail reads
backwards only as far as its first line.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from toolkit.errors import PolicyRefused
from toolkit.policy.files import OpenedFile


def opened(path: Path, max_bytes: int = 1 << 30) -> OpenedFile:
    fd = os.open(path, os.O_RDONLY)
    return OpenedFile(fd, str(path), os.fstat(fd), max_bytes)


def coreutils(tool: str, lines: int, path: Path) -> bytes:
    return subprocess.run(
        [tool, "-n", str(lines), str(path)], capture_output=True, check=True
    ).stdout


@pytest.mark.skipif(not shutil.which("tail") or not shutil.which("head"), reason="no coreutils")
def test_head_and_tail_give_what_head_n_and_tail_n_give(tmp_path: Path) -> None:
    rng = random.Random(15)
    path = tmp_path / "f"
    for _ in range(400):
        path.write_bytes(bytes(rng.choice(b"ab\n") for _ in range(rng.randint(0, 30))))
        lines, block = rng.randint(1, 6), rng.randint(1, 5)
        with opened(path) as f:
            assert b"".join(f.head(lines, block)) == coreutils("head", lines, path)
            assert b"".join(f.tail(lines, block)) == coreutils("tail", lines, path)


def test_head_stops_reading_within_one_block_of_its_last_line(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"line %06d\n" % i for i in range(100_000)))
    with opened(path) as f:
        assert b"".join(f.head(3, 4096)) == b"line 000000\nline 000001\nline 000002\n"
        assert os.lseek(f.fd, 0, os.SEEK_CUR) == 4096  # one block, not 1.2 MB


def test_tail_reads_backwards_only_as_far_as_its_first_line(tmp_path: Path) -> None:
    path = tmp_path / "big.log"
    path.write_bytes(b"".join(b"line %06d\n" % i for i in range(100_000)))
    preads: list[int] = []
    real = os.pread

    def counting(fd: int, length: int, offset: int) -> bytes:
        preads.append(length)
        return real(fd, length, offset)

    with opened(path) as f:
        os.pread = counting
        try:
            assert b"".join(f.tail(2, 4096)) == b"line 099998\nline 099999\n"
        finally:
            os.pread = real
    assert preads == [4096]


def test_a_range_over_the_cap_is_refused_without_sending_past_it(tmp_path: Path) -> None:
    path = tmp_path / "long-lines"
    path.write_bytes(b"a" * 100 + b"\n" + b"b" * 100 + b"\n")
    with opened(path, max_bytes=150) as f:
        head = f.head(2, 64)
        sent = next(head)
        assert sent == b"a" * 64
        with pytest.raises(PolicyRefused, match="cap of 150 bytes"):
            list(head)
        with pytest.raises(PolicyRefused, match="cap of 150 bytes"):
            list(f.tail(2, 64))
        assert b"".join(f.tail(1, 64)) == b"b" * 100 + b"\n"


def test_a_file_whose_size_reads_as_zero_is_read_forwards(tmp_path: Path) -> None:
    with opened(Path("/proc/self/limits")) as f:
        assert f.size == 0
        whole = f.read()
        expected = b"".join(whole.splitlines(keepends=True)[-3:])
        assert b"".join(f.tail(3)) == expected
        assert b"".join(f.head(2)) == b"".join(whole.splitlines(keepends=True)[:2])


def test_a_file_holding_less_than_its_size_says_is_read_forwards() -> None:
    # /sys files report 4096 bytes and hold a line; tail must give that line, not refuse.
    path = Path("/sys/devices/system/cpu/online")
    if not path.exists() or path.stat().st_size <= len(path.read_bytes()):
        pytest.skip("this kernel has no /sys file whose size exceeds what it holds")
    with opened(path) as f:
        assert b"".join(f.tail(1)) == path.read_bytes()
