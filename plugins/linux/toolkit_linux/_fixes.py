"""Linux fixes: a read-only check, the change, a verify, and a decision with a diff.

Every step is a fixed argv list run without a shell, so nothing here can
redirect, pipe or glob: where a fix needs to know "is it needed?", the check
prints what it sees and a ``decide`` function on the technician's side reads
it. ``verify`` is judged by exit status alone (it runs right after apply);
``toolkit run`` then runs the check again, whose decision must now be "not
needed": that is the proof the fix worked and is idempotent.

None of these fixes has a rollback: a restart, a vacuum, a cache flush or a
deleted file cannot be undone by another command, and a rollback that does
not restore what was there would only pretend to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from toolkit.plugins import Decision, Fix, Parameter, ParameterType, StepOutput
from toolkit_linux._common import (
    PATH,
    SERVICE,
    failure,
    human,
    key_values,
    lines_parameter,
    output,
    parse_size,
    size_parameter,
)

Outputs = Sequence[StepOutput]
Values = Mapping[str, str]

#: Where apt keeps downloaded packages (Dir::Cache::archives).
APT_ARCHIVES = "/var/cache/apt/archives"
THUMBNAILS = "{home}/.cache/thumbnails"
_MISSING = b"No such file or directory"  # the agent runs commands with LANG=C.UTF-8


def _checked(out: StepOutput | None) -> StepOutput:
    """The check's output when it ran and exited 0; ValueError (the check failed) else."""
    if out is None or out.exit_status != 0:
        raise ValueError(f"the check failed: {failure(out)}")
    return out


def sizes(text: str) -> list[int]:
    """The numbers of ``find -printf '%s\\n'``, one per line."""
    return [int(line) for line in text.split() if line.isdigit()]


# -- restart-unit -------------------------------------------------------------------------


def decide_restart(outputs: Outputs, values: Values) -> Decision:
    """Needed unless the unit is active; a unit this machine does not have fails the check."""
    state = key_values(_checked(output(outputs, 0)).text)
    unit = values.get("unit", "the unit")
    if state.get("LoadState") == "not-found":
        raise ValueError(f"this machine has no unit {unit}")
    active, sub = state.get("ActiveState", "?"), state.get("SubState", "?")
    if active == "active":
        return Decision(False, reason=f"{unit} is active ({sub})")
    return Decision(
        True,
        diff=f"{unit}: {active} ({sub}) -> active",
        reason=f"{unit} is {active} ({sub})",
    )


# -- journal-vacuum -----------------------------------------------------------------------


def journal_usage(text: str) -> int:
    """Bytes from journalctl --disk-usage: '... take up 1.2G in the file system.'"""
    words = text.split()
    if "up" not in words:
        raise ValueError(f"journalctl --disk-usage said: {text.strip()[:120]!r}")
    return parse_size(words[words.index("up") + 1])


def decide_vacuum(outputs: Outputs, values: Values) -> Decision:
    used = journal_usage(_checked(output(outputs, 0)).text)
    limit = parse_size(values["size"])
    if used <= limit:
        return Decision(False, reason=f"the journal takes {human(used)}, within {values['size']}")
    return Decision(
        True,
        diff=f"journal: {human(used)} -> at most {human(limit)} (the oldest entries deleted)",
        reason=f"the journal takes {human(used)}, over {values['size']}",
    )


# -- clean-package-cache -----------------------------------------------------------------


def decide_package_cache(outputs: Outputs, values: Values) -> Decision:
    found = sizes(_checked(output(outputs, 0)).text)
    if not found:
        return Decision(False, reason=f"no packages in {APT_ARCHIVES}")
    total = human(sum(found))
    return Decision(
        True,
        diff=f"{APT_ARCHIVES}: {len(found)} downloaded packages ({total}) deleted",
        reason=f"{len(found)} downloaded packages take {total}",
    )


# -- flush-dns -----------------------------------------------------------------------------


def cache_size(text: str) -> int:
    """'Current Cache Size: N' of resolvectl statistics."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Current Cache Size" and value.strip().isdigit():
            return int(value.strip())
    raise ValueError("resolvectl statistics shows no 'Current Cache Size'")


def decide_flush(outputs: Outputs, values: Values) -> Decision:
    entries = cache_size(_checked(output(outputs, 0)).text)
    if not entries:
        return Decision(False, reason="systemd-resolved's cache is empty")
    return Decision(
        True,
        diff=f"systemd-resolved's cache: {entries} entries -> 0",
        reason=f"systemd-resolved caches {entries} entries",
    )


# -- clear-print-queue --------------------------------------------------------------------


def decide_print_queue(outputs: Outputs, values: Values) -> Decision:
    """Needed when ``lpstat -o PRINTER`` lists jobs (its first word: the job id)."""
    jobs = [
        line.split()[0] for line in _checked(output(outputs, 0)).text.splitlines() if line.split()
    ]
    printer = values.get("printer", "the printer")
    if not jobs:
        return Decision(False, reason=f"no jobs wait for {printer}")
    shown = ", ".join(jobs[:10]) + (f" and {len(jobs) - 10} more" if len(jobs) > 10 else "")
    return Decision(
        True,
        diff=f"{printer}: {len(jobs)} jobs cancelled ({shown})",
        reason=f"{len(jobs)} jobs wait for {printer}",
    )


# -- rotate-log -----------------------------------------------------------------------------


def decide_rotate(outputs: Outputs, values: Values) -> Decision:
    text = _checked(output(outputs, 0)).text.strip()
    if not text.isdigit():
        raise ValueError(f"stat said {text[:40]!r}, not a size")
    size, limit = int(text), parse_size(values["size"])
    path = values["path"]
    if size <= limit:
        return Decision(False, reason=f"{path} holds {human(size)}, within {values['size']}")
    return Decision(
        True,
        diff=(
            f"{path}: {human(size)} -> empty; its last {values['lines']} lines "
            "kept in the transcript"
        ),
        reason=f"{path} holds {human(size)}, over {values['size']}",
    )


# -- clear-thumbnails -----------------------------------------------------------------------


def decide_thumbnails(outputs: Outputs, values: Values) -> Decision:
    """Needed when the cache holds files; no cache at all is not needed either."""
    out = output(outputs, 0)
    if out is not None and out.exit_status == 1 and _MISSING in out.stderr:
        return Decision(False, reason="there is no thumbnail cache")
    found = sizes(_checked(out).text)
    if not found:
        return Decision(False, reason="the thumbnail cache is empty")
    total = human(sum(found))
    return Decision(
        True,
        diff=f"~/.cache/thumbnails: {len(found)} thumbnails ({total}) deleted",
        reason=f"the thumbnail cache holds {len(found)} files ({total})",
    )


_SIZE_OF_FILES = "%s\\n"  # find -printf: each file's size, a line each (find reads the \n)

FIXES: tuple[Fix, ...] = (
    Fix(
        name="restart-unit",
        summary="Restart a systemd service that is not running",
        parameters=(
            Parameter(
                "unit",
                pattern=SERVICE,
                description="a service, like cups.service",
            ),
        ),
        check=[["systemctl", "show", "--property=LoadState,ActiveState,SubState", "--", "{unit}"]],
        apply=[["systemctl", "restart", "--", "{unit}"]],
        verify=[["systemctl", "is-active", "--quiet", "--", "{unit}"]],
        decide=decide_restart,
    ),
    Fix(
        name="journal-vacuum",
        summary="Shrink the systemd journal to a size, deleting its oldest entries",
        description=(
            "--rotate first archives the journal files being written, so that the "
            "vacuum can delete them too; the newest entries are kept."
        ),
        parameters=(size_parameter("the journal's largest size, like 200M (K, M, G)"),),
        check=[["journalctl", "--disk-usage"]],
        apply=[["journalctl", "--rotate", "--vacuum-size={size}"]],
        # Exit status only: the journal still reads. The check run after it proves the size.
        verify=[["journalctl", "--disk-usage"]],
        decide=decide_vacuum,
    ),
    Fix(
        name="clean-package-cache",
        summary="Delete the packages apt downloaded (they are fetched again when needed)",
        check=[
            [
                "find",
                APT_ARCHIVES,
                "-maxdepth",
                "1",
                "-type",
                "f",
                "-name",
                "*.deb",
                "-printf",
                _SIZE_OF_FILES,
            ]
        ],
        apply=[["apt-get", "clean"]],
        # Exit status only: the cache directory still reads. The check after it proves it empty.
        verify=[["find", APT_ARCHIVES, "-maxdepth", "0", "-type", "d"]],
        decide=decide_package_cache,
    ),
    Fix(
        name="flush-dns",
        summary="Flush systemd-resolved's DNS cache",
        check=[["resolvectl", "statistics"]],
        apply=[["resolvectl", "flush-caches"]],
        verify=[["resolvectl", "statistics"]],  # resolved still answers
        decide=decide_flush,
    ),
    Fix(
        name="clear-print-queue",
        summary="Cancel every job stuck in a CUPS printer's queue",
        parameters=(
            Parameter(
                "printer",
                pattern=r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,126}",
                description="a CUPS queue, as lpstat -p lists it",
            ),
        ),
        check=[["lpstat", "-o", "{printer}"]],
        apply=[["cancel", "-a", "{printer}"]],
        verify=[["lpstat", "-p", "{printer}"]],  # CUPS answers and still has the queue
        decide=decide_print_queue,
    ),
    Fix(
        name="rotate-log",
        summary="Empty a runaway log file, keeping its last lines in the transcript",
        description=(
            "tail prints the log's last lines, which both transcripts keep (the "
            "technician's whole, the customer's by digest); truncate then empties the "
            "file in place, so the program writing it goes on writing to the same file "
            "and the space is freed at once. Lines written between the two commands are "
            "lost, as with logrotate's copytruncate. The agent checks the path against "
            "its file policy first."
        ),
        parameters=(
            Parameter(
                "path",
                pattern=PATH,
                type=ParameterType.PATH,
                description="the log file, like /var/log/app.log",
            ),
            lines_parameter("how many last lines to keep", default="1000", maximum=10000),
            size_parameter("rotate only a log larger than this, like 100M", default="100M"),
        ),
        check=[["stat", "--format=%s", "--", "{path}"]],
        apply=[
            ["tail", "-n", "{lines}", "--", "{path}"],
            ["truncate", "--size=0", "--", "{path}"],
        ],
        # cmp skips SIZE bytes of the log and compares the rest with nothing:
        # exit 0 when the log is now at most SIZE bytes, 1 when it is larger.
        verify=[["cmp", "-s", "--ignore-initial={size}:0", "--", "{path}", "/dev/null"]],
        decide=decide_rotate,
    ),
    Fix(
        name="clear-thumbnails",
        summary="Delete the desktop's thumbnail cache (it is rebuilt on demand)",
        description="The check counts the cached files and their sizes; it lists no names.",
        check=[["find", THUMBNAILS, "-type", "f", "-printf", _SIZE_OF_FILES]],
        apply=[["rm", "-rf", "--", THUMBNAILS]],
        verify=[["test", "!", "-e", THUMBNAILS]],
        decide=decide_thumbnails,
    ),
)

__all__ = [
    "APT_ARCHIVES",
    "FIXES",
    "cache_size",
    "decide_flush",
    "decide_package_cache",
    "decide_print_queue",
    "decide_restart",
    "decide_rotate",
    "decide_thumbnails",
    "decide_vacuum",
    "journal_usage",
    "sizes",
]
