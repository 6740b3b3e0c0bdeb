"""The customer's panel shows what the agent asks, as it asks it: a brought procedure whole."""

from __future__ import annotations

from toolkit.agent.operations import Question
from toolkit.cli.share import _fix_question


def test_a_brought_procedure_shows_summary_description_and_every_step() -> None:
    asked = _fix_question(
        Question(
            "my-touch",
            (
                ("check", (("test", "-e", "/home/c/x"),)),
                ("apply", (("touch", "/home/c/x"),)),
                ("rollback", (("rm", "-f", "--", "/home/c/x"),)),
            ),
            summary="Touch a file",
            description="Makes x.\n\x1b[2JReally.",
            brought=True,
            out_of_scope=True,
        )
    )
    assert asked.title == "The technician brings the fix my-touch (outside the approved scope)"
    text = "\n".join(asked.lines)
    # The description comes after every command: no text can push one off the panel.
    assert text.index("Touch a file") < text.index("check (1 command):") < text.index("Makes x.")
    assert "not installed on this machine" in text
    for shown in ("$ test -e /home/c/x", "$ touch /home/c/x", "$ rm -f -- /home/c/x"):
        assert shown in text
    assert "\x1b" not in text  # the technician's text is made printable
    assert asked.subject.startswith("the brought fix my-touch (Touch a file)")
    assert asked.subject.endswith(": 3 commands")


def test_an_installed_apply_shows_its_rollback_under_its_own_heading() -> None:
    asked = _fix_question(
        Question(
            "marker",
            (("apply", (("touch", "/h/m"),)), ("rollback", (("rm", "/h/m"),))),
            summary="Leave a marker",
        )
    )
    assert asked.title == "The technician asks to run the fix marker"
    assert asked.lines == [
        "Leave a marker",
        "",
        "It runs exactly (1 command):",
        "  $ touch /h/m",
        "If it has to be undone, rollback runs (1 command):",
        "  $ rm /h/m",
    ]
    rollback = _fix_question(
        Question("marker", (("rollback", (("rm", "/h/m"),)),), summary="Leave a marker")
    )
    assert rollback.title == "The technician asks to run the fix marker (rollback)"
