"""``toolkit grant``: issue, show, revoke and list grants (docs/grants.md)."""

from __future__ import annotations

import json
import os
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from toolkit.cli._console import Lines, say
from toolkit.cli._identity import AgentOption, KeyOption, load_identity
from toolkit.errors import UsageError
from toolkit.text import printable, printable_lines

if TYPE_CHECKING:
    from toolkit.grants import Grant, GrantedProcedure
    from toolkit.grants.ledger import HistoryEntry, Ledger

app = typer.Typer(
    help="Consent given in advance: signed grants for unattended sessions.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LedgerOption = Annotated[
    Path | None,
    typer.Option(
        "--ledger",
        metavar="DIR",
        help="The agent's grant ledger [default: the data dir's grants/].",
        file_okay=False,
        show_default=False,
    ),
]

_RELATIVE = re.compile(r"\+([1-9][0-9]{0,5})([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
#: A public key file is one line; a generous cap.
_MAX_KEY_FILE = 64 * 1024


def parse_when(value: str, option: str, base: datetime, after: str = "from now") -> datetime:
    """An ISO-8601 time with a zone (``2026-12-03T18:00:00Z``) or ``+30m``/``+8h``/``+2d``
    after ``base`` (``after`` says what that is); UsageError naming ``option`` otherwise."""
    relative = _RELATIVE.fullmatch(value)
    if relative:
        return base + timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise UsageError(
            f"{option} '{printable(value, 80)}' is not a time: give an ISO-8601 time with its "
            f"zone (2026-12-03T18:00:00Z) or a time {after} (+30m, +8h, +2d)."
        )
    return moment.astimezone(UTC)


def technician_value(value: str) -> str:
    """``--technician``: a principal, a public key line, or a public key file, as the grant
    writes it (a key as ``type base64``, without its comment)."""
    from toolkit.errors import SignatureError
    from toolkit.identity.keys import blob_from_line, public_line
    from toolkit.inputs import read_text

    line = value.strip()
    path = Path(value)
    if " " not in line and ("/" in value or value.endswith(".pub") or path.is_file()):
        text = read_text(path, what="the technician's public key file", limit=_MAX_KEY_FILE)
        lines = [x for x in text.splitlines() if x.strip() and not x.startswith("#")]
        if len(lines) != 1:
            raise UsageError(
                f"{printable(value, 200)} should hold one public key line, not {len(lines)}."
            )
        line = lines[0].strip()
    if " " not in line:
        return line  # a principal: issue() checks it
    try:
        return public_line(blob_from_line(" ".join(line.split()[:2])))
    except SignatureError as exc:
        raise UsageError(
            f"--technician '{printable(value, 80)}' is neither a principal nor a public key "
            f"line ({exc.message.rstrip('.')})."
        ) from None


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def installed_procedure(kind: str, name: str) -> GrantedProcedure:
    """The declaration digest of an installed fix or diagnostic."""
    from toolkit.grants import GrantedProcedure
    from toolkit.plugins import Kind
    from toolkit.plugins.loader import installed

    found = installed().find(Kind(kind), name)
    if found is None:
        raise UsageError(
            f"No installed {kind} is named '{printable(name, 80)}'.",
            hint="`toolkit plugins list` shows what is installed; for a declaration of your "
            "own, pass --procedure-file FILE.",
        )
    procedure, _ = found
    return GrantedProcedure(kind, procedure.name, procedure.sha256)


def brought_procedure(path: Path) -> GrantedProcedure:
    """The declaration digest of a declaration JSON file (a procedure the technician brings)."""
    from toolkit.grants import GrantedProcedure
    from toolkit.inputs import read_text
    from toolkit.plugins.declaration import MAX_DECLARATION, DeclarationError, Procedure
    from toolkit.unique_json import unique_names

    what = "the procedure file"
    text = read_text(path, what=what, limit=MAX_DECLARATION * 4)
    shown = printable(str(path), 200)
    try:
        procedure = Procedure.from_dict(json.loads(text, object_pairs_hook=unique_names))
    except DeclarationError as exc:
        raise UsageError(f"{shown} is not a procedure declaration: {exc.message}") from None
    except ValueError as exc:
        raise UsageError(f"{shown} is not JSON ({printable(exc, 100)}).") from None
    except TypeError as exc:
        raise UsageError(
            f"{shown} is not a procedure declaration ({printable(exc, 100)})."
        ) from None
    return GrantedProcedure(procedure.kind.value, procedure.name, procedure.sha256)


def inventory_hosts(spec: str) -> list[str]:
    """``@inventory.toml[:PATTERN]``: each selected host's pinned key, else its name."""
    from toolkit.fleet.inventory import load, select

    path, _, pattern = spec[1:].partition(":")
    return [h.host_key or h.name for h in select(load(Path(path)), pattern or None)]


@app.command()
def issue(
    technician: Annotated[
        str,
        typer.Option(
            "--technician",
            metavar="PRINCIPAL|KEY",
            help="Who may use it: a principal (email), a public key file or a key line.",
            show_default=False,
        ),
    ],
    hosts: Annotated[
        list[str],
        typer.Option(
            "--hosts",
            metavar="HOSTS",
            help="Host key fingerprints (SHA256:...) and/or names, comma-separated; or "
            "@inventory.toml[:PATTERN].",
            show_default=False,
        ),
    ],
    ticket: Annotated[
        str,
        typer.Option(
            "--ticket", metavar="TICKET", help="The ticket it is for.", show_default=False
        ),
    ],
    not_after: Annotated[
        str,
        typer.Option(
            "--not-after",
            metavar="TIME",
            help="End of the window: ISO-8601 (2026-12-04T06:00:00Z) or +8h, +2d, +30m "
            "after --not-before.",
            show_default=False,
        ),
    ],
    fix: Annotated[
        list[str],
        typer.Option("--fix", metavar="NAME[,NAME]", help="Installed fixes it allows."),
    ] = [],  # noqa: B006 (typer reads the default; never mutated)
    diagnostic: Annotated[
        list[str],
        typer.Option(
            "--diagnostic", metavar="NAME[,NAME]", help="Installed diagnostics it allows."
        ),
    ] = [],  # noqa: B006
    procedure_file: Annotated[
        list[Path],
        typer.Option(
            "--procedure-file",
            metavar="FILE",
            help="A declaration (JSON) of a procedure the technician brings.",
            dir_okay=False,
        ),
    ] = [],  # noqa: B006
    scope: Annotated[
        list[str],
        typer.Option(
            "--scope", metavar="SCOPE", help="diagnostics or fixes: every one the agent offers."
        ),
    ] = [],  # noqa: B006
    not_before: Annotated[
        str | None,
        typer.Option(
            "--not-before",
            metavar="TIME",
            help="Start of the window: ISO-8601 or +30m, +8h, +2d from now [default: now].",
            show_default=False,
        ),
    ] = None,
    uses: Annotated[
        int, typer.Option("--uses", metavar="N", help="Uses on each host (1-100000).")
    ] = 1,
    issuer: Annotated[
        str | None,
        typer.Option(
            "--issuer",
            metavar="PRINCIPAL",
            help="Your principal in the agents' allowed_signers [default: your key's email].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the grant here (a new file) [default: standard output].",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    key: KeyOption = None,
    agent: AgentOption = None,
) -> None:
    """Write a grant, signed with your key: consent in advance for a technician, hosts,
    procedures, a ticket and a window (docs/grants.md)."""
    from toolkit.grants import issue as issue_grant
    from toolkit.identity.keys import fingerprint

    now = datetime.now(UTC).replace(microsecond=0)
    start = parse_when(not_before, "--not-before", now) if not_before else now
    end = parse_when(not_after, "--not-after", start, "after --not-before")
    procedures = [installed_procedure("fix", n) for n in _names(fix)]
    procedures += [installed_procedure("diagnostic", n) for n in _names(diagnostic)]
    procedures += [brought_procedure(p) for p in procedure_file]
    host_list: list[str] = []
    for value in hosts:
        host_list += inventory_hosts(value) if value.startswith("@") else _names([value])
    who = technician_value(technician)
    if output is not None and output.exists():
        raise UsageError(f"{printable(str(output), 200)} exists: give -o a new file name.")
    ident = load_identity(key, agent)
    principal = issuer or ident.email
    if not principal:
        raise UsageError("Your key names no email: pass --issuer PRINCIPAL.")
    grant = issue_grant(
        ident.signer,
        issuer=principal,
        technician=who,
        procedures=procedures,
        scopes=scope,
        hosts=host_list,
        ticket=ticket,
        not_before=start,
        not_after=end,
        uses=uses,
        now=now,
    )
    data = grant.to_bytes()
    if output is None:
        # The body passed the strict parser (printable lines); printable_lines() all the same.
        Lines(stderr=False).print(printable_lines(data))
    else:
        _write_new(output, data)
        Lines(stderr=False).print(printable(grant.id))
    say(
        printable(
            f"Issued {grant.id} as {principal} ({fingerprint(ident.public_blob)}): "
            f"{grant.uses} use(s) per host until {_time(grant.not_after)}."
        )
    )
    if output is not None:
        say(f"Check it with: toolkit grant show {shlex.quote(printable(str(output), None))}")


def _write_new(path: Path, data: bytes) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileExistsError:
        raise UsageError(f"{printable(str(path), 200)} exists: give -o a new file name.") from None
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        raise UsageError(f"Cannot write {printable(str(path), 200)}: {why}.") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _time(moment: datetime) -> str:
    from toolkit.grants.model import format_time

    return format_time(moment)


# -- show ---------------------------------------------------------------------------------


def examine(grant: Grant, signers: Path | None, now: datetime) -> tuple[str, str | None]:
    """The verdict on a grant's signature and issuer (and window), with the problem if any.

    TRUSTED / NOT-YET-VALID (trusted, its window to come): exit 0; EXPIRED, UNTRUSTED,
    FORGED: exit 1. Without an allowed_signers file nobody is trusted.
    """
    from toolkit.grants.check import GrantRefused, check_issuer, verify_signature
    from toolkit.identity.allowed_signers import AllowedSigners

    try:
        signer_key = verify_signature(grant)
        if signers is None:
            return "UNTRUSTED", "no allowed_signers file: the signature holds, the issuer unknown"
        check_issuer(grant, signer_key, AllowedSigners.from_file(signers), now)
    except GrantRefused as exc:
        return ("FORGED" if exc.reason == "forged" else "UNTRUSTED"), exc.message
    if now < grant.not_before:
        return "NOT-YET-VALID", None
    if now > grant.not_after:
        return "EXPIRED", f"the window ended at {_time(grant.not_after)}"
    return "TRUSTED", None


_GOOD = ("TRUSTED", "NOT-YET-VALID")


def by_hand(path: Path, grant: Grant, signers: Path | None) -> list[str]:
    """The two commands that check the grant without toolkit: split it, then ssh-keygen."""
    from toolkit.grants import NAMESPACE

    file = shlex.quote(str(path))
    allowed = shlex.quote(str(signers)) if signers else "ALLOWED_SIGNERS"
    return [
        f"csplit -s -f grant. {file} '/^-----BEGIN SSH SIGNATURE-----$/'",
        f"ssh-keygen -Y verify -f {allowed} -I {shlex.quote(grant.issuer)} -n {NAMESPACE} "
        "-s grant.01 < grant.00",
    ]


def grant_json(grant: Grant) -> dict[str, Any]:
    from toolkit.identity.keys import fingerprint

    key = grant.technician_key
    return {
        "id": grant.id,
        "issued": _time(grant.issued),
        "issuer": grant.issuer,
        "technician": grant.technician,
        "technician_fingerprint": fingerprint(key) if key else None,
        "procedures": [
            {"kind": p.kind, "name": p.name, "sha256": p.sha256} for p in grant.procedures
        ],
        "scopes": sorted(grant.scopes),
        "hosts": list(grant.hosts),
        "ticket": grant.ticket,
        "not_before": _time(grant.not_before),
        "not_after": _time(grant.not_after),
        "uses": grant.uses,
        "signer": fingerprint(grant.signer_key),
        "sha256": grant.sha256,
    }


@app.command()
def show(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A grant file.")],
    allowed_signers: Annotated[
        Path | None,
        typer.Option(
            "--allowed-signers",
            metavar="FILE",
            help='Who may issue grants (namespaces="toolkit-grant") '
            "[default: config dir's allowed_signers, else ~/.ssh/allowed_signers]",
            dir_okay=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check a grant's signature and issuer, and print what it allows: TRUSTED (exit 0),
    NOT-YET-VALID (0), EXPIRED, UNTRUSTED or FORGED (1)."""
    from toolkit.cli.verify import default_allowed_signers
    from toolkit.grants import load

    grant = load(file)
    signers = allowed_signers or default_allowed_signers()
    verdict, problem = examine(grant, signers, datetime.now(UTC))
    commands = by_hand(file, grant, signers)
    if as_json:
        view = grant_json(grant) | {
            "path": str(file),
            "verdict": verdict,
            "problem": problem,
            "allowed_signers": str(signers) if signers else None,
            "by_hand": commands,
        }
        Lines(stderr=False).print(json.dumps(view))
    else:
        _render(file, grant, verdict, problem, signers, commands)
    if verdict not in _GOOD:
        raise typer.Exit(1)


def _render(
    path: Path,
    grant: Grant,
    verdict: str,
    problem: str | None,
    signers: Path | None,
    commands: list[str],
) -> None:
    from toolkit.identity.keys import fingerprint

    console = Lines(stderr=False)
    shown_path = printable(str(path), None)
    console.print(shown_path)
    key = grant.technician_key
    technician = f"{grant.technician} ({fingerprint(key)})" if key else grant.technician
    signer = fingerprint(grant.signer_key)
    if verdict in _GOOD or verdict == "EXPIRED":
        signer += f", trusted as {grant.issuer} by {signers}"
    rows = [
        ("id", grant.id),
        ("issuer", grant.issuer),
        ("issued", _time(grant.issued)),
        ("technician", technician),
        *(("procedure", p.line()) for p in grant.procedures),
        *(("scope", s) for s in sorted(grant.scopes)),
        *(("host", h) for h in grant.hosts),
        ("ticket", grant.ticket),
        ("window", f"{_time(grant.not_before)} to {_time(grant.not_after)}"),
        ("uses", f"{grant.uses} on each host"),
        ("signer", signer),
        ("sha256", grant.sha256),
        *([("problem", problem)] if problem else []),
        ("split", commands[0]),
        ("ssh-keygen", commands[1]),
    ]
    for label, value in rows:
        # Every value is the grant's, parsed strictly; printable() all the same.
        console.print(printable(f"  {label:<12} {value}", None))
    style = "bold green" if verdict in _GOOD else "bold red"
    escaped = shown_path.replace("[", "\\[")
    console.print(f"[{style}]{verdict}[/] {escaped}", markup=True, plain=f"{verdict} {shown_path}")


# -- the agent's ledger ---------------------------------------------------------------------


def _ledger(root: Path | None) -> Ledger:
    from toolkit.grants.ledger import Ledger

    return Ledger(root) if root is not None else Ledger.default()


@app.command()
def revoke(
    grant: Annotated[
        str, typer.Argument(metavar="ID|FILE", help="The grant's id (g-...), or its file.")
    ],
    reason: Annotated[
        str | None,
        typer.Option("--reason", metavar="TEXT", help="Why, for the history.", show_default=False),
    ] = None,
    ledger: LedgerOption = None,
) -> None:
    """Revoke a grant on this host: the agent here accepts it no more (uses elsewhere count
    on their own hosts: revoke it there too)."""
    from toolkit.grants import load

    gid = grant if grant.startswith("g-") or not Path(grant).exists() else load(Path(grant)).id
    book = _ledger(ledger)
    now = datetime.now(UTC).replace(microsecond=0)
    if book.revoke(gid, reason=reason, now=now):
        say(printable(f"Revoked {gid} on this host ({book.root})."))
        if book.used(gid) == 0:
            # Revoking on the wrong machine, or in another user's data dir, is easy to
            # do and would otherwise look like success.
            say(
                printable(
                    f"note: this ledger has recorded no use of {gid}: if the agent runs as "
                    "another user (a service), revoke it in its ledger too: --ledger DIR."
                )
            )
    else:
        at = book.revoked(gid)
        say(printable(f"{gid} was already revoked here, at {_time(at or now)}."))


@app.command()
def history(
    grant: Annotated[
        str | None, typer.Argument(metavar="[ID]", help="Only this grant's uses.")
    ] = None,
    ledger: LedgerOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the uses of grants on this host (number, time, technician, ticket, session, peer,
    outcome) and the revocations."""
    from toolkit.grants.ledger import check_id

    book = _ledger(ledger)
    gid = check_id(grant) if grant is not None else None
    entries = book.history(gid)
    revocations = [r for r in book.revocations() if gid is None or r.grant_id == gid]
    out = Lines(stderr=False)
    if as_json:
        view = {
            "ledger": str(book.root),
            "uses": [e.to_json() for e in entries],
            "revoked": [
                {"grant": r.grant_id, "at": _time(r.at), "reason": r.reason, "problem": r.problem}
                for r in revocations
            ],
        }
        out.print(json.dumps(view))
        return
    if not entries and not revocations:
        say(printable(f"No grant was used or revoked here ({book.root})."))
        return
    _table(out, entries)
    for r in revocations:
        why = f": {r.reason}" if r.reason else ""
        broken = f" (problem: {r.problem})" if r.problem else ""
        out.print(printable(f"{r.grant_id} revoked at {_time(r.at)}{why}{broken}", None))


def _table(out: Lines, entries: list[HistoryEntry]) -> None:
    """The uses, in aligned columns (the last one, the outcome, as long as it is)."""
    if not entries:
        return
    header = ("GRANT", "USE", "TIME", "TECHNICIAN", "TICKET", "SESSION", "PEER", "OUTCOME")
    rows = [header]
    for e in entries:
        if e.number == 0 or e.at is None:
            rows.append((e.grant_id, str(e.number or "?"), "-", "-", "-", "-", "-",
                         f"problem: {e.problem}"))  # fmt: skip
            continue
        outcome = e.outcome or "(no end recorded)"
        if e.problem:
            outcome += f" (problem: {e.problem})"
        rows.append((e.grant_id, f"{e.number}/{e.uses}", _time(e.at), e.technician, e.ticket,
                     e.session, e.peer, outcome))  # fmt: skip
    shown = [[printable(cell, 120) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(header) - 1)]
    for row in shown:
        padded = [c.ljust(w) for c, w in zip(row, widths, strict=False)]
        out.print("  ".join([*padded, row[-1]]))


__all__ = ["app", "parse_when", "technician_value"]
