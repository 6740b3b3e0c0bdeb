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
literal (``\\x1b``, ``\\u202e``). A backslash is doubled, so that escaped text
cannot be mistaken for text that was sent already escaped.
"""

from __future__ import annotations

#: How much of one string is shown by default; the rest becomes "...".
LIMIT = 500


def _escape(c: str) -> str:
    if c == "\\":
        return "\\\\"
    if c.isprintable():
        return c
    return repr(c)[1:-1]


def printable(text: object, limit: int | None = LIMIT) -> str:
    """``text`` (any value, as ``str()`` shows it) on one line, safe for a terminal.

    Control, format and other unprintable characters are escaped (``\\x1b``),
    and the text is cut to ``limit`` characters (None: no limit).
    """
    value = text if isinstance(text, str) else str(text)
    cut = value if limit is None else value[:limit]
    # The common case without a loop in Python.
    shown = cut if cut.isprintable() and "\\" not in cut else "".join(map(_escape, cut))
    return shown + ("..." if limit is not None and len(value) > limit else "")


def printable_lines(data: bytes | str) -> str:
    """Output made safe for a terminal, keeping its lines and tabs.

    Bytes are decoded as UTF-8 (invalid bytes become U+FFFD); ``\\r\\n`` ends
    a line as ``\\n`` does; a trailing newline is dropped; any other control
    character is escaped as :func:`printable` does. Nothing is cut.
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.rstrip("\n").replace("\r\n", "\n")
    return "\n".join(
        "\t".join(printable(part, limit=None) for part in line.split("\t"))
        for line in text.split("\n")
    )


__all__ = ["LIMIT", "printable", "printable_lines"]
