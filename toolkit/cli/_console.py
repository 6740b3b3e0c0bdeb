"""The two output streams: data on stdout, everything else on stderr.

Consoles are made on first use and read ``sys.stdout``/``sys.stderr`` at print
time, so tests that capture those streams see everything. rich honours
NO_COLOR and drops styling when a stream is not a terminal.

:func:`say` and :class:`Lines` print plain lines as a Console does, without
rich's start-up (about 30 ms) where the output is surely the same.
"""

from __future__ import annotations

import builtins
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

_state: dict[str, bool] = {"verbose": False}


def out() -> Console:
    from rich.console import Console

    # emoji=False: ":fire:" in a ticket title or a JSON value is data, never a picture.
    return Console(soft_wrap=True, emoji=False)


def err() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, emoji=False)


def say(text: str = "", *, stderr: bool = True, highlight: bool = False) -> None:
    """``err().print(text, markup=False, highlight=highlight)`` (``out()`` without ``stderr``)."""
    Lines(stderr=stderr).print(text, highlight=highlight)


class Lines:
    """Prints to stdout or stderr as a rich ``Console(soft_wrap=True, emoji=False)`` does.

    Off a terminal, rich writes lines of printable text as they are: such
    text is written here directly, and a Console (most of rich's start-up
    time) is made only for text that needs one: a terminal (styles), markup
    holding a "[", control characters.
    tests/unit/cli/test_console.py compares both ways.
    """

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def print(
        self, text: str, *, markup: bool = False, plain: str = "", highlight: bool | None = None
    ) -> None:
        """Print ``text``; with ``markup``, ``plain`` is the same text without its tags.

        ``highlight`` (default: as ``markup``) only matters on a terminal.
        """
        stream = sys.stderr if self._stderr else sys.stdout
        if not markup and not _printable(text):
            # The last line of defence: a caller that forgot toolkit.text still cannot
            # hand a peer's escape sequence to the terminal. Lines and tabs are kept.
            from toolkit.text import printable_lines

            text = printable_lines(text)
        line = plain if markup else text
        if (
            not (markup and "[" in line)
            and surely_not_a_terminal(stream)
            and _printable(line)
            and (line.isascii() or _utf8(stream))
        ):
            try:
                stream.write(line + "\n")
                stream.flush()
            except BrokenPipeError:  # what rich's Console.on_broken_pipe does
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise SystemExit(1) from None
            return
        if self._console is None:
            self._console = err() if self._stderr else out()
        self._console.print(
            text, markup=markup, highlight=markup if highlight is None else highlight
        )


def _printable(text: str) -> bool:
    """Printable characters, in lines (rich writes a newline as it is)."""
    return all(line.isprintable() for line in text.split("\n"))


def surely_not_a_terminal(stream: TextIO) -> bool:
    """Whether rich surely takes ``stream`` for something other than a terminal."""
    if sys.platform == "win32" or hasattr(builtins, "get_ipython"):  # rich's own cases
        return False
    if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
        return False
    try:
        return not stream.isatty()
    except ValueError:
        return False


def _utf8(stream: TextIO) -> bool:
    return (getattr(stream, "encoding", None) or "").lower().replace("_", "-") in {
        "utf-8",
        "utf8",
    }


def set_verbose(value: bool) -> None:
    _state["verbose"] = value


def verbose() -> bool:
    return _state["verbose"]
