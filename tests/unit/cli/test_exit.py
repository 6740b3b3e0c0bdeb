"""toolkit's exit skips the interpreter's teardown only where nothing can be lost by it."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import atexit, sys
from toolkit.cli import _exit_without_teardown

class Torn:
    def __del__(self):
        print("torn down", file=sys.stderr)

kept = Torn()
atexit.register(lambda: print("exit handler", file=sys.stderr))
sys.stdout.write("buffered output")  # no newline: still in the buffer
{setup}
_exit_without_teardown(3)
sys.exit(4)
"""


def _run(setup: str = "", *args: str) -> subprocess.CompletedProcess[str]:
    code = SCRIPT.format(setup=setup)
    return subprocess.run(
        [sys.executable, *args, "-c", code], capture_output=True, text=True, check=False
    )


def test_exit_handlers_run_and_output_is_flushed_without_the_teardown() -> None:
    done = _run()
    assert done.returncode == 3
    assert done.stdout == "buffered output"
    assert done.stderr == "exit handler\n"  # and no "torn down"


def test_a_file_left_open_for_writing_gets_the_normal_exit(tmp_path: Path) -> None:
    target = tmp_path / "left-open.txt"
    done = _run(f"left = open({str(target)!r}, 'w'); left.write('kept')")
    assert done.returncode == 4
    assert target.read_text() == "kept"  # flushed by the teardown
    assert "exit handler" in done.stderr and "torn down" in done.stderr


def test_files_only_read_do_not_count(tmp_path: Path) -> None:
    source = tmp_path / "read.txt"
    source.write_text("x")
    assert _run(f"left = open({str(source)!r})").returncode == 3


def test_another_thread_gets_the_normal_exit() -> None:
    setup = "import threading, time; threading.Thread(target=time.sleep, args=(0.2,)).start()"
    assert _run(setup).returncode == 4


def test_development_mode_gets_the_normal_exit() -> None:
    assert _run("", "-X", "dev").returncode == 4


def test_a_binary_or_gzip_file_left_open_gets_the_normal_exit(tmp_path: Path) -> None:
    binary, packed = tmp_path / "left.bin", tmp_path / "left.gz"
    assert _run(f"left = open({str(binary)!r}, 'wb'); left.write(b'kept')").returncode == 4
    assert binary.read_bytes() == b"kept"
    setup = f"import gzip; left = gzip.open({str(packed)!r}, 'wb'); left.write(b'kept')"
    assert _run(setup).returncode == 4
    assert gzip.decompress(packed.read_bytes()) == b"kept"  # its trailer, written at teardown


def test_memory_buffers_and_unbuffered_files_do_not_count(tmp_path: Path) -> None:
    raw = tmp_path / "raw.bin"
    setup = f"import io; memory = io.BytesIO(b'x'); left = open({str(raw)!r}, 'wb', buffering=0)"
    assert _run(setup).returncode == 3
