"""``toolkit tickets``: where session transcripts were attached."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from toolkit.cli._console import out

app = typer.Typer(
    help="List tickets and the transcripts attached to them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_tickets(as_json: JsonOption = False) -> None:
    """List tickets that have attachments in the local store."""
    from toolkit.tickets.local import LocalTickets

    tickets = LocalTickets().tickets()
    if as_json:
        rows = [{"ticket": t.id, "attachments": len(t.attachments)} for t in tickets]
        out().print(json.dumps(rows), markup=False, highlight=False)
        return
    if not tickets:
        out().print("No tickets yet.", markup=False, highlight=False)
    for t in tickets:
        last = t.attachments[-1].attached_at if t.attachments else "-"
        out().print(
            f"{t.id:<24} {len(t.attachments):>3} attachment(s)  last {last}",
            markup=False,
            highlight=False,
        )


@app.command()
def show(
    ticket: Annotated[str, typer.Argument(help="Ticket id.")], as_json: JsonOption = False
) -> None:
    """Show a ticket's attached files and their paths."""
    from dataclasses import asdict

    from toolkit.tickets.local import LocalTickets

    found = LocalTickets().ticket(ticket)
    if as_json:
        body = {"ticket": found.id, "attachments": [asdict(a) for a in found.attachments]}
        out().print(json.dumps(body), markup=False, highlight=False)
        return
    console = out()
    console.print(f"ticket {found.id}", markup=False, highlight=False)
    for a in found.attachments:
        console.print(
            f"  {a.attached_at}  {a.size:>9} bytes  {a.location}", markup=False, highlight=False
        )
        if a.comment:
            console.print(f"      {a.comment.splitlines()[0]}", markup=False, highlight=False)
