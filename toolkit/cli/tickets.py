"""``toolkit tickets``: ticket backends, the transcripts attached to tickets, and the outbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._complete import complete_ticket
from toolkit.cli._console import err, say
from toolkit.errors import ExitCode, TicketBackendError, ToolkitError, UsageError
from toolkit.text import printable

if TYPE_CHECKING:
    from toolkit.tickets.base import Attachment, TicketBackend
    from toolkit.tickets.outbox import Delivered, Entry

app = typer.Typer(
    help="Ticket backends, the transcripts attached to tickets, and the outbox.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        "-b",
        metavar="BACKEND",
        help="Ticket backend [default: tickets.toml's default, else local].",
        show_default=False,
    ),
]


#: Characters of a subject shown in `toolkit tickets list`.
_SUBJECT = 48


def _print(text: str) -> None:
    say(text, stderr=False)


def _say(text: str) -> None:
    say(text)


def _json(value: object) -> None:
    _print(json.dumps(value))


def _allowed_signers() -> Path | None:
    from toolkit.cli.verify import default_allowed_signers

    return default_allowed_signers()


@app.command("list")
def list_tickets(as_json: JsonOption = False) -> None:
    """List the tickets in the local store: id, subject, attachments, last attached."""
    from toolkit.tickets.local import LocalTickets

    tickets = LocalTickets().tickets()
    if as_json:
        _json(
            [
                {
                    "ticket": t.id,
                    "subject": t.title or None,
                    "attachments": len(t.attachments),
                    "last_attached": t.attachments[-1].attached_at if t.attachments else None,
                }
                for t in tickets
            ]
        )
        return
    if not tickets:
        _print("No tickets yet.")
        return
    rows = [
        (
            printable(t.id),
            printable(t.title or "-", _SUBJECT),
            str(len(t.attachments)),
            printable(t.attachments[-1].attached_at) if t.attachments else "-",
        )
        for t in tickets
    ]
    header = ("TICKET", "SUBJECT", "FILES", "LAST ATTACHED")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    for ticket, subject, files, last in [header, *rows]:
        line = f"{ticket:<{widths[0]}}  {subject:<{widths[1]}}  {files:>{widths[2]}}  {last}"
        _print(line.rstrip())


def _batches(attachments: tuple[Attachment, ...]) -> list[list[Attachment]]:
    """Attachments in the groups they were attached in: one comment, several files."""
    groups: list[list[Attachment]] = []
    for a in attachments:
        if groups and a.comment and groups[-1][0].comment == a.comment:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups


@app.command()
def show(
    ticket: Annotated[
        str,
        typer.Argument(metavar="TICKET", help="Ticket id.", autocompletion=complete_ticket),
    ],
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a ticket's attachments, where they are, and the summary stored with them."""
    from dataclasses import asdict

    from toolkit.tickets.base import check_ticket_id

    found = _open(backend).ticket(check_ticket_id(ticket))
    if as_json:
        body: dict[str, Any] = {"ticket": found.id, "attachments": []}
        if found.title or found.url:
            body.update(title=found.title, url=found.url)
        body["attachments"] = [asdict(a) for a in found.attachments]
        _json(body)
        return
    # Every string here comes from the ticket system.
    title = f": {printable(found.title)}" if found.title else ""
    _print(f"ticket {printable(found.id)}{title}")
    if found.url:
        _print(f"  {printable(found.url)}")
    if not found.attachments:
        _print("  No attachments yet.")
    for batch in _batches(found.attachments):
        files = "1 file" if len(batch) == 1 else f"{len(batch)} files"
        _print("")
        _print(f"attached {printable(batch[0].attached_at) or '(time not given)'}, {files}:")
        names = [printable(a.name) for a in batch]
        width = max(map(len, names))
        for a, name in zip(batch, names, strict=True):
            size = printable(a.size)  # a plugin's number: any type it sent
            where = printable(a.location)
            row = f"  {name:<{width}}  {size:>10} bytes  {where}"
            _print(row)  # nosemgrep: toolkit-print-untrusted -- each part is printable() above
        if batch[0].comment:
            _print("  summary:")
            for line in batch[0].comment.splitlines():
                _print(f"    {printable(line)}".rstrip())


@app.command()
def backends(as_json: JsonOption = False) -> None:
    """List the installed ticket backends and which ones are set up."""
    from toolkit.tickets.plugins import available, default_backend, plugin, read_config

    config = read_config()
    default = default_backend()
    rows = []
    for name, where in available().items():
        try:
            summary = plugin(name).summary
        except ToolkitError as exc:
            summary = f"(broken: {exc.message})"
        table = config.get(name, {})
        url = str(table.get("url", "")) if isinstance(table, dict) else ""
        rows.append(
            {
                "name": name,
                "default": name == default,
                "url": url,
                "summary": summary,
                "from": where,
            }
        )
    if as_json:
        _json(rows)
        _plugin_notes()
        return
    for row in rows:
        mark = "*" if row["default"] else " "
        name, url, summary = (printable(row[k] or "-") for k in ("name", "url", "summary"))
        _print(f"{mark} {name:<12} {url:<36} {summary}")
    _plugin_notes()


def _plugin_notes() -> None:
    """A plugin in the old form, or one that did not load at all, on stderr: it may be a backend."""
    from toolkit.plugins.loader import installed

    found = installed()
    for loaded in found.plugins:
        if loaded.deprecated:
            _say(f"note: {printable(loaded.deprecated)}")
    for b in found.broken:
        if b.refused is None:
            _say(
                f"plugin {printable(b.name)} did not load: {printable(b.reason)} "
                "Any ticket backend it gives is missing (`toolkit plugins list`)."
            )


def ask_passphrase(*, confirm: bool = False) -> str:
    """The credentials file's passphrase: TOOLKIT_KEY_PASSPHRASE, else asked on the terminal."""
    from toolkit.cli._identity import passphrase_source
    from toolkit.errors import IdentityError
    from toolkit.identity.store import MIN_PASSPHRASE

    try:
        return passphrase_source(
            confirm=confirm,
            min_length=MIN_PASSPHRASE if confirm else 0,
            label="Passphrase of the ticket credentials file",
            needed_by="The ticket credentials file",
        )
    except IdentityError as exc:  # a ticket-system failure here, exit 5
        raise TicketBackendError(exc.message, hint=exc.hint) from None


def _open(name: str | None = None) -> TicketBackend:
    """The backend ``name`` (else the default); a prompt opens its credentials file if need be."""
    from toolkit.tickets.plugins import open_backend

    return open_backend(name, ask_passphrase)


def _read_secret(backend: str, label: str, from_stdin: bool) -> str:
    if from_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        from rich.prompt import Prompt

        value = Prompt.ask(label[:1].upper() + label[1:], password=True, console=err())
    else:
        from toolkit.tickets.credentials import token_env

        raise UsageError(
            f"No terminal to ask for the {label}.",
            hint=f"Pass --secret-stdin and pipe it in, or set {token_env(backend)} "
            "(checked, used, never stored).",
        )
    if not value:
        raise UsageError(f"The {label} is empty; nothing was stored.")
    return value


def _option_value(text: str) -> tuple[str, str | int | bool]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--option {text!r}: use KEY=VALUE.")
    if value.isdigit():
        return key, int(value)
    if value in ("true", "false"):
        return key, value == "true"
    return key, value


@app.command()
def login(
    backend: Annotated[
        str,
        typer.Argument(metavar="BACKEND", help="Backend name (`toolkit tickets backends`)."),
    ],
    url: Annotated[
        str, typer.Option("--url", metavar="URL", help="The ticket system's base URL.")
    ] = "",
    user: Annotated[
        str | None,
        typer.Option(
            "--user", metavar="USER", help="Account name or email, where the backend needs one."
        ),
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            metavar="KEY=VALUE",
            help="A backend setting for tickets.toml (project, queue, max_attachment_bytes...).",
        ),
    ] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the key or password from stdin.")
    ] = False,
    make_default: Annotated[
        bool, typer.Option("--default", help="Attach session transcripts here from now on.")
    ] = False,
) -> None:
    """Check a backend's URL and key with one read-only call, then save them.

    The URL and settings go to tickets.toml; the key or password to the OS
    keyring, or where there is none to an encrypted file. With
    TOOLKIT_TICKETS_<BACKEND>_TOKEN set, that token is checked and used, and
    never stored.
    """
    from toolkit.secrets import Secret
    from toolkit.tickets import credentials
    from toolkit.tickets.plugins import (
        check_access,
        check_name,
        config_from,
        plugin,
        read_config,
        write_config,
    )

    found = plugin(check_name(backend))
    if found.needs_url and not url.startswith(("http://", "https://")):
        raise UsageError(f"{backend} needs --url with an http:// or https:// URL.")
    if found.user_label and not user:
        raise UsageError(f"{backend} needs --user (the account's {found.user_label}).")
    config = read_config()
    table = dict(config.get(backend, {}) or {})
    if url:
        table["url"] = url.rstrip("/")
    if user:
        table["user"] = user
    for text in option or []:
        key, value = _option_value(text)
        if key not in found.options:
            valid = ", ".join(found.options) or "none"
            raise UsageError(f"{backend} has no setting {key!r}.", hint=f"Its settings: {valid}.")
        table[key] = value
    secret: Secret | None = None
    from_env = credentials.from_environment(backend) if not secret_stdin else None
    if found.credential:
        secret = from_env or Secret(_read_secret(backend, found.credential, secret_stdin))
    # One read-only call with what was just given, before anything is saved.
    given = config_from(backend, table, secret)
    where = given.url
    made = found.make(given)
    if found.credential:
        account = check_access(made, found, where)
        if account is None:
            _say(f"The {backend} plugin cannot check its {found.credential}: saved unchecked.")
        else:
            who = printable(account)
            _say(f"{backend} at {printable(where)} took the {found.credential} ({who}).")
    stored = ""
    if found.credential and secret is not None and from_env is None:
        stored = f"; its {found.credential} is " + credentials.store(
            backend, where, secret, ask_passphrase
        )
    elif found.credential:
        env = credentials.token_env(backend)
        stored = f"; its {found.credential} comes from {env} and was not stored"
    config[backend] = table
    if make_default:
        config["default"] = backend
    path = write_config(config)
    _say(printable(f"{backend} settings saved in {path}{stored}."))
    if make_default or config.get("default") == backend:
        _say(f"Session transcripts will be attached to {backend}.")
    else:
        _say(f"Use it with --backend {backend}, or make it the default with --default.")


@app.command()
def new(
    subject: Annotated[
        str, typer.Option("--subject", metavar="TEXT", help="The new ticket's subject.")
    ],
    description: Annotated[
        str, typer.Option("--description", metavar="TEXT", help="Its first text.")
    ] = "",
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a new ticket and print its id."""
    opened = _open(backend)
    ticket = opened.create(subject, description or subject)
    if as_json:
        _json({"backend": opened.name, "ticket": ticket})
    else:
        _print(printable(ticket))


def _entry_json(entry: Entry) -> dict[str, object]:
    body = entry.to_json()
    body["folder"] = str(entry.folder)
    return body


@app.command()
def outbox(as_json: JsonOption = False) -> None:
    """List the transcripts waiting to be attached, and why they wait."""
    from toolkit.tickets.outbox import Outbox

    entries = Outbox().entries()
    if as_json:
        _json([_entry_json(e) for e in entries])
        return
    if not entries:
        _print("The outbox is empty: every transcript is attached.")
    for e in entries:
        why = printable(e.last_error or "not tried yet")
        where = printable(f"{e.backend}:{e.ticket}  {e.transcript}")
        _print(f"{where}  since {printable(e.created)}, {int(e.attempts)} tries")
        _print(f"    {why}")


def report_sync(entry: Entry, delivered: Delivered | None, error: ToolkitError | None) -> None:
    """One line on stderr for one outbox entry tried (toolkit tickets sync, a session's start)."""
    where = printable(f"{entry.backend} ticket {entry.ticket}")
    transcript = printable(entry.transcript)
    if error is not None:
        _say(f"{transcript}: still waiting for {where}: {printable(error.message)}")
    elif delivered is None:
        _say(f"{transcript}: another toolkit is attaching it right now.")
    else:
        again = "" if delivered.uploaded else " (already there from an earlier try)"
        _say(
            f"{transcript}: attached to {where}{again}; read back, SHA-256 matches "
            f"(verdict before upload: {delivered.verdict})."
        )


@app.command()
def sync(as_json: JsonOption = False) -> None:
    """Attach every transcript waiting in the outbox; exit 5 if some still wait."""
    from toolkit.tickets.outbox import Outbox

    results = Outbox().sync(_open, _allowed_signers())
    if as_json:
        _json(
            [
                {
                    "id": entry.id,
                    "backend": entry.backend,
                    "ticket": entry.ticket,
                    "transcript": entry.transcript,
                    "attached": delivered is not None,
                    "uploaded": list(delivered.uploaded) if delivered else [],
                    "verdict": delivered.verdict if delivered else None,
                    "error": error.message if error else None,
                }
                for entry, delivered, error in results
            ]
        )
    else:
        if not results:
            _say("The outbox is empty: nothing to attach.")
        for result in results:
            report_sync(*result)
    if any(error is not None for _, _, error in results):
        raise typer.Exit(ExitCode.TICKET_BACKEND)


@app.command()
def download(
    ticket: Annotated[
        str,
        typer.Argument(metavar="TICKET", help="Ticket id.", autocompletion=complete_ticket),
    ],
    to: Annotated[
        Path, typer.Option("--to", metavar="DIR", help="Folder to write the attachments in.")
    ],
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a ticket's attachments and rebuild compressed or split transcripts."""
    from toolkit.tickets.base import check_ticket_id
    from toolkit.tickets.package import reassemble

    opened = _open(backend)
    found = opened.ticket(check_ticket_id(ticket))
    to.mkdir(parents=True, exist_ok=True)
    written = []
    for a in found.attachments:
        if "/" in a.name or a.name in ("", ".", ".."):
            continue
        dest = to / a.name
        opened.download(found.id, a, dest)
        written.append(dest)
    rebuilt = reassemble(to)
    if as_json:
        _json({"files": [str(p) for p in written], "transcripts": [str(p) for p in rebuilt]})
        return
    for path in written:  # names chosen by whoever attached them
        _print(printable(str(path), None))
    for path in rebuilt:
        shown = printable(str(path), None)
        _say(f"Rebuilt {shown} from its parts; check it with: toolkit verify {shown}")
