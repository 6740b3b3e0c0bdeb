"""Shared pieces: keys, sample transcripts, timing children, results and tables."""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.primitives.asymmetric import ed25519

from toolkit.identity.keys import public_line
from toolkit.identity.signer import KeySigner
from toolkit.transcript.models import FORMAT_VERSION, NAMESPACE_SEAL, NAMESPACES
from toolkit.transcript.recorder import Recorder, new_header

REPO = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent  # the venv's bin: toolkit lives next to python
TOOLKIT = BIN / "toolkit"
EMAIL = "alice@example.com"
MiB = 1 << 20
GiB = 1 << 30

# Terminal-like output: ASCII lines with CR LF, a little UTF-8 and ANSI colour
# (escaped as \u001b in the JSON), so the recorder's decoder and escaping do
# real work. Deterministic, so every run records the same bytes.
_LINES = [
    b"drwxr-xr-x  2 root root    4096 Nov 27 18:39 bench\r\n",
    b"-rw-r--r--  1 root root    1783 Nov 27 18:51 pyproject.toml\r\n",
    b"\x1b[01;34mtoolkit\x1b[0m  \x1b[01;32mrun.sh\x1b[0m  README.md  caf\xc3\xa9.txt\r\n",
    b"Nov 27 18:39:12 pc-42 systemd[1]: Started Daily apt upgrade and clean.\r\n",
    b"  PID USER      PR  NI    VIRT    RES    SHR S  %CPU  %MEM     TIME+ COMMAND\r\n",
    b"    1 root      20   0  167404  12876   9464 S   0.0   0.1   0:01.93 systemd\r\n",
]


def terminal_block(size: int) -> bytes:
    """``size`` bytes of terminal output, cut on a line end where possible."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += _LINES[i % len(_LINES)]
        i += 1
    return bytes(out[:size])


def new_signer() -> KeySigner:
    """An in-memory Ed25519 key, as ``toolkit keys init`` would make."""
    return KeySigner(ed25519.Ed25519PrivateKey.generate())


def write_allowed_signers(path: Path, signer: KeySigner) -> Path:
    line = f'{EMAIL} namespaces="{",".join(NAMESPACES)}" {public_line(signer.public_blob)}\n'
    path.write_text(line)
    return path


def new_recorder(path: Path, signer: KeySigner, format: int = FORMAT_VERSION) -> Recorder:
    header = new_header(
        "Alice Tech",
        EMAIL,
        signer,
        "T-1",
        scope=["diagnostics", "fixes"],
        customer_host="pc-42",
        format=format,
    )
    return Recorder.create(path, header, signer)


def record_small_sample(path: Path, signer: KeySigner) -> Path:
    """A short sealed session: consent, a few commands, three checkpoints."""
    rec = Recorder.create(
        path,
        new_header("Alice Tech", EMAIL, signer, "T-1", scope=["diagnostics"]),
        signer,
        checkpoint_events=16,
    )
    rec.event("consent", method="spake2", result="ok")
    rec.resize(100, 30)
    for i in range(12):
        rec.input(b"uptime\r")
        rec.event("operation", op="run", argv=["uptime"], exit_status=0, index=i)
        rec.output(terminal_block(200))
    rec.close("completed")
    return path


def ssh_keygen_verify_argv(signers: Path, cast: Path) -> list[str]:
    """``ssh-keygen -Y verify`` of a transcript (the file goes to stdin)."""
    return [
        "ssh-keygen",
        "-Y",
        "verify",
        "-f",
        str(signers),
        "-I",
        EMAIL,
        "-n",
        NAMESPACE_SEAL,
        "-s",
        f"{cast}.sig",
    ]


# -- measuring ---------------------------------------------------------------


def rss_now() -> int | None:
    """Resident set size of this process now, in bytes (Linux only)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def peak_rss() -> int:
    """Peak resident set size of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


@dataclass(frozen=True)
class ChildRun:
    """One child process: wall time, CPU time, peak RSS, exit status."""

    wall: float
    user: float
    sys: float
    max_rss: int  # bytes
    returncode: int
    stdout: str
    stderr: str


def run_child(
    argv: Sequence[str | Path],
    *,
    stdin: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO,
) -> ChildRun:
    """Run ``argv`` and time it; rusage comes from wait4, so it is this child's own."""
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        open(stdin or os.devnull, "rb") as inp,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(a) for a in argv], stdin=inp, stdout=out, stderr=err, env=env, cwd=cwd
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ChildRun(
            wall=wall,
            user=usage.ru_utime,
            sys=usage.ru_stime,
            max_rss=usage.ru_maxrss * 1024,
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )


def run_worker(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module worker ARGS`` in a fresh process; return its JSON line."""
    child = run_child([sys.executable, "-m", module, "worker", *args])
    if child.returncode != 0:
        raise RuntimeError(f"{module} worker {' '.join(args)} failed:\n{child.stderr}")
    result: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    result["child_max_rss"] = child.max_rss
    return result


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


@contextmanager
def scratch_dir(prefix: str, root: Path | None = None) -> Iterator[Path]:
    """A temporary directory, removed afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"toolkit-bench-{prefix}-", dir=root))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fit_to_disk(wanted: int, where: Path, copies: float, what: str) -> int:
    """``wanted`` bytes, or less (with a message) if the disk cannot hold ``copies`` of it."""
    free = shutil.disk_usage(where).free
    room = int((free - 2 * GiB) / copies)  # keep 2 GiB for everything else
    if room >= wanted:
        return wanted
    scaled = max(room // MiB * MiB, 16 * MiB)
    say(
        f"NOTE: only {free / GiB:.1f} GiB free in {where}; {what} scaled down from "
        f"{wanted / MiB:.0f} MiB to {scaled / MiB:.0f} MiB. Numbers are not comparable "
        "with full-size runs."
    )
    return scaled


# -- reporting -----------------------------------------------------------------


def say(text: str = "", stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stdout, flush=True)


def tool_version(argv: Sequence[str]) -> str | None:
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip() or None


def environment() -> dict[str, Any]:
    from toolkit import __version__

    commit = tool_version(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = tool_version(["git", "-C", str(REPO), "status", "--porcelain", "--", "toolkit"])
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "toolkit": __version__,
        "commit": commit,
        "toolkit_tree_dirty": bool(dirty),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "openssh": tool_version(["ssh", "-V"]) if shutil.which("ssh") else None,
        "ssh_keygen": shutil.which("ssh-keygen"),
        "loadavg": list(os.getloadavg()),
    }


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def save(name: str, result: dict[str, Any]) -> Path:
    """Write one run's result to bench/results/NAME-TIMESTAMP.json."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table with right-aligned numbers."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]

    def fmt(row: list[str]) -> str:
        parts = [
            c.rjust(w) if num else c.ljust(w)
            for c, w, num in zip(row, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule, *[fmt(r) for r in cells[1:]]])


def _cell(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:,}"  # callers round floats to the digits that mean something
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Options:
    """What to run and how big; ``--quick`` picks the small column."""

    events: int = 1_000_000
    output_bytes: int = GiB
    verify_bytes: int = GiB
    repeat: int = 5
    verify_runs: int = 5
    startup_runs: int = 20
    shapes: tuple[str, ...] = ("output", "session")
    tmpdir: Path | None = None
    profile: bool = False

    def scratch_root(self) -> Path:
        return self.tmpdir or Path(tempfile.gettempdir())


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "MISSED")


def mb(n_bytes: float) -> float:
    return n_bytes / MiB


# -- a process tree's memory -----------------------------------------------------------


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and every process below it now, in bytes (0 once it is gone).

    Read from /proc: each process's parent from ``stat``, its RSS from ``statm``.
    Daemons a process detaches (double fork) leave the tree and are not counted.
    """
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    below: dict[int, list[int]] = {}
    for child, parent in parents.items():
        below.setdefault(parent, []).append(child)
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        todo.extend(below.get(current, ()))
        try:
            with open(f"/proc/{current}/statm", "rb") as f:
                total += int(f.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
    return total


@dataclass(frozen=True)
class TreeRun:
    """A child run with wait4's numbers and the sampled peak RSS of its whole tree."""

    wall: float
    cpu: float  # user + sys of the child and the descendants it waited for
    max_rss: int  # bytes: wait4's ru_maxrss, the largest single process of the tree
    tree_rss: int  # bytes: the largest sum over the tree, sampled every ``interval``
    returncode: int
    stdout: str
    stderr: str


def run_tree(
    argv: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.1,
) -> TreeRun:
    """Run ``argv`` (stdin /dev/null), timing it whole; its tree's RSS sampled meanwhile.

    ``max_rss`` answers "how large did the runner get" (the process itself, or a
    larger child); ``tree_rss`` adds up forks and helpers alive at one moment
    (Ansible's forks, ssh clients), which wait4 cannot.
    """
    import threading

    peak = 0
    done = threading.Event()

    def sample(pid: int) -> None:
        nonlocal peak
        while not done.wait(interval):
            peak = max(peak, tree_rss(pid))

    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        open(os.devnull, "rb") as inp,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [str(a) for a in argv], stdin=inp, stdout=out, stderr=err, env=env, cwd=cwd
        )
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return TreeRun(
            wall=wall,
            cpu=usage.ru_utime + usage.ru_stime,
            max_rss=usage.ru_maxrss * 1024,
            tree_rss=max(peak, usage.ru_maxrss * 1024),
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
