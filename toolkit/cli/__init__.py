"""The ``toolkit`` command line: a thin typer layer over the library.

Nothing outside this package imports typer or rich. Every command goes through
:func:`run`, the one place that turns errors into messages and exit codes.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Callable, Sequence

from toolkit.errors import ExitCode, ToolkitError

# The variable that switches typer into shell-completion mode for `toolkit`.
_COMPLETE_VAR = "_TOOLKIT_COMPLETE"


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


#: The root's own flag, taken wherever it stands before ``--`` (``toolkit connect -v ...``).
_VERBOSE = frozenset({"-v", "--verbose"})


def _take_verbose(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``-v``/``--verbose`` was given anywhere, and the line without it.

    The flag belongs to the root command, but people type it after the
    subcommand too, as with ssh and gh; no subcommand has a ``-v`` of its own.
    After ``--`` every word is an argument, and stays.
    """
    out: list[str] = []
    found = False
    for i, arg in enumerate(argv):
        if arg == "--":
            out.extend(argv[i:])
            break
        if arg in _VERBOSE:
            found = True
        else:
            out.append(arg)
    return found, out


def _plain_verify(args: list[str]) -> tuple[list[str], str | None, bool] | None:
    """``verify FILE... [--allowed-signers F] [--json]`` as (files, F, json), else None.

    None unless typer would accept the line without a word and call
    verify_command with these values: any other option, ``--help``, ``--``,
    a repeated option, a path typer refuses (a directory for
    ``--allowed-signers``, an unreadable file) or completion mode is left
    to typer.
    """
    if not args or args[0] != "verify" or os.environ.get(_COMPLETE_VAR):
        return None
    files: list[str] = []
    signers: str | None = None
    as_json = False
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--json" and not as_json:
            as_json = True
        elif arg.partition("=")[0] == "--allowed-signers" and signers is None:
            value = arg.partition("=")[2] if "=" in arg else next(rest, "")
            if not value or value.startswith("-") or not _plain_path(value, dir_ok=False):
                return None
            signers = value
        elif arg.startswith("-") or not _plain_path(arg, dir_ok=True):
            return None
        else:
            files.append(arg)
    return (files, signers, as_json) if files else None


def _plain_path(value: str, *, dir_ok: bool) -> bool:
    """Whether typer takes this path as it is: it refuses an existing one it cannot read."""
    try:
        value.encode()
        st = os.stat(value)
    except OSError:
        return True  # typer does not require the path to exist
    except ValueError:  # a NUL byte or a lone surrogate: typer's affair
        return False
    return os.access(value, os.R_OK) and (dir_ok or not stat.S_ISDIR(st.st_mode))


def _verify(files: list[str], signers: str | None, as_json: bool, verbose: bool = False) -> int:
    """``toolkit verify`` without typer's start-up: exit codes and output as typer's.

    The command itself is :func:`toolkit.cli.verify.verify_files`.
    """
    from pathlib import Path

    from toolkit.cli.verify import verify_files

    paths = [Path(f) for f in files]
    trust = Path(signers) if signers else None
    return _standalone(lambda: int(verify_files(paths, trust, as_json)), verbose)


def _run_direct(call: Callable[[], object], verbose: bool = False) -> int:
    """A typer command function called straight (toolkit.cli._direct): its typer.Exit too."""
    import typer

    def command() -> int:
        try:
            call()
        except typer.Exit as exc:
            return int(exc.exit_code)
        return int(ExitCode.OK)

    return _standalone(command, verbose)


def _standalone(command: Callable[[], int], verbose: bool = False) -> int:
    """What typer adds around a command in standalone mode, without typer's start-up."""
    from toolkit.cli._console import set_verbose

    set_verbose(verbose)  # what the root callback does
    try:
        return command()
    except EOFError:
        print(file=sys.stderr)
        print("Aborted!", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        return 1


def run(argv: Sequence[str] | None = None) -> int:
    """Run one command line and return its exit code; never raises for user errors."""
    from toolkit.cli._console import err, verbose

    loud, args = _take_verbose(_normalise(list(sys.argv[1:] if argv is None else argv)))
    try:
        if (plain := _plain_verify(args)) is not None:
            return _verify(*plain, verbose=loud)
        from toolkit.cli._direct import plain_call

        if (call := plain_call(args, _COMPLETE_VAR)) is not None:
            return _run_direct(call, loud)
        from toolkit.cli.app import app

        if loud:
            args = ["--verbose", *args]  # the root's option, where typer reads it
        app(args=args, prog_name="toolkit", standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else ExitCode.FAILED)
    except ToolkitError as exc:
        from toolkit.text import printable, printable_lines

        # Messages quote peers, files and ticket systems: their lines, never their escapes.
        err().print(printable_lines(exc.diagnostics()), markup=False, highlight=False)
        if verbose() and exc.__cause__ is not None:
            err().print(f"cause: {printable(repr(exc.__cause__))}", markup=False, highlight=False)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        err().print()
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # a bug: say so, and how to see more
        if verbose():
            err().print_exception()
        else:
            from toolkit.text import printable

            err().print(
                f"toolkit hit an internal error ({type(exc).__name__}: {printable(exc)}). "
                "This is a bug; rerun with --verbose for the traceback and report it.",
                markup=False,
                highlight=False,
            )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def main() -> None:
    code = run()
    _exit_without_teardown(code)
    sys.exit(code)


def _exit_without_teardown(code: int) -> None:
    """Exit now, skipping the interpreter's teardown, when nothing can be lost by it.

    Tearing down the modules a session loads (asyncssh, cryptography, typer:
    some 450 modules, 45,000 objects) takes 20 to 100 ms after the command
    has finished, on both ends of a session. The exit handlers run and the
    standard streams are flushed as at a normal exit; the teardown itself is
    skipped only with no other thread running and no other file open for
    writing (whose buffer only the teardown would flush), and never in
    Python's development mode. Otherwise this returns, for a normal exit.
    """
    import atexit
    import threading

    if sys.flags.dev_mode or threading.active_count() > 1 or _files_open_for_writing():
        return
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        return  # the normal exit says so, as it would have
    os._exit(code)


def _files_open_for_writing() -> bool:
    """Whether a buffered or text file other than stdout and stderr is open for writing.

    (``_io``'s base classes: every buffered and text stream, those written in
    Python such as gzip's too, and a plain isinstance check on each object.)
    """
    import _io
    import gc
    import io

    kinds = (_io._BufferedIOBase, _io._TextIOBase)
    in_memory = (io.BytesIO, io.StringIO)
    streams = {id(s) for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)}
    streams |= {id(getattr(s, "buffer", None)) for s in (sys.__stdout__, sys.__stderr__)}
    for obj in gc.get_objects():
        if isinstance(obj, kinds) and not isinstance(obj, in_memory) and id(obj) not in streams:
            try:
                if not obj.closed and obj.writable():
                    return True
            except ValueError:  # detached: nothing left to flush
                continue
    return False


__all__ = ["main", "run"]
