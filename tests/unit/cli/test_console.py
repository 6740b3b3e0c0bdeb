"""Plain lines printed without rich come out exactly as rich's Console prints them."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolkit.cli._console import Lines, say
from toolkit.text import printable_lines

FRAGMENTS = [
    ":smile:", ":100:", ":a:", ":Smile-emoji:", ":thumbs_up-text:", "12:30:45", "SHA256:x/y+z",
    "[", "]", "[bold]", "[/]", "\\[", "\\", "\t", "\x07", "\r", "\n", "\n\n", "\x1b[1m",
    "\u2028", "\u200d", "\ufe0f", "é", "☃", "漢字",
    " ", "  ", "x", ":", "127.0.0.1:41327", "'quoted'", "123", "None", "True",
]  # fmt: skip


def _both(
    text: str, *, stderr: bool = True, highlight: bool = False, markup: bool = False
) -> tuple[str, str, bool]:
    """What Lines prints, what rich prints, and whether Lines needed rich.

    With ``markup``, ``text`` is printed after a ``[bold red]TAMPERED[/]`` tag
    (the verdict line of ``toolkit verify``).
    """
    from rich.console import Console

    results = []
    used_rich = False
    for way in ("lines", "rich"):
        raw = io.BytesIO()
        stream = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
        redirect = contextlib.redirect_stderr if stderr else contextlib.redirect_stdout
        with redirect(stream):
            if way == "lines":
                lines = Lines(stderr=stderr)
                if markup:
                    lines.print(
                        f"[bold red]TAMPERED[/] {text}", markup=True, plain=f"TAMPERED {text}"
                    )
                else:
                    lines.print(text, highlight=highlight)
                used_rich = lines._console is not None
            elif markup:
                Console(stderr=stderr, soft_wrap=True, emoji=False).print(
                    f"[bold red]TAMPERED[/] {text}"
                )
            else:
                # Lines escapes control characters (toolkit.text) that rich would print raw.
                Console(stderr=stderr, soft_wrap=True, emoji=False).print(
                    _escaped(text), markup=False, highlight=highlight
                )
        results.append(raw.getvalue().decode())
    return results[0], results[1], used_rich


def _escaped(text: str) -> str:
    if all(line.isprintable() for line in text.split("\n")):
        return text
    return printable_lines(text)


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=8).map("".join),
    stderr=st.booleans(),
    highlight=st.booleans(),
)
def test_text_is_printed_as_rich_prints_it(text: str, stderr: bool, highlight: bool) -> None:
    mine, rich_, _ = _both(text, stderr=stderr, highlight=highlight)
    assert mine == rich_
    assert "\x1b" not in mine and "\x07" not in mine  # what a terminal would obey


@pytest.mark.parametrize(
    "text",
    [
        "[00:10:14] connection from 127.0.0.1:41327",
        "Consent passed. Agent host key SHA256:H9nU+/x; granted: diagnostics.",
        "A technician asks to connect:\n  name         Alice\n  ticket       T-1",
        "café ☃ :100:",
        "",
    ],
)
def test_ordinary_text_does_not_need_rich(text: str) -> None:
    mine, rich_, used_rich = _both(text, stderr=True, highlight=False)
    assert mine == rich_ and not used_rich


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), max_size=8).map("".join),
)
def test_marked_up_lines_are_printed_as_rich_prints_them(text: str) -> None:
    try:
        mine, rich_, _ = _both(text, stderr=False, markup=True)
    except Exception as exc:  # rich refuses some markup: then so must Lines
        stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        with pytest.raises(type(exc)), contextlib.redirect_stdout(stream):
            Lines(stderr=False).print(f"[b]X[/] {text}", markup=True, plain=f"X {text}")
        return
    assert mine == rich_


@pytest.mark.parametrize(
    "text",
    ["  started      2026-11-27 19:02:42 UTC", '{"ticket": ":smile:", "n": 1}', "café ☃ :100:"],
)
def test_ordinary_stdout_lines_do_not_need_rich(text: str) -> None:
    mine, rich_, used_rich = _both(text, stderr=False)
    assert mine == rich_ and not used_rich


@pytest.mark.parametrize("env", ["FORCE_COLOR", "TTY_COMPATIBLE"])
@pytest.mark.parametrize("markup", [False, True])
def test_forced_terminals_are_left_to_rich(
    env: str, markup: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(env, "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    mine, rich_, used_rich = _both("exit status 3", highlight=True, markup=markup)
    assert mine == rich_ and used_rich and "\x1b[" in mine


def test_say_prints_to_stderr_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    say("to stderr")
    say("to stdout", stderr=False)
    say()
    assert capsys.readouterr() == ("to stdout\n", "to stderr\n\n")


def test_plain_lines_do_not_import_rich_console() -> None:
    code = (
        "import sys; from toolkit.cli._console import say;"
        "say('Consent passed. Agent host key SHA256:x+y/z; granted: diagnostics.');"
        "emoji = 'rich._emoji_codes' in sys.modules;"
        "say('[12:00:00] connection from 127.0.0.1:5'); say('a line', stderr=False);"
        "print(emoji, sorted(m for m in sys.modules if m.startswith('rich.console')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False []"


def test_agent_output_goes_raw_into_a_pipe_and_printable_onto_a_terminal(tmp_path: Path) -> None:
    import os
    import pty
    import select

    from toolkit.cli._terminal import write_output

    data = "ok é\r\n\x1b[2J\x1b]0;t\x07\n".encode()
    piped = tmp_path / "out"
    with piped.open("w", encoding="utf-8") as stream:
        write_output(stream, data[:5])
        write_output(stream, data[5:])
    assert piped.read_bytes() == data  # byte for byte, as ssh passes it
    leader, follower = pty.openpty()
    with os.fdopen(follower, "w", encoding="utf-8") as terminal:
        write_output(terminal, data[:5])  # a character cut in two
        write_output(terminal, data[5:])
    expected = "ok é\n\\x1b[2J\\x1b]0;t\\x07\n"
    shown = b""
    while shown.decode(errors="replace").replace("\r\n", "\n") != expected:
        ready, _, _ = select.select([leader], [], [], 5)
        assert ready, shown  # everything written is readable at once: no waiting needed
        shown += os.read(leader, 4096)
    os.close(leader)


@pytest.mark.parametrize("stderr", [False, True])
def test_emoji_codes_are_data_not_pictures(stderr: bool) -> None:
    # A ticket title or a transcript field may say ":fire:"; --json output stays ASCII and
    # the value stays the value (docs/security-model.md).
    line = '{"title": "disk :fire: :thumbs_up: :smile-emoji:"}'
    mine, rich_, used_rich = _both(line, stderr=stderr)
    assert mine == rich_ == line + "\n" and not used_rich
    marked, _, _ = _both(":fire:", stderr=stderr, markup=True)
    assert marked == "TAMPERED :fire:\n"
