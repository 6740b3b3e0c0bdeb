"""The plugin loader: each entry point isolated, names given twice refused in both, sorted."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from toolkit.errors import TicketBackendError, UsageError
from toolkit.plugins import GROUP, DeclarationError, Kind, Plugin
from toolkit.plugins import loader as loader_module
from toolkit.plugins.loader import Broken, Installed, installed, load
from toolkit.tickets import plugins as tickets

from .loader_samples import alpha, backend, diagnostic

SAMPLES = "tests.unit.plugins.loader_samples"


def ep(name: str, attribute: str, module: str = SAMPLES) -> EntryPoint:
    return EntryPoint(name=name, value=f"{module}:{attribute}", group=GROUP)


def reasons(found: Installed) -> dict[str, str]:
    return {b.name: b.reason for b in found.broken}


def test_every_way_to_break_is_isolated_and_named() -> None:
    found = load(
        [
            ep("alpha", "alpha"),
            ep("missing", "plugin", module="tests.unit.plugins.no_such_module"),
            ep("gamma", "not_a_plugin"),
            ep("bad", "bad_declaration"),
            ep("quits", "exits"),
            ep("crashes", "crashes"),
            ep("renamed", "alpha"),
            ep("Not_A_Name", "alpha"),
        ]
    )
    assert [loaded.plugin.name for loaded in found.plugins] == ["alpha"]
    assert reasons(found) == {
        "Not_A_Name": "its entry point's name is not lower-case-with-dashes.",
        "bad": "a bad declaration: procedure 'x': apply: a command's first word is literal.",
        "crashes": "it failed to import (RuntimeError: boom with a second line).",
        "gamma": "its object is a dict, not a toolkit.plugins.Plugin.",
        "missing": "it failed to import (ModuleNotFoundError: No module named "
        "'tests.unit.plugins.no_such_module').",
        "quits": "it failed to import (SystemExit: 3).",
        "renamed": "its Plugin is named 'alpha'; the entry point must be named the same.",
    }
    assert all(b.refused is None for b in found.broken)
    assert found.broken[0].origin == f"{SAMPLES}:alpha"  # no distribution: the value alone


def test_a_name_given_by_two_plugins_is_refused_in_both_and_the_rest_kept() -> None:
    found = load([ep("beta", "beta"), ep("alpha", "alpha")])
    by_name = {loaded.plugin.name: loaded.plugin for loaded in found.plugins}
    assert [(p.kind, p.name) for p in by_name["alpha"].procedures] == [
        (Kind.DIAGNOSTIC, "disk"),
        (Kind.FIX, "disk"),
        (Kind.DIAGNOSTIC, "registry"),
    ]
    assert [p.name for p in by_name["beta"].procedures] == ["memory"]
    assert [b.name for b in by_name["alpha"].ticket_backends] == ["alpha-desk"]
    assert by_name["beta"].ticket_backends == ()
    assert [(b.name, b.refused, b.reason) for b in found.broken] == [
        (
            "alpha",
            ("diagnostic", "uptime"),
            "diagnostic 'uptime' is also given by beta; refused in both.",
        ),
        (
            "alpha",
            ("ticket backend", "shared-desk"),
            "ticket backend 'shared-desk' is also given by beta; refused in both.",
        ),
        (
            "beta",
            ("diagnostic", "uptime"),
            "diagnostic 'uptime' is also given by alpha; refused in both.",
        ),
        (
            "beta",
            ("ticket backend", "shared-desk"),
            "ticket backend 'shared-desk' is also given by alpha; refused in both.",
        ),
    ]
    assert [b.ticket_backend for b in found.broken] == ["", "shared-desk", "", "shared-desk"]
    assert found.find(Kind.DIAGNOSTIC, "uptime") is None


def test_one_plugin_name_from_two_entry_points_loads_neither() -> None:
    found = load([ep("alpha", "alpha"), ep("alpha", "alpha_again")])
    assert found.plugins == ()
    assert [b.reason for b in found.broken] == [
        f"{SAMPLES}:alpha_again has the same name; neither loads.",
        f"{SAMPLES}:alpha has the same name; neither loads.",
    ]


def test_the_result_does_not_depend_on_the_order_entry_points_come_in() -> None:
    points = [ep("beta", "beta"), ep("alpha", "alpha"), ep("gamma", "not_a_plugin")]
    assert load(points) == load(list(reversed(points)))
    assert [loaded.plugin.name for loaded in load(points).plugins] == ["alpha", "beta"]


def test_procedures_are_those_that_run_here_sorted_and_find_sees_every_platform() -> None:
    found = load([ep("alpha", "alpha")])
    assert [(p.kind.value, p.name) for p, _ in found.procedures()] == [
        ("diagnostic", "disk"),
        ("diagnostic", "uptime"),
        ("fix", "disk"),
    ]
    hit = found.find(Kind.DIAGNOSTIC, "registry")
    assert hit is not None
    procedure, loaded = hit
    assert not procedure.runs_here() and loaded.plugin is alpha
    assert loaded.entry_point == f"{SAMPLES}:alpha" and loaded.distribution is None
    assert found.find(Kind.FIX, "uptime") is None
    assert list(found.ticket_backends()) == ["alpha-desk", "shared-desk"]


def test_the_old_tickets_form_loads_with_a_deprecation_line() -> None:
    found = load([ep("tickets.old-desk", "legacy"), ep("tickets.other-desk", "legacy")])
    [loaded] = found.plugins
    assert loaded.plugin.name == "tickets-old-desk"
    assert "tickets.old-desk uses the old form" in loaded.deprecated
    assert list(found.ticket_backends()) == ["old-desk"]
    [broken] = found.broken
    assert broken.name == "tickets.other-desk"
    assert broken.ticket_backend == "other-desk"
    assert broken.reason == "its object is not a TicketPlugin named 'other-desk'."


def test_installed_loads_once_per_process() -> None:
    assert installed() is installed()
    names = [loaded.plugin.name for loaded in installed().plugins]
    assert "builtin" in names  # toolkit's own entry point, with the local backend
    assert "local" in installed().ticket_backends()


def test_a_plugin_checks_itself_when_it_is_built() -> None:
    with pytest.raises(DeclarationError, match="not lower-case-with-dashes"):
        Plugin(name="My Plugin", version="1")
    with pytest.raises(DeclarationError, match="two procedures of one kind have one name"):
        Plugin(name="p", version="1", procedures=(diagnostic("x"), diagnostic("x")))
    with pytest.raises(DeclarationError, match="procedures are Diagnostic or Fix"):
        Plugin(name="p", version="1", procedures=("x",))  # type: ignore[arg-type]
    with pytest.raises(DeclarationError, match="ticket_backends are TicketPlugin"):
        Plugin(name="p", version="1", ticket_backends=(object(),))  # type: ignore[arg-type]
    with pytest.raises(DeclarationError, match="two ticket backends have one name"):
        Plugin(name="p", version="1", ticket_backends=(backend("x"), backend("x")))
    with pytest.raises(DeclarationError, match="version is a short string"):
        Plugin(name="p", version="")


def test_ticket_backends_come_from_the_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    found = load([ep("alpha", "alpha"), ep("beta", "beta"), ep("tickets.x-desk", "not_a_plugin")])
    monkeypatch.setattr(loader_module, "installed", lambda: found)
    # local is always there, from toolkit's own module when no entry point gives it
    assert list(tickets.available()) == ["alpha-desk", "local", "shared-desk", "x-desk"]
    assert tickets.plugin("alpha-desk").summary == "alpha-desk tickets"
    with pytest.raises(
        TicketBackendError, match=r"'shared-desk' .* cannot be used: ticket backend"
    ):
        tickets.plugin("shared-desk")
    with pytest.raises(TicketBackendError, match="not a TicketPlugin named 'x-desk'"):
        tickets.plugin("x-desk")
    with pytest.raises(UsageError, match="No ticket backend named 'nope'") as refused:
        tickets.plugin("nope")
    assert "Installed: alpha-desk, local, shared-desk, x-desk." in (refused.value.hint or "")


def test_broken_is_plain_data() -> None:
    broken = Broken("p", "m:o", "why.", refused=("fix", "x"))
    assert broken.ticket_backend == ""
    assert Broken("p", "m:o", "why.", refused=("ticket backend", "desk")).ticket_backend == "desk"
