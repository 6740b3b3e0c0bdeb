"""`toolkit run --inventory` as a process: Ctrl-C for real, and the live view on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from toolkit.errors import ExitCode

ROOT = Path(__file__).parents[3]

INVENTORY = "".join(
    f'[hosts.web-0{i}]\naddress = "127.0.0.1:700{i}"\nparams = {{ unit = "a.service" }}\n'
    for i in range(1, 5)
)


def _start(
    tmp_path: Path, keygen_key: Path, *extra: str, stderr: int | None = subprocess.PIPE
) -> tuple[subprocess.Popen[str], IO[str]]:
    inventory = tmp_path / "hosts.toml"
    inventory.write_text(INVENTORY)
    read, write = os.pipe()
    line = ["run", "restart-unit", "--inventory", str(inventory), "--ticket", "OPS-1"]
    line += ["--key", str(keygen_key), *extra]
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.cli.fleet_cli_child", *line],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        pass_fds=(write,),
        env={**os.environ, "FLEET_CONTROL_FD": str(write)},
    )
    os.close(write)
    return child, os.fdopen(read)


def _until(stream: IO[str], wanted: set[str]) -> None:
    seen: set[str] = set()
    while not wanted <= seen:
        line = stream.readline()
        assert line, f"ended before {wanted - seen}"
        seen.add(line.rstrip("\n"))


def test_ctrl_c_lets_running_hosts_end_and_prints_the_recap(
    tmp_path: Path, keygen_key: Path
) -> None:
    child, control = _start(tmp_path, keygen_key, "--forks", "2", "--json")
    assert child.stdin is not None and child.stderr is not None and child.stdout is not None
    try:
        _until(control, {"started web-01", "started web-02"})
        child.send_signal(signal.SIGINT)
        while "Ctrl-C: no new hosts" not in child.stderr.readline():
            pass
        child.stdin.write("go\n")
        child.stdin.close()
        err = child.stderr.read()
        out = child.stdout.read()
        code = child.wait(timeout=60)
    finally:
        child.kill()
        control.close()
    assert code == ExitCode.INTERRUPTED, err
    recaps = [line for line in err.splitlines() if line.startswith("recap: ")]
    assert recaps == [
        "recap: web-01 result=interrupted steps=1 (exit 130: stopped after its step)",
        "recap: web-02 result=interrupted steps=1 (exit 130: stopped after its step)",
        "recap: web-03 result=interrupted steps=0 "
        "(exit 130: not started: the run was interrupted (Ctrl-C))",
        "recap: web-04 result=interrupted steps=0 "
        "(exit 130: not started: the run was interrupted (Ctrl-C))",
    ]
    retry = (tmp_path / "hosts.toml.retry").read_text().splitlines()
    assert retry[1:] == ["web-01", "web-02", "web-03", "web-04"]
    summary = json.loads(out.splitlines()[-1])
    assert (summary["interrupted"], summary["exit_code"]) == (True, 130)
    document = json.loads(Path(summary["run_summary"]).read_text())
    assert [h["result"] for h in document["hosts"]] == ["interrupted"] * 4


def test_the_live_view_only_on_a_terminal(tmp_path: Path, keygen_key: Path) -> None:
    master, slave = pty.openpty()
    child, control = _start(tmp_path, keygen_key, "--forks", "4", stderr=slave)
    os.close(slave)
    assert child.stdin is not None
    screen = bytearray()

    def until(wanted: bytes) -> None:
        while wanted not in screen:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, f"no {wanted!r} on the terminal: {bytes(screen[-400:])!r}"
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            assert chunk, f"no {wanted!r} on the terminal: {bytes(screen[-400:])!r}"
            screen.extend(chunk)

    try:
        _until(control, {f"started web-0{i}" for i in range(1, 5)})
        until(b"0/4")  # the progress bar
        until(b"127.0.0.1:7004")  # the table of hosts in flight, with their step
        live = bytes(screen)
        child.stdin.write("go\n")
        child.stdin.close()
        until(b"recap: web-04 result=ok")
        code = child.wait(timeout=60)
    finally:
        child.kill()
        control.close()
        os.close(master)
    assert code == 0
    assert b"check" in live
    assert b"web-01 | checked" in bytes(screen)


def test_no_live_view_off_a_terminal(tmp_path: Path, keygen_key: Path) -> None:
    child, control = _start(tmp_path, keygen_key, "--forks", "4")
    assert child.stdin is not None and child.stderr is not None
    try:
        _until(control, {f"started web-0{i}" for i in range(1, 5)})
        child.stdin.write("go\n")
        child.stdin.close()
        err = child.stderr.read()
        code = child.wait(timeout=60)
    finally:
        child.kill()
        control.close()
    assert code == 0
    assert "\x1b" not in err and "0/4" not in err
    assert "web-02 | checked" in err.splitlines()
