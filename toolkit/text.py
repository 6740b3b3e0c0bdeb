"""Text from elsewhere made safe to show on a terminal: the one place that does it.

A transcript, a peer (the agent, the technician, a relay's client), a ticket
system or a file name can carry escape sequences that move the cursor, erase
lines, retitle the window or switch character sets, so that a terminal shows
something other than what was printed (a TAMPERED verdict that looks SEALED).
Every such string goes through :func:`printable` before it reaches a terminal;
:func:`printable_lines` does the same for output that keeps its line breaks
and tabs (a command's stdout). A rule in ``make test`` (.semgrep.yml) looks for
printing paths that skip them.

What is escaped: every character Python does not call printable (the C0 and
C1 controls, DEL, format characters such as the bidirectional overrides and
zero-width joiners, line and paragraph separators, unassigned and private-use
code points, lone surrogates), shown as Python writes them in a string
literal (``\\x1b``, ``\\u202e``). A backslash stays as it is: source files and
Windows paths read as they are written (``--json`` output is exact, for the
rare case where a literal ``\\x1b`` must be told from an escaped one).
"""

from __future__ import annotations

import codecs

#: How much of one string is shown by default; the rest becomes "...".
LIMIT = 500


def _escape(c: str) -> str:
    return c if c.isprintable() else repr(c)[1:-1]


def printable(text: object, limit: int | None = LIMIT) -> str:
    """``text`` (any value, as ``str()`` shows it) on one line, safe for a terminal.

    Control, format and other unprintable characters are escaped (``\\x1b``),
    and the text is cut to ``limit`` characters (None: no limit).
    """
    value = text if isinstance(text, str) else str(text)
    cut = value if limit is None else value[:limit]
    # The common case without a loop in Python.
    shown = cut if cut.isprintable() else "".join(map(_escape, cut))
    return shown + ("..." if limit is not None and len(value) > limit else "")


def printable_lines(data: bytes | str) -> str:
    """Output made safe for a terminal, keeping its lines and tabs.

    Bytes are decoded as UTF-8 (invalid bytes become U+FFFD); ``\\r\\n`` ends
    a line as ``\\n`` does; a trailing newline is dropped; any other control
    character is escaped as :func:`printable` does. Nothing is cut.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    return _keep_lines(text.rstrip("\n").replace("\r\n", "\n"))


def _keep_lines(text: str) -> str:
    return "\n".join(
        "\t".join(printable(part, limit=None) for part in line.split("\t"))
        for line in text.split("\n")
    )


class PrintableStream:
    """Output that arrives in pieces, made safe for a terminal as :func:`printable_lines` does.

    A UTF-8 character or a ``\\r\\n`` split between two pieces is joined, so
    the result does not depend on where the pieces were cut; the trailing
    newline is kept.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._cr = False  # a "\\r" held back: the next piece may start with "\\n"

    def feed(self, data: bytes, *, final: bool = False) -> str:
        text = self._decoder.decode(data, final)
        if self._cr:
            text, self._cr = "\r" + text, False
        if text.endswith("\r") and not final:
            text, self._cr = text[:-1], True
        return _keep_lines(text.replace("\r\n", "\n"))


__all__ = ["LIMIT", "PrintableStream", "printable", "printable_lines"]
