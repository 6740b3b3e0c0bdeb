"""The first-party Linux plugin's declarations: installed, well-formed, stable, and strict.

A declaration's digest names it in both transcripts and decides whether a
brought procedure matches an installed one, so a change of its commands
must come with a new version: tests/assets/plugins/linux-digests.json pins
each (name, version) to its digest.
"""

from __future__ import annotations

import json
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import toolkit_linux

from toolkit.plugins import (
    GROUP,
    Diagnostic,
    Fix,
    ParameterError,
    ParameterType,
    Plugin,
    Procedure,
    Step,
)

PLUGIN = toolkit_linux.plugin
PROCEDURES = {p.name: p for p in PLUGIN.procedures}
DIGESTS = Path(__file__).resolve().parents[2] / "assets" / "plugins" / "linux-digests.json"

DIAGNOSTICS = [
    "system",
    "os-release",
    "uptime-load",
    "memory",
    "disk",
    "largest-dirs",
    "top-processes",
    "services",
    "journal-errors",
    "network",
    "dns-resolve",
    "listening-ports",
    "reachable",
    "time-sync",
]
FIXES = [
    "restart-unit",
    "journal-vacuum",
    "clean-package-cache",
    "flush-dns",
    "clear-print-queue",
    "rotate-log",
    "clear-thumbnails",
]

#: Values no parameter of any kind may take: shell syntax, options, path tricks, controls.
HOSTILE = [
    "; rm -rf /",
    "$(id)",
    "`id`",
    "a b",
    "a|b",
    "a&b",
    "a>b",
    "*",
    "?",
    "-rf",
    "--help",
    "-",
    "..",
    ".",
    "../../etc/shadow",
    "a\nb",
    "a\x00b",
    "a\x1b[2J",
    "",
    "x" * 2000,
]
#: And a path parameter's own refusals: relative, dotted, doubled, trailing slash.
HOSTILE_PATHS = [
    "var/log/x.log",
    "/var/log/../../etc/shadow",
    "/var/./log/x.log",
    "//etc/shadow",
    "/var/log/",
    "~/x.log",
    "/var/log/$(id).log",
    "/var/log/a b.log",
    "/var/log/*.log",
]


def test_the_entry_point_is_the_plugin() -> None:
    found = {ep.name: ep for ep in entry_points(group=GROUP)}
    assert found["linux"].value == "toolkit_linux:plugin"
    loaded = found["linux"].load()
    assert loaded is PLUGIN
    assert isinstance(loaded, Plugin)
    assert loaded.name == "linux"
    assert found["linux"].dist is not None and found["linux"].dist.name == "toolkit-linux"


def test_it_provides_the_issue_s_procedures_and_nothing_twice() -> None:
    kinds = {p.name: p.kind.value for p in PLUGIN.procedures}
    assert len(kinds) == len(PLUGIN.procedures)  # no two share a name
    assert sorted(n for n, k in kinds.items() if k == "diagnostic") == sorted(DIAGNOSTICS)
    assert sorted(n for n, k in kinds.items() if k == "fix") == sorted(FIXES)
    # No two procedures do the same: their commands differ.
    steps = [tuple(p.commands(s) for s in p.STEPS) for p in PLUGIN.procedures]
    assert len(set(steps)) == len(steps)


def test_the_built_in_names_keep_their_commands_and_summaries() -> None:
    """Sessions and tests used these before the plugin: same names, same apply, same words."""
    system = PROCEDURES["system"]
    assert system.commands(Step.RUN) == (("uname", "-a"), ("uptime",), ("free", "-m"), ("df", "-h"))
    assert PROCEDURES["disk"].commands(Step.RUN) == (("df", "-h"), ("df", "-i"))
    assert PROCEDURES["network"].commands(Step.RUN) == (
        ("ip", "-brief", "address"),
        ("ip", "route"),
    )
    assert PROCEDURES["services"].commands(Step.RUN) == (("systemctl", "--failed", "--no-pager"),)
    flush = PROCEDURES["flush-dns"]
    assert flush.summary == "Flush systemd-resolved's DNS cache"
    assert flush.commands(Step.APPLY) == (("resolvectl", "flush-caches"),)
    thumbnails = PROCEDURES["clear-thumbnails"]
    assert thumbnails.summary == "Delete the desktop's thumbnail cache (it is rebuilt on demand)"
    assert thumbnails.resolve(Step.APPLY, {}, "/home/ann") == (
        ("rm", "-rf", "--", "/home/ann/.cache/thumbnails"),
    )


@pytest.mark.parametrize("name", FIXES)
def test_every_fix_has_check_verify_and_a_decision(name: str) -> None:
    fix = PROCEDURES[name]
    assert isinstance(fix, Fix)
    assert fix.previewable
    assert fix.check and fix.verify and fix.apply
    assert fix.decide is not None
    # The check and verify are read-only steps: no command of theirs is an apply command.
    assert not set(fix.check) & set(fix.apply)
    assert not set(fix.verify) & set(fix.apply)


@pytest.mark.parametrize("name", DIAGNOSTICS)
def test_every_diagnostic_sums_up_its_output(name: str) -> None:
    diagnostic = PROCEDURES[name]
    assert isinstance(diagnostic, Diagnostic)
    assert diagnostic.findings is not None


@pytest.mark.parametrize("procedure", PLUGIN.procedures, ids=lambda p: p.name)
def test_the_canonical_form_round_trips_and_its_digest_is_stable(procedure: Procedure) -> None:
    again = Procedure.from_dict(json.loads(procedure.canonical()))
    assert again.sha256 == procedure.sha256
    assert again.to_dict() == procedure.to_dict()
    assert procedure.runs_here("linux")
    assert not procedure.runs_here("macos")
    # The technician's-side code is not part of what is sent or digested.
    assert "findings" not in procedure.to_dict() and "decide" not in procedure.to_dict()


def test_a_changed_declaration_comes_with_a_new_version() -> None:
    pinned = json.loads(DIGESTS.read_text())
    now = {p.name: {"version": p.version, "sha256": p.sha256} for p in PLUGIN.procedures}
    changed = sorted(
        name
        for name, entry in now.items()
        if name in pinned
        and pinned[name]["version"] == entry["version"]
        and pinned[name]["sha256"] != entry["sha256"]
    )
    assert not changed, (
        f"{changed} changed without a new version: bump it, then update {DIGESTS.name} to\n"
        + json.dumps(now, indent=2, sort_keys=True)
    )
    assert set(pinned) == set(now), f"update {DIGESTS.name} to\n" + json.dumps(
        now, indent=2, sort_keys=True
    )


def test_only_declared_files_are_read_by_name() -> None:
    assert PROCEDURES["os-release"].reads == ("/etc/os-release",)
    assert PROCEDURES["memory"].reads == ("/proc/meminfo",)
    assert set(PROCEDURES["uptime-load"].reads) == {"/proc/uptime", "/proc/loadavg"}
    # A path parameter is checked by the agent's file policy as a value.
    assert PROCEDURES["rotate-log"].path_values(
        PROCEDURES["rotate-log"].bind({"path": "/var/log/app.log"})
    ) == ("/var/log/app.log",)


PARAMETERS = [
    (procedure.name, parameter.name, parameter.type)
    for procedure in PLUGIN.procedures
    for parameter in procedure.parameters
]
GOOD = {
    "unit": "cups.service",
    "lines": "20",
    "name": "example.org",
    "host": "192.0.2.1",
    "port": "443",
    "path": "/var/log/app.log",
    "size": "200M",
    "printer": "office_2",
}


def _given(procedure: Procedure, name: str, value: str) -> dict[str, str]:
    given = {p.name: GOOD[p.name] for p in procedure.parameters if p.default is None}
    given[name] = value
    return given


@pytest.mark.parametrize(("procedure", "parameter", "kind"), PARAMETERS)
def test_parameters_refuse_shell_syntax_options_and_path_tricks(
    procedure: str, parameter: str, kind: ParameterType
) -> None:
    declared = PROCEDURES[procedure]
    values = declared.bind(_given(declared, parameter, GOOD[parameter]))
    assert values[parameter] == GOOD[parameter]
    hostile = HOSTILE + (HOSTILE_PATHS if kind is ParameterType.PATH else ["a/b", "/etc"])
    for value in hostile:
        with pytest.raises(ParameterError):
            declared.bind(_given(declared, parameter, value))


def test_parameters_refuse_unknown_names_and_need_the_required_ones() -> None:
    with pytest.raises(ParameterError, match="has no parameter"):
        PROCEDURES["restart-unit"].bind({"unit": "cups.service", "force": "yes"})
    with pytest.raises(ParameterError, match="needs -p unit="):
        PROCEDURES["restart-unit"].bind({})
    with pytest.raises(ParameterError, match="needs -p size="):
        PROCEDURES["journal-vacuum"].bind({})
    assert PROCEDURES["rotate-log"].bind({"path": "/var/log/a.log"}) == {
        "path": "/var/log/a.log",
        "lines": "1000",
        "size": "100M",
    }


@pytest.mark.parametrize(
    ("procedure", "parameter", "value"),
    [
        ("restart-unit", "unit", "cups"),  # a service, named with its suffix
        ("restart-unit", "unit", "cups.socket"),
        ("restart-unit", "unit", "cups*.service"),  # systemctl takes globs: never one
        ("journal-errors", "unit", "cups*"),
        ("journal-errors", "lines", "0"),
        ("journal-errors", "lines", "1001"),
        ("rotate-log", "lines", "10001"),
        ("journal-vacuum", "size", "200"),  # a unit is required: 200 bytes is a mistake
        ("journal-vacuum", "size", "0M"),
        ("journal-vacuum", "size", "1.5G"),
        ("reachable", "port", "0"),
        ("reachable", "port", "65536"),
        ("clear-print-queue", "printer", "office#2"),
    ],
)
def test_parameters_refuse_values_outside_their_pattern_or_range(
    procedure: str, parameter: str, value: str
) -> None:
    declared = PROCEDURES[procedure]
    with pytest.raises(ParameterError):
        declared.bind(_given(declared, parameter, value))


def test_a_template_word_with_a_value_stays_one_word() -> None:
    """A value becomes part of one argv word: never split, never an option of its own."""
    vacuum = PROCEDURES["journal-vacuum"]
    apply = vacuum.resolve(Step.APPLY, vacuum.bind({"size": "200M"}), "/root")
    assert apply == (("journalctl", "--rotate", "--vacuum-size=200M"),)
    rotate = PROCEDURES["rotate-log"]
    values = rotate.bind({"path": "/var/log/app.log", "lines": "5", "size": "1K"})
    assert rotate.resolve(Step.VERIFY, values, "/root") == (
        ("cmp", "-s", "--ignore-initial=1K:0", "--", "/var/log/app.log", "/dev/null"),
    )
