"""Procedures declared as data: every refusal of a declaration and of a value, and its digest."""

from __future__ import annotations

import json
from typing import Any

import pytest

from toolkit.plugins import (
    DeclarationError,
    Diagnostic,
    Fix,
    Kind,
    Parameter,
    ParameterError,
    ParameterType,
    Procedure,
    Step,
    StepOutput,
)
from toolkit.plugins.declaration import MAX_DECLARATION, MAX_PARAMETERS, MAX_STEPS

UNIT = Parameter("unit", pattern=r"[a-z]+\.service", description="a unit")
PATH = Parameter("dir", pattern=r"/var/log(/[a-z]+)*", type=ParameterType.PATH)
SIZE = Parameter("size", pattern=r"[0-9]+", type=ParameterType.INTEGER, minimum=1, maximum=500)


def _fix(**changes: Any) -> Fix:
    body: dict[str, Any] = {
        "name": "restart-unit",
        "summary": "Restart a unit",
        "parameters": (UNIT,),
        "check": [["systemctl", "is-active", "{unit}"]],
        "apply": [["systemctl", "restart", "{unit}"]],
        "verify": [["systemctl", "is-active", "{unit}"]],
        "rollback": [["systemctl", "stop", "{unit}"]],
    }
    body.update(changes)
    return Fix(**body)


# -- names, sizes, fields ------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "Upper", "1st", "under_score", "dot.ted", "x" * 65, "-a"])
def test_a_procedure_name_is_lower_case_with_dashes(name: str) -> None:
    with pytest.raises(DeclarationError, match="a name is lower-case-with-dashes"):
        _fix(name=name)


@pytest.mark.parametrize("name", ["", "Unit", "with-dash", "1x", "x" * 33])
def test_a_parameter_name_is_lower_case_letters_digits_underscore(name: str) -> None:
    with pytest.raises(DeclarationError, match="a name is lower-case letters"):
        Parameter(name, pattern="[a-z]+")


def test_home_is_not_a_parameter_name() -> None:
    with pytest.raises(DeclarationError, match="home"):
        Parameter("home", pattern="[a-z]+")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"version": ""}, "version is"),
        ({"version": "1 0"}, "version is"),
        ({"summary": ""}, "summary is one line"),
        ({"summary": "x" * 121}, "summary is one line"),
        ({"summary": "two\nlines"}, "summary is one line"),
        ({"description": "x" * 4001}, "description is at most"),
        ({"description": "bell\x07"}, "description has a control character"),
        ({"platforms": ()}, "platforms names at least one"),
        ({"platforms": ("Linux",)}, "platforms names at least one"),
        ({"apply": []}, r"a list of 1\.\."),
        ({"apply": [[]]}, "each command is a list of non-empty strings"),
        ({"apply": [["systemctl", ""]]}, "each command is a list of non-empty strings"),
        ({"apply": "systemctl restart x"}, "a list of"),
        ({"apply": [["true"]] * (MAX_STEPS + 1)}, "a list of"),
        ({"apply": [["echo", "a\nb"]]}, "control character"),
        ({"apply": [["echo", "\x1b[2J"]]}, "control character"),
        ({"parameters": (UNIT, UNIT)}, "two parameters have one name"),
        ({"reads": ("relative/path",)}, "is not absolute"),
        ({"reads": ("/x",) * 33}, "reads is at most"),
    ],
)
def test_bad_fields_are_refused_naming_the_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        _fix(**changes)


def test_too_many_parameters_are_refused() -> None:
    many = tuple(Parameter(f"p{i}", pattern="[a-z]+") for i in range(MAX_PARAMETERS + 1))
    with pytest.raises(DeclarationError, match=f"at most {MAX_PARAMETERS} parameters"):
        Diagnostic(name="many", summary="s", parameters=many, run=[["true"]])


def test_a_declaration_too_big_for_one_message_is_refused() -> None:
    commands = [["echo", "x" * 4000] for _ in range(MAX_DECLARATION // 4000 + 1)]
    with pytest.raises(DeclarationError, match="over"):
        Diagnostic(name="big", summary="s", run=commands[:MAX_STEPS])


def test_a_diagnostic_needs_a_command_and_a_fix_needs_apply_only() -> None:
    with pytest.raises(DeclarationError, match=r"run: a list of 1\.\."):
        Diagnostic(name="empty", summary="s")
    bare = Fix(name="bare", summary="s", apply=[["true"]])
    assert bare.steps == (Step.APPLY,)
    assert not bare.previewable
    assert _fix().previewable


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"pattern": ""}, "needs a pattern"),
        ({"pattern": "("}, "not a regular expression"),
        ({"type": "float"}, "type must be one of"),
        ({"description": "x" * 241}, "description is too long"),
        ({"minimum": 1}, "only an integer has a minimum"),
        ({"type": ParameterType.INTEGER, "minimum": "1"}, "minimum and maximum are integers"),
        ({"default": 7}, "default must be a string"),
        ({"default": "-rf"}, "its default is refused"),
    ],
)
def test_bad_parameters_are_refused(changes: dict[str, Any], message: str) -> None:
    body: dict[str, Any] = {"name": "p", "pattern": "[a-z-]+"}
    body.update(changes)
    with pytest.raises(DeclarationError, match=message):
        Parameter(**body)


# -- templates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("apply", "message"),
    [
        ([["{unit}"]], "first word is literal"),
        ([["/usr/bin/{unit}", "x"]], "first word is literal"),
        ([["systemctl", "{nope}"]], "is not a parameter"),
        ([["systemctl", "{unit"]], "stray brace"),
        ([["systemctl", "unit}"]], "stray brace"),
        ([["rm", "{dir}/x"]], "must be a whole word"),
        ([["rm", "--path={dir}"]], "must be a whole word"),
    ],
)
def test_templates_are_checked(apply: list[list[str]], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        _fix(parameters=(UNIT, PATH), apply=apply)


def test_a_read_may_be_a_path_parameter_or_under_home() -> None:
    fix = _fix(parameters=(UNIT, PATH), reads=("{dir}", "{home}/.config/x", "/etc/os-release"))
    values = fix.bind({"unit": "cups.service", "dir": "/var/log/cups"})
    assert fix.resolved_reads(values, "/home/ann") == (
        "/var/log/cups",
        "/home/ann/.config/x",
        "/etc/os-release",
    )
    assert fix.path_values(values) == ("/var/log/cups",)
    with pytest.raises(DeclarationError, match="must be a whole word"):
        _fix(parameters=(UNIT, PATH), reads=("{dir}/x",))


# -- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "value", "message"),
    [
        (UNIT, "", "not empty"),
        (UNIT, "-h.service", "cannot start with '-'"),
        (UNIT, "--now", "cannot start with '-'"),
        (UNIT, "a\x00.service", "control character"),
        (UNIT, "a\n.service", "control character"),
        (UNIT, "x" * 1025, "too long"),
        (UNIT, "../etc.service", "has no '/'"),
        (UNIT, "..", "is not '.' or '..'"),
        (UNIT, "cups;reboot.service", "does not match"),
        (UNIT, "$(reboot).service", "does not match"),
        (UNIT, "cups.service extra", "does not match"),
        (PATH, "var/log", "a path is absolute"),
        (PATH, "/var/log/../../etc", "a path is absolute"),
        (PATH, "/var/log/./x", "a path is absolute"),
        (PATH, "//var/log", "a path is absolute"),
        (PATH, "/var/log/", "a path is absolute"),
        (PATH, "/etc/shadow", "does not match"),
        (SIZE, "12a", "not a whole number"),
        (SIZE, "0", "outside 1..500"),
        (SIZE, "501", "outside 1..500"),
        (SIZE, "1/2", "has no '/'"),
        (SIZE, "-1", "cannot start with '-'"),
        (SIZE, "١٢", "not a whole number"),  # Arabic-Indic digits: isdigit() but not ASCII
    ],
)
def test_values_are_refused_before_anything_runs(
    parameter: Parameter, value: str, message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        parameter.check(value)


def test_bind_takes_defaults_and_refuses_unknown_and_missing() -> None:
    flag = Parameter("flag", pattern="[a-z]+", default="x")
    fix = _fix(parameters=(UNIT, flag), apply=[["touch", "{flag}"]])
    assert fix.bind({"unit": "cups.service"}) == {"unit": "cups.service", "flag": "x"}
    with pytest.raises(ParameterError, match="needs -p unit=VALUE"):
        fix.bind({})
    with pytest.raises(ParameterError, match='no parameter "colour"; it takes: unit, flag'):
        fix.bind({"unit": "cups.service", "colour": "red"})


def test_resolve_fills_only_checked_values_and_home() -> None:
    fix = _fix(parameters=(UNIT,), apply=[["systemctl", "restart", "{unit}"], ["ls", "{home}"]])
    values = fix.bind({"unit": "cups.service"})
    assert fix.resolve(Step.APPLY, values, "/root") == (
        ("systemctl", "restart", "cups.service"),
        ("ls", "/root"),
    )
    assert fix.resolve(Step.RUN, values, "/root") == ()


def test_a_value_with_braces_is_not_substituted_again() -> None:
    anything = Parameter("text", pattern=r"[a-z{}]+")
    diag = Diagnostic(
        name="echo", summary="s", parameters=(anything,), run=[["echo", "{text}", "{home}"]]
    )
    values = diag.bind({"text": "{home}"})
    assert diag.resolve(Step.RUN, values, "/root") == (("echo", "{home}", "/root"),)


# -- decisions ------------------------------------------------------------------------


def test_the_default_decision_follows_exit_statuses() -> None:
    fix = _fix()
    ok = StepOutput(("systemctl", "is-active", "x"), 0)
    assert not fix.decision([ok], {}).needed
    assert fix.decision([ok, StepOutput(("false",), 3)], {}).needed
    for status in (None, 126, 127, 255):
        with pytest.raises(ValueError, match="could not run"):
            fix.decision([StepOutput(("x",), status)], {})


def test_decide_is_technician_side_only_and_not_in_the_digest() -> None:
    from toolkit.plugins import Decision

    decided = _fix(decide=lambda outputs, values: Decision(True, diff="+x"))
    assert decided.decision([], {}).diff == "+x"
    assert decided.sha256 == _fix().sha256
    assert "decide" not in decided.to_dict()


# -- the canonical form ---------------------------------------------------------------


def test_canonical_json_is_sorted_compact_and_its_digest_stable() -> None:
    fix = _fix(description="Restarts it.", parameters=(UNIT, SIZE))
    raw = fix.canonical()
    assert raw == json.dumps(fix.to_dict(), sort_keys=True, separators=(",", ":")).encode()
    assert raw.isascii()
    assert fix.sha256 == _fix(description="Restarts it.", parameters=(UNIT, SIZE)).sha256
    # A fixed declaration has a fixed digest: a change here changes what transcripts name.
    pinned = Diagnostic(name="uptime", summary="Uptime and load", run=[["uptime"]])
    assert pinned.canonical() == (
        b'{"description":"","kind":"diagnostic","name":"uptime","parameters":[],'
        b'"platforms":["linux"],"reads":[],"run":[["uptime"]],"summary":"Uptime and load",'
        b'"version":"1"}'
    )
    assert pinned.sha256 == "2ff75d5926b2d1fb10f0b4ff4fbdbfed0ab41ec2fb14905e7008a97081946c8d"


def test_any_change_changes_the_digest() -> None:
    base = _fix()
    assert base.sha256 != _fix(version="2").sha256
    assert base.sha256 != _fix(apply=[["systemctl", "reload", "{unit}"]]).sha256
    assert base.sha256 != _fix(parameters=(Parameter("unit", pattern=r".+\.service"),)).sha256


@pytest.mark.parametrize(
    "procedure",
    [
        _fix(description="two\nlines", parameters=(UNIT, PATH, SIZE), reads=("{dir}",)),
        Fix(name="bare", summary="s", apply=[["true"]]),
        Diagnostic(name="disk", summary="Disk", platforms=("linux", "macos"), run=[["df", "-h"]]),
    ],
    ids=["fix", "bare-fix", "diagnostic"],
)
def test_round_trip_through_json(procedure: Procedure) -> None:
    wire = json.loads(json.dumps(procedure.to_dict()))
    back = Procedure.from_dict(wire)
    assert back == procedure
    assert back.sha256 == procedure.sha256
    assert back.kind is procedure.kind


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(script="sh -c"), "has no field 'script'"),
        (lambda d: d.update(run=[["true"]]), "has no field 'run'"),  # a fix has no run
        (lambda d: d.pop("name"), "has no name"),
        (lambda d: d.pop("summary"), "has no summary"),
        (lambda d: d.pop("version"), "has no version"),
        (lambda d: d.pop("platforms"), "has no platforms"),
        (lambda d: d.update(kind="script"), "kind is diagnostic or fix"),
        (lambda d: d.update(platforms="linux"), "platforms is a list"),
        (lambda d: d.update(parameters={"unit": {}}), "parameters is a list"),
        (lambda d: d["parameters"][0].update(eval="x"), "a parameter is an object"),
        (lambda d: d["parameters"][0].pop("pattern"), "a parameter is an object"),
        (lambda d: d.update(apply=[["{unit}"]]), "first word is literal"),
    ],
)
def test_from_dict_is_strict(mutate: Any, message: str) -> None:
    wire = _fix().to_dict()
    mutate(wire)
    with pytest.raises(DeclarationError, match=message):
        Procedure.from_dict(wire)


def test_from_dict_refuses_what_is_not_an_object() -> None:
    raws: list[object] = [[], "fix", None, 1]
    for raw in raws:
        with pytest.raises(DeclarationError, match="a JSON object"):
            Procedure.from_dict(raw)


def test_kinds_and_scopes() -> None:
    assert Kind.DIAGNOSTIC.scope == "diagnostics"
    assert Kind.FIX.scope == "fixes"
    assert [s for s in Step if s.read_only] == [Step.RUN, Step.CHECK, Step.VERIFY]
    assert _fix().runs_here("linux")
    assert not _fix(platforms=("windows",)).runs_here("linux")
