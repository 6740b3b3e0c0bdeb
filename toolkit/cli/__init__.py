"""The ``toolkit`` command line: a thin typer layer over the library.

Nothing outside this package imports typer or rich. Every command goes through
:func:`run`, the one place that turns errors into messages and exit codes.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from toolkit.errors import ExitCode, ToolkitError


def _normalise(argv: list[str]) -> list[str]:
    """Let ``--agent`` stand alone (the agent's only key) as well as take a value."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if arg == "--agent" and (nxt is None or nxt.startswith("-")):
            out.append("--agent=")
        else:
            out.append(arg)
    return out


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code; never raises for user errors."""
    from toolkit.cli._console import err, verbose

    args = _normalise(list(sys.argv[1:] if argv is None else argv))
    try:
        from toolkit.cli.app import app

        app(args=args, prog_name="toolkit", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else ExitCode.FAILED)
    except ToolkitError as exc:
        err().print(exc.diagnostics(), markup=False, highlight=False)
        if verbose() and exc.__cause__ is not None:
            err().print(f"cause: {exc.__cause__!r}", markup=False, highlight=False)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err().print()
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: say so, and how to see more
        if verbose():
            err().print_exception()
        else:
            err().print(
                f"toolkit hit an internal error ({type(exc).__name__}: {exc}). "
                "This is a bug; rerun with --verbose for the traceback and report it.",
                markup=False,
                highlight=False,
            )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def main() -> None:
    sys.exit(run())


__all__ = ["main", "run"]
