"""The Linux diagnostics' findings, on output of the real commands run here as the agent would.

Where this machine has the program (df, ps, ss, ip, getent, du, journalctl,
perl), the diagnostic's own commands run for real and the findings are
checked against what the test set up (a listening socket, a directory of
known sizes); systemctl and timedatectl need a running systemd, so their
stand-ins (tests/fakes) answer.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import toolkit_linux
from toolkit_linux import _diagnostics as diag
from toolkit_linux._common import key_values

from tests.linux_support import FakeMachine, fake_machine, run_step
from toolkit.plugins import Diagnostic, Finding, Step, StepOutput

__all__ = ["fake_machine"]  # the fixture, used by name

PROCEDURES = {p.name: p for p in toolkit_linux.plugin.procedures}


def findings(
    name: str,
    values: dict[str, str] | None = None,
    *,
    home: Path,
    machine: FakeMachine | None = None,
) -> tuple[list[StepOutput], list[Finding]]:
    diagnostic = PROCEDURES[name]
    assert isinstance(diagnostic, Diagnostic) and diagnostic.findings is not None
    bound = diagnostic.bind(values or {})
    outputs = run_step(diagnostic, Step.RUN, bound, home=home, machine=machine)
    return outputs, diagnostic.findings(outputs, bound)


def messages(found: list[Finding], severity: str | None = None) -> list[str]:
    return [f.message for f in found if severity is None or f.severity == severity]


@pytest.fixture
def listener() -> Iterator[int]:
    """A TCP socket listening on loopback: its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the test connects


def test_system_names_the_kernel_and_memory(tmp_path: Path) -> None:
    outputs, found = findings("system", home=tmp_path)
    assert [o.exit_status for o in outputs] == [0, 0, 0, 0]
    assert messages(found)[0] == f"kernel {os.uname().release} (Linux)"
    assert any(m.startswith("memory: ") and m.endswith(" MiB available") for m in messages(found))


def test_os_release_names_the_system(tmp_path: Path) -> None:
    pretty = key_values(Path("/etc/os-release").read_text())["PRETTY_NAME"]
    _, found = findings("os-release", home=tmp_path)
    assert found == [Finding("info", pretty)]


def test_uptime_load_counts_per_cpu(tmp_path: Path) -> None:
    _, found = findings("uptime-load", home=tmp_path)
    assert messages(found)[0].startswith("up ")
    assert f"on {os.cpu_count()} CPUs" in messages(found)[1]


def test_load_thresholds() -> None:
    assert [f.severity for f in diag.load("100.0 1", "0.5 0.5 0.5 1/2 3", "2")] == ["info"] * 2
    assert diag.load("100.0 1", "4 2.5 1 1/2 3", "2")[1].severity == "warning"
    assert diag.load("100.0 1", "9 8.0 1 1/2 3", "2")[1].severity == "problem"
    assert diag.load("90061 1", "", "")[0] == Finding("info", "up 1d 1h 1m")
    assert diag.load("", "", "")[-1].severity == "warning"


def test_memory_from_proc_meminfo(tmp_path: Path) -> None:
    _, found = findings("memory", home=tmp_path)
    assert messages(found)[0].startswith("memory: ")
    assert messages(found)[1].startswith("swap: ")
    low = "MemTotal: 1000000 kB\nMemAvailable: 40000 kB\nSwapTotal: 100 kB\nSwapFree: 10 kB\n"
    assert [f.severity for f in diag.meminfo(low)] == ["problem", "warning"]


def test_disk_is_quiet_below_ninety_percent_and_names_full_mounts(tmp_path: Path) -> None:
    outputs, found = findings("disk", home=tmp_path)
    assert [o.exit_status for o in outputs] == [0, 0]
    full = [line for line in outputs[0].text.splitlines()[1:] if line.split()[4] >= "90%"]
    if not full:
        assert found == [Finding("info", "every file system is below 90% full")]
    df = (
        "Filesystem Size Used Avail Use% Mounted on\n"
        "/dev/sda1 10G 9.6G 400M 96% /\n"
        "/dev/sdb1 10G 9.1G 900M 91% /home/my files\n"
        "tmpfs 1G 0 1G 0% /run\n"
    )
    assert diag.df_usage(df, "space") == [
        Finding("problem", "/: 96% of its space used"),
        Finding("warning", "/home/my files: 91% of its space used"),
    ]
    inodes = "Filesystem Inodes IUsed IFree IUse% Mounted on\nvfat - - - - /boot/efi\n"
    assert diag.df_usage(inodes, "inodes") == []


def test_largest_dirs_lists_the_biggest_first(tmp_path: Path) -> None:
    top = tmp_path / "top"
    for name, size in (("small", 1), ("big", 300), ("middle", 40)):
        (top / name).mkdir(parents=True)
        (top / name / "data").write_bytes(b"x" * size * 1024)
    outputs, found = findings("largest-dirs", {"path": str(top)}, home=tmp_path)
    assert outputs[0].argv == ("du", "-x", "-d", "1", "--block-size=1", "--", str(top))
    assert messages(found)[0].startswith(f"{top}: ")
    assert [m.split()[-1] for m in messages(found)[1:]] == [
        str(top / "big"),
        str(top / "middle"),
        str(top / "small"),
    ]


def test_largest_dirs_says_what_it_could_not_read(tmp_path: Path) -> None:
    _, found = findings("largest-dirs", {"path": str(tmp_path / "absent")}, home=tmp_path)
    assert [f.severity for f in found] == ["warning"]
    assert "du exited 1" in found[0].message


def test_top_processes_finds_this_test(tmp_path: Path) -> None:
    outputs, found = findings("top-processes", home=tmp_path)
    assert outputs[0].exit_status == 0
    assert len(found) == 10
    pids = {line.split()[0] for line in outputs[0].text.splitlines()[1:]}
    for message in messages(found):
        assert message.startswith(("cpu ", "memory ")), message
        assert message.split("(pid ")[1].split(",")[0] in pids
    assert diag.processes("  PID USER %CPU %MEM RSS COMMAND\n") == [
        Finding("warning", "no processes in ps's output")
    ]


def test_services_lists_failed_units(tmp_path: Path, fake_machine: FakeMachine) -> None:
    fake_machine.unit("cups.service", "failed")
    fake_machine.unit("ssh.service", "active")
    _, found = findings("services", home=tmp_path, machine=fake_machine)
    assert found == [Finding("problem", "cups.service failed: cups stand-in")]
    fake_machine.unit("cups.service", "active")
    _, found = findings("services", home=tmp_path, machine=fake_machine)
    assert found == [Finding("info", "no failed units")]
    # systemd's own output, with its bullet
    real = (
        "  UNIT          LOAD   ACTIVE SUB    DESCRIPTION\n"
        "\u25cf cups.service  loaded failed failed CUPS Scheduler\n\n"
        "LOAD   = Reflects whether the unit definition was properly loaded.\n"
        "1 loaded units listed.\n"
    )
    assert diag.failed_units(real) == [Finding("problem", "cups.service failed: CUPS Scheduler")]


def test_services_without_systemd_says_so(tmp_path: Path) -> None:
    _, found = findings("services", home=tmp_path)  # the real systemctl, no systemd here
    assert found[0].severity == "warning"


def test_journal_errors_with_the_real_journalctl(tmp_path: Path) -> None:
    outputs, found = findings("journal-errors", {"unit": "ssh.service"}, home=tmp_path)
    assert outputs[0].argv == (
        "journalctl",
        "-u",
        "ssh.service",
        "-p",
        "err",
        "-n",
        "50",
        "--no-pager",
        "-o",
        "short-iso",
    )
    assert outputs[0].exit_status == 0
    assert found == [Finding("info", "no errors logged by ssh.service")]


def test_journal_errors_counts_and_shows_the_latest(tmp_path: Path) -> None:
    machine = FakeMachine.create(tmp_path, programs=["journalctl"])
    lines = ["2024-01-01T09:00:00+0000 host cupsd[1]: failed to start", "later: it broke again"]
    machine.journal(0, errors=lines)
    _, found = findings("journal-errors", {"unit": "cups.service"}, home=tmp_path, machine=machine)
    assert found == [
        Finding("warning", "2 recent error lines from cups.service"),
        Finding("info", "latest: later: it broke again"),
    ]


def test_network_names_interfaces_and_the_default_route(tmp_path: Path) -> None:
    outputs, found = findings("network", home=tmp_path)
    assert [o.exit_status for o in outputs] == [0, 0]
    has_default = any(line.startswith("default") for line in outputs[1].text.splitlines())
    assert any(m.startswith("route: default") for m in messages(found)) == has_default
    assert not any(m.startswith("lo ") for m in messages(found))
    addresses = "lo UNKNOWN 127.0.0.1/8\neth0 UP 192.0.2.2/24\nwlan0 DOWN\n"
    assert diag.interfaces_routes(addresses, "192.0.2.0/24 dev eth0\n") == [
        Finding("info", "eth0 UP: 192.0.2.2/24"),
        Finding("warning", "wlan0 is down"),
        Finding("problem", "no default route: only local networks are reachable"),
    ]


def test_dns_resolve_of_a_name_and_of_none(tmp_path: Path) -> None:
    _, found = findings("dns-resolve", {"name": "localhost"}, home=tmp_path)
    assert found[0].severity == "info"
    assert found[0].message.startswith("localhost resolves to ")
    assert "127.0.0.1" in found[0].message or "::1" in found[0].message
    outputs, found = findings("dns-resolve", {"name": "no-such-host.invalid"}, home=tmp_path)
    assert outputs[0].exit_status == 2
    assert found == [Finding("problem", "no-such-host.invalid does not resolve")]


def test_listening_ports_include_a_socket_we_opened(tmp_path: Path, listener: int) -> None:
    _, found = findings("listening-ports", home=tmp_path)
    assert found[0].severity == "info"
    assert f"tcp 127.0.0.1:{listener}" in found[0].message


def test_reachable_connects_or_says_why_not(tmp_path: Path, listener: int) -> None:
    values = {"host": "127.0.0.1", "port": str(listener)}
    outputs, found = findings("reachable", values, home=tmp_path)
    assert outputs[0].exit_status == 0, outputs[0].stderr
    assert found == [Finding("info", f"127.0.0.1 port {listener}: reachable (127.0.0.1)")]
    port = closed_port()
    outputs, found = findings("reachable", {"host": "127.0.0.1", "port": str(port)}, home=tmp_path)
    assert outputs[0].exit_status == 1
    assert found == [
        Finding("problem", f"127.0.0.1 port {port}: not reachable: Connection refused")
    ]


def test_reachable_reports_a_timeout() -> None:
    timed_out = StepOutput(("timeout",), 124)
    assert diag._reachable([timed_out], {"host": "h", "port": "1"}) == [
        Finding("problem", "h port 1: no answer within 5 seconds")
    ]


def test_time_sync(tmp_path: Path, fake_machine: FakeMachine) -> None:
    _, found = findings("time-sync", home=tmp_path, machine=fake_machine)
    assert found == [
        Finding("info", "the clock is synchronised"),
        Finding("info", "time zone Etc/UTC"),
    ]
    fake_machine.clock(synchronized=False, ntp=False, timezone="Europe/Paris")
    _, found = findings("time-sync", home=tmp_path, machine=fake_machine)
    assert found[0] == Finding("problem", "the clock is not synchronised and no time service runs")
    fake_machine.clock(synchronized=False)
    _, found = findings("time-sync", home=tmp_path, machine=fake_machine)
    assert found[0].message == "a time service runs, but the clock is not synchronised"
