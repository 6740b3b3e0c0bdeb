"""Linux diagnostics: read-only commands, and findings that sum up their output.

One procedure per question, none doing another's job: ``system`` is the
one-screen overview (kept from the built-in catalogue, with its commands);
``disk``, ``memory`` and ``uptime-load`` look closer at one thing each;
``services`` is the failed-units diagnostic and ``network`` the addresses
and routes one (their names are kept: technicians and tests use them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolkit.plugins import Diagnostic, Finding, Parameter, ParameterType, StepOutput
from toolkit_linux._common import (
    HOST,
    PATH,
    UNIT_NAME,
    failure,
    human,
    key_values,
    lines_parameter,
    output,
    ran,
)

Outputs = Sequence[StepOutput]
Values = Mapping[str, str]

#: A file system this full is worth a warning; this full, a problem.
FULL_WARNING = 90
FULL_PROBLEM = 95
#: How many entries a top-N finding lists.
TOP = 10


# -- disk space ---------------------------------------------------------------------


def df_usage(text: str, what: str) -> list[Finding]:
    """Findings for each file system of ``df -h`` or ``df -i`` output at or above 90% use."""
    found = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) < 6 or not fields[4].endswith("%") or not fields[4][:-1].isdigit():
            continue  # '-' for file systems without inodes (vfat, btrfs)
        used, mount = int(fields[4][:-1]), fields[5]
        if used >= FULL_WARNING:
            severity = "problem" if used >= FULL_PROBLEM else "warning"
            found.append(Finding(severity, f"{mount}: {used}% of its {what} used"))
    return found


def _disk(outputs: Outputs, values: Values) -> list[Finding]:
    found: list[Finding] = []
    for index, what in ((0, "space"), (1, "inodes")):
        out = output(outputs, index)
        if out is None or not out.stdout:
            found.append(Finding("warning", f"no {what} figures: {failure(out)}"))
        else:
            found += df_usage(out.text, what)
    return found or [Finding("info", f"every file system is below {FULL_WARNING}% full")]


# -- memory, load, the overview -------------------------------------------------------


def meminfo(text: str) -> list[Finding]:
    """Memory available and swap used, from /proc/meminfo (kB figures)."""
    kib = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()[:1]
        if number and number[0].isdigit():
            kib[key] = int(number[0]) * 1024
    total, available = kib.get("MemTotal"), kib.get("MemAvailable")
    if not total or available is None:
        return [Finding("warning", "no MemTotal and MemAvailable in /proc/meminfo")]
    share = 100 * available // total
    severity = "problem" if share < 5 else "warning" if share < 10 else "info"
    found = [
        Finding(severity, f"memory: {human(available)} of {human(total)} available ({share}%)")
    ]
    swap, swap_free = kib.get("SwapTotal", 0), kib.get("SwapFree", 0)
    if swap:
        used = swap - swap_free
        severity = "warning" if used * 2 > swap else "info"
        found.append(Finding(severity, f"swap: {human(used)} of {human(swap)} used"))
    else:
        found.append(Finding("info", "swap: none"))
    return found


def _memory(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return meminfo(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def _duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h {rest // 60}m" if days else f"{hours}h {rest // 60}m"


def load(uptime: str, loadavg: str, cpus: str) -> list[Finding]:
    """Uptime, and the load averages per CPU (above 1 per CPU: a warning; 2: a problem)."""
    found = []
    try:
        found.append(Finding("info", f"up {_duration(float(uptime.split()[0]))}"))
    except (IndexError, ValueError):
        found.append(Finding("warning", "no uptime in /proc/uptime"))
    try:
        one, five, fifteen = (float(x) for x in loadavg.split()[:3])
        count = max(int(cpus.strip()), 1)
    except ValueError:
        return [*found, Finding("warning", "no load averages (/proc/loadavg, nproc)")]
    per_cpu = five / count
    severity = "problem" if per_cpu >= 2 else "warning" if per_cpu >= 1 else "info"
    found.append(
        Finding(
            severity,
            f"load {one:.2f} {five:.2f} {fifteen:.2f} on {count} CPUs "
            f"({per_cpu:.2f} per CPU over 5 minutes)",
        )
    )
    return found


def _uptime_load(outputs: Outputs, values: Values) -> list[Finding]:
    texts = [out.text if ran(out) and out else "" for out in (output(outputs, i) for i in range(3))]
    return load(*texts)


def _system(outputs: Outputs, values: Values) -> list[Finding]:
    found = []
    uname = output(outputs, 0)
    words = uname.text.split() if ran(uname) and uname else []
    if len(words) >= 3:
        found.append(Finding("info", f"kernel {words[2]} ({words[0]})"))
    uptime = output(outputs, 1)
    if ran(uptime) and uptime:
        found.append(Finding("info", uptime.text.strip()))
    free = output(outputs, 2)
    for line in free.text.splitlines() if ran(free) and free else ():
        fields = line.split()
        # free -m: "Mem: total used free shared buff/cache available"
        if fields[:1] == ["Mem:"] and len(fields) >= 7 and fields[1].isdigit():
            total, available = int(fields[1]), int(fields[6])
            share = 100 * available // max(total, 1)
            severity = "problem" if share < 5 else "warning" if share < 10 else "info"
            found.append(Finding(severity, f"memory: {available} of {total} MiB available"))
    df = output(outputs, 3)
    if ran(df) and df:
        found += df_usage(df.text, "space")
    return found


# -- processes, units, the journal ---------------------------------------------------


def processes(text: str) -> list[Finding]:
    """The top processes by CPU and by resident memory (``ps -o pid,user,pcpu,pmem,rss,comm``)."""
    rows = []
    for line in text.splitlines()[1:]:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[0].isdigit() and fields[4].isdigit():
            try:
                rows.append(
                    (fields[0], fields[1], float(fields[2]), int(fields[4]) * 1024, fields[5])
                )
            except ValueError:
                continue
    if not rows:
        return [Finding("warning", "no processes in ps's output")]
    found = []
    for pid, user, cpu, _, comm in sorted(rows, key=lambda r: -r[2])[:5]:
        found.append(Finding("info", f"cpu {cpu:.1f}%: {comm} (pid {pid}, {user})"))
    for pid, user, _, rss, comm in sorted(rows, key=lambda r: -r[3])[:5]:
        found.append(Finding("info", f"memory {human(rss)}: {comm} (pid {pid}, {user})"))
    return found


def _top_processes(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return processes(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def failed_units(text: str) -> list[Finding]:
    """Each unit ``systemctl --failed`` lists, as a problem."""
    found = []
    for line in text.splitlines():
        fields = line.lstrip("●* \t").split()
        # UNIT LOAD ACTIVE SUB DESCRIPTION...
        if len(fields) >= 4 and fields[2] == "failed" and "." in fields[0]:
            description = " ".join(fields[4:])
            found.append(
                Finding(
                    "problem", f"{fields[0]} failed" + (f": {description}" if description else "")
                )
            )
    return found or [Finding("info", "no failed units")]


def _services(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return failed_units(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def journal_errors(text: str, unit: str) -> list[Finding]:
    """How many error lines ``journalctl -p err`` gave, and the latest one."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("-- ")]
    if not lines:
        return [Finding("info", f"no errors logged by {unit}")]
    return [
        Finding("warning", f"{len(lines)} recent error lines from {unit}"),
        Finding("info", f"latest: {lines[-1][:200]}"),
    ]


def _journal_errors(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    if not ran(out) or out is None:
        return [Finding("warning", failure(out))]
    return journal_errors(out.text, values.get("unit", "the unit"))


# -- network -----------------------------------------------------------------------


def interfaces_routes(addresses: str, routes: str) -> list[Finding]:
    """Interfaces that are down, addresses per interface, and the default route."""
    found = []
    for line in addresses.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] == "lo":
            continue
        name, state, addrs = fields[0], fields[1], fields[2:]
        if state == "DOWN":
            found.append(Finding("warning", f"{name} is down"))
        else:
            found.append(Finding("info", f"{name} {state}: {' '.join(addrs) or 'no address'}"))
    defaults = [line.strip() for line in routes.splitlines() if line.startswith("default")]
    if defaults:
        found += [Finding("info", f"route: {line}") for line in defaults]
    else:
        found.append(Finding("problem", "no default route: only local networks are reachable"))
    return found


def _network(outputs: Outputs, values: Values) -> list[Finding]:
    addresses, routes = output(outputs, 0), output(outputs, 1)
    if not ran(addresses) or not ran(routes) or addresses is None or routes is None:
        return [Finding("warning", failure(addresses if not ran(addresses) else routes))]
    return interfaces_routes(addresses.text, routes.text)


def resolved(text: str, name: str) -> list[Finding]:
    """The distinct addresses ``getent ahosts`` gave for ``name``."""
    addresses = list(dict.fromkeys(line.split()[0] for line in text.splitlines() if line.split()))
    if not addresses:
        return [Finding("problem", f"{name} does not resolve")]
    return [Finding("info", f"{name} resolves to {', '.join(addresses[:TOP])}")]


def _dns_resolve(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    name = values.get("name", "the name")
    if out is not None and out.exit_status == 2:  # getent: key not found
        return [Finding("problem", f"{name} does not resolve")]
    if not ran(out) or out is None:
        return [Finding("warning", failure(out))]
    return resolved(out.text, name)


def listening(text: str) -> list[Finding]:
    """One line per listening socket of ``ss -ltnu``: protocol and local address."""
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            sockets.append(f"{fields[0]} {fields[4]}")
    if not sockets:
        return [Finding("info", "nothing listens on TCP or UDP")]
    unique = sorted(set(sockets))
    return [Finding("info", f"{len(unique)} listening: {', '.join(unique)}")]


def _listening_ports(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return listening(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def _reachable(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    target = f"{values.get('host', '?')} port {values.get('port', '?')}"
    if ran(out) and out is not None:
        return [Finding("info", out.text.strip() or f"{target} is reachable")]
    if out is not None and out.exit_status == 124:  # timeout's own status
        return [Finding("problem", f"{target}: no answer within {CONNECT_LIMIT} seconds")]
    said = out.text.strip() if out is not None else ""
    return [Finding("problem", said or f"{target}: {failure(out)}")]


def time_sync(text: str) -> list[Finding]:
    """Whether the clock is synchronised, from ``timedatectl show``."""
    values = key_values(text)
    found = []
    if values.get("NTPSynchronized") == "yes":
        found.append(Finding("info", "the clock is synchronised"))
    elif values.get("NTP") == "yes":
        found.append(Finding("problem", "a time service runs, but the clock is not synchronised"))
    else:
        found.append(Finding("problem", "the clock is not synchronised and no time service runs"))
    if values.get("Timezone"):
        found.append(Finding("info", f"time zone {values['Timezone']}"))
    return found


def _time_sync(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return time_sync(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def os_release(text: str) -> list[Finding]:
    values = key_values(text)
    name = values.get("PRETTY_NAME") or values.get("NAME")
    return [Finding("info", name)] if name else [Finding("warning", "no name in os-release")]


def _os_release(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    return os_release(out.text) if ran(out) and out else [Finding("warning", failure(out))]


def largest(text: str, path: str) -> list[Finding]:
    """The largest entries ``du -d 1`` found under ``path`` (its own total first)."""
    sizes = []
    for line in text.splitlines():
        size, _, name = line.partition("\t")
        if size.isdigit() and name:
            sizes.append((int(size), name))
    total = next((size for size, name in sizes if name == path), None)
    entries = sorted((s for s in sizes if s[1] != path), reverse=True)[:TOP]
    found = [Finding("info", f"{path}: {human(total)} in all")] if total is not None else []
    return found + [Finding("info", f"{human(size)}  {name}") for size, name in entries]


def _largest_dirs(outputs: Outputs, values: Values) -> list[Finding]:
    out = output(outputs, 0)
    if out is None or not out.stdout:
        return [Finding("warning", failure(out))]
    found = largest(out.text, values.get("path", ""))
    if out.exit_status != 0:  # du goes on past what it cannot read
        found.append(Finding("warning", f"some directories could not be read ({failure(out)})"))
    return found


# -- the declarations ----------------------------------------------------------------

#: reachable's limit on one connection attempt, and on the whole check (name look-up too).
CONNECT_LIMIT = 5
_WHOLE_LIMIT = 15

#: The TCP connect of `reachable`. Debian has no TCP client in its essential set but
#: perl (perl-base, Essential: yes, with IO::Socket::IP); nc and curl are optional
#: packages, and bash's /dev/tcp needs a shell. The program text is fixed and has no
#: placeholder: host and port reach it as @ARGV, never as code.
_CONNECT = (
    "use IO::Socket::IP; my ($host, $port) = @ARGV; "
    "my $s = IO::Socket::IP->new(PeerHost => $host, PeerPort => $port, Proto => 'tcp', "
    f'Timeout => {CONNECT_LIMIT}) or print("$host port $port: not reachable: '
    '$@\\n"), exit 1; '
    'print "$host port $port: reachable (", $s->peerhost, ")\\n";'
)

_UNIT = Parameter("unit", pattern=UNIT_NAME, description="a systemd unit, like cups.service")

DIAGNOSTICS: tuple[Diagnostic, ...] = (
    Diagnostic(
        name="system",
        summary="Kernel, uptime, memory and disk space",
        description="The one-screen overview: uname -a, uptime, free -m and df -h.",
        run=[["uname", "-a"], ["uptime"], ["free", "-m"], ["df", "-h"]],
        findings=_system,
    ),
    Diagnostic(
        name="os-release",
        summary="The operating system's name and version",
        run=[["cat", "/etc/os-release"]],
        reads=("/etc/os-release",),
        findings=_os_release,
    ),
    Diagnostic(
        name="uptime-load",
        summary="Uptime and load averages per CPU",
        run=[["cat", "/proc/uptime"], ["cat", "/proc/loadavg"], ["nproc"]],
        reads=("/proc/uptime", "/proc/loadavg"),
        findings=_uptime_load,
    ),
    Diagnostic(
        name="memory",
        summary="Memory available and swap used",
        run=[["cat", "/proc/meminfo"]],
        reads=("/proc/meminfo",),
        findings=_memory,
    ),
    Diagnostic(
        name="disk",
        summary="Disk space and inodes per file system",
        run=[["df", "-h"], ["df", "-i"]],
        findings=_disk,
    ),
    Diagnostic(
        name="largest-dirs",
        summary="The largest directories under a path, on its file system",
        description=(
            "du -x -d 1 over the path: the size of each directory directly under it, "
            "without crossing into other file systems. The agent checks the path "
            "against its file policy first."
        ),
        parameters=(
            Parameter(
                "path",
                pattern=PATH,
                type=ParameterType.PATH,
                description="an absolute directory, like /var",
            ),
        ),
        run=[["du", "-x", "-d", "1", "--block-size=1", "--", "{path}"]],
        findings=_largest_dirs,
    ),
    Diagnostic(
        name="top-processes",
        summary="The processes using the most CPU and memory",
        description=(
            "ps lists every process by its command name only, never its arguments, "
            "which can hold passwords."
        ),
        run=[["ps", "-e", "-o", "pid,user,pcpu,pmem,rss,comm", "--sort=-pcpu"]],
        findings=_top_processes,
    ),
    Diagnostic(
        name="services",
        summary="systemd units that failed",
        run=[["systemctl", "--failed", "--no-pager"]],
        findings=_services,
    ),
    Diagnostic(
        name="journal-errors",
        summary="Recent errors a systemd unit logged",
        parameters=(
            _UNIT,
            lines_parameter("how many recent error lines", default="50", maximum=1000),
        ),
        run=[
            [
                "journalctl",
                "-u",
                "{unit}",
                "-p",
                "err",
                "-n",
                "{lines}",
                "--no-pager",
                "-o",
                "short-iso",
            ]
        ],
        findings=_journal_errors,
    ),
    Diagnostic(
        name="network",
        summary="Addresses and routes",
        run=[["ip", "-brief", "address"], ["ip", "route"]],
        findings=_network,
    ),
    Diagnostic(
        name="dns-resolve",
        summary="Resolve a host name as programs on this machine do",
        description="getent ahosts: the system's resolver (nsswitch: /etc/hosts, DNS, mDNS).",
        parameters=(Parameter("name", pattern=HOST, description="a host name, like example.org"),),
        run=[["getent", "ahosts", "{name}"]],
        findings=_dns_resolve,
    ),
    Diagnostic(
        name="listening-ports",
        summary="TCP and UDP ports something listens on",
        run=[["ss", "-l", "-t", "-u", "-n"]],
        findings=_listening_ports,
    ),
    Diagnostic(
        name="reachable",
        summary="Whether a TCP connection to host:port opens from this machine",
        description=(
            "perl (Debian's essential perl-base) opens one TCP connection, waiting at most "
            f"{CONNECT_LIMIT} seconds per address, {_WHOLE_LIMIT} in all, and closes it at "
            "once; nothing is sent."
        ),
        parameters=(
            Parameter("host", pattern=HOST, description="a host name or address"),
            Parameter(
                "port",
                pattern=r"[0-9]{1,5}",
                type=ParameterType.INTEGER,
                description="a TCP port",
                minimum=1,
                maximum=65535,
            ),
        ),
        run=[
            [
                "timeout",
                str(_WHOLE_LIMIT),
                "perl",
                "-e",
                _CONNECT,
                "--",
                "{host}",
                "{port}",
            ]
        ],
        findings=_reachable,
    ),
    Diagnostic(
        name="time-sync",
        summary="Whether the clock is synchronised, and the time zone",
        description=(
            "timedatectl show: NTPSynchronized is the kernel's own flag, set by "
            "systemd-timesyncd, chrony or ntpd alike."
        ),
        run=[["timedatectl", "show"]],
        findings=_time_sync,
    ),
)

__all__ = [
    "DIAGNOSTICS",
    "df_usage",
    "failed_units",
    "interfaces_routes",
    "journal_errors",
    "largest",
    "listening",
    "load",
    "meminfo",
    "os_release",
    "processes",
    "resolved",
    "time_sync",
]
