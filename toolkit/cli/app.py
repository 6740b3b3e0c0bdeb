"""The root command. Each command group lives in its own module."""

from __future__ import annotations

from typing import Annotated

import typer

from toolkit import __version__
from toolkit.cli import (
    connect,
    grant,
    keys,
    plugins,
    relay,
    run_fix,
    serve,
    share,
    show,
    tickets,
    verify,
)
from toolkit.cli._console import set_verbose
from toolkit.cli._help import plain_arguments

plain_arguments()

EXIT_CODES = """\
Exit codes: 0 ok, 1 failed check, 2 usage, 3 refused by policy or consent,
4 network or relay, 5 ticket backend, 130 interrupted.
"""

app = typer.Typer(
    name="toolkit",
    help="Consent-gated, audited remote support sessions with signed transcripts.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"toolkit {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show the causes behind errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    set_verbose(verbose)


app.add_typer(keys.app, name="keys")
app.add_typer(tickets.app, name="tickets")
app.add_typer(plugins.app, name="plugins")
app.add_typer(grant.app, name="grant")
app.command(name="share", epilog=EXIT_CODES)(share.share_command)
app.command(name="connect", epilog=EXIT_CODES)(connect.connect_command)
app.command(name="run", epilog=EXIT_CODES)(run_fix.run_command)
app.command(name="verify", epilog=EXIT_CODES)(verify.verify_command)
app.command(name="show", epilog=EXIT_CODES)(show.show_command)
app.command(name="relay", epilog=EXIT_CODES)(relay.relay_command)
app.command(name="serve", epilog=EXIT_CODES)(serve.serve_command)
