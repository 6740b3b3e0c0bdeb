"""The signed run summary: who ran which fix on which hosts, with which grants, to what end.

One JSON document per fleet run (docs/fleet.md, "Run summary"), with each host's
result, grant id, transcript and the transcript's SHA-256, so that a supervisor
holding the summary can find every transcript and check it is the one the run
sealed. It is signed like a transcript's seal: a detached SSHSIG (``FILE.sig``)
by the technician's key, namespace ``toolkit-run-summary``, so that::

    ssh-keygen -Y verify -f allowed_signers -I EMAIL -n toolkit-run-summary \\
        -s run.json.sig < run.json

checks it without this tool. :func:`verify` does the same here.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import paths
from toolkit.errors import SignatureError, UsageError
from toolkit.fleet.results import FleetResult
from toolkit.identity import sshsig
from toolkit.identity.keys import fingerprint
from toolkit.identity.store import Identity
from toolkit.inputs import read_regular
from toolkit.text import printable

NAMESPACE = "toolkit-run-summary"
FORMAT = "toolkit-run-summary v1"
MAX_SUMMARY = 64 << 20


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_run_id(now: datetime) -> str:
    return f"run-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


@dataclass(frozen=True)
class Written:
    """The summary on disk, and its detached signature."""

    path: Path
    signature: Path
    sha256: str
    tickets: tuple[str, ...]


def build(
    fleet: FleetResult,
    *,
    run_id: str,
    identity: Identity,
    fix: str,
    declaration_sha256: str | None,
    check_only: bool,
    inventory: Path,
    limit: str | None,
    tickets: dict[str, str],
    started: datetime,
    ended: datetime,
) -> dict[str, Any]:
    """The summary document; ``tickets`` maps each host to its ticket."""
    return {
        "format": FORMAT,
        "run": run_id,
        "technician": {
            "name": identity.name,
            "email": identity.email,
            "key": fingerprint(identity.public_blob),
        },
        "started": _time(started),
        "ended": _time(ended),
        "fix": fix,
        # The technician's declaration of it (the agents' own may differ: see each host).
        "declaration_sha256": declaration_sha256,
        "check_only": check_only,
        "inventory": str(inventory),
        "limit": limit,
        "interrupted": fleet.interrupted,
        "exit_code": int(fleet.exit_code),
        "counts": dict(fleet.counts),
        "hosts": [
            {
                "host": r.host,
                "result": r.status.value,
                "message": r.message,
                "reason": r.reason,
                "ticket": tickets.get(r.host),
                "grant": r.grant,
                "grant_use": r.grant_use,
                "session": r.session,
                "procedure_sha256": r.procedure_sha256,
                "transcript": str(r.transcript) if r.transcript is not None else None,
                "transcript_sha256": r.transcript_sha256,
                "exit_code": int(r.code),
            }
            for r in fleet.results
        ],
    }


def write(document: dict[str, Any], identity: Identity, folder: Path | None = None) -> Written:
    """Write ``<runs dir>/<run id>.json`` and its ``.sig`` (the summary first, fsynced)."""
    folder = folder or paths.data_dir() / "runs"
    paths.ensure_private_dir(folder)
    data = (json.dumps(document, indent=2, sort_keys=False) + "\n").encode("utf-8")
    path = folder / f"{paths.name_part(document['run'])}.json"
    signature = sshsig.sign(identity.signer, data, NAMESPACE).armor()
    paths.atomic_write(path, data, mode=0o600)
    sig = path.with_name(path.name + ".sig")
    paths.atomic_write(sig, signature.encode("ascii"), mode=0o600)
    tickets = tuple(sorted({h["ticket"] for h in document["hosts"] if h.get("ticket")}))
    return Written(path, sig, hashlib.sha256(data).hexdigest(), tickets)


def verify(path: Path, signature: Path | None = None) -> tuple[dict[str, Any], bytes]:
    """The summary and the key blob that signed it; SignatureError when it does not verify.

    Who may sign is the caller's to decide (an allowed_signers file), as for transcripts.
    """
    data = read_regular(path, what="the run summary", limit=MAX_SUMMARY)
    sig_path = signature or path.with_name(path.name + ".sig")
    armored = read_regular(sig_path, what="the run summary's signature", limit=1 << 16)
    signer = sshsig.verify(sshsig.SSHSig.from_bytes(sshsig.dearmor(armored)), data, NAMESPACE)
    try:
        document = json.loads(data)
    except ValueError:
        raise UsageError(f"{printable(str(path), 200)} is not JSON.") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SignatureError(f"{printable(str(path), 200)} is not a toolkit run summary.")
    return document, signer


def attach(
    written: Written, tickets: Sequence[str], *, note: Any = None, passphrase: Any = None
) -> list[str]:
    """Attach the summary and its signature to each ticket of the run; the tickets it is on.

    A ticket system that fails is told to ``note`` (the summary stays on disk: ``toolkit
    tickets`` has no outbox for summaries yet, so it is attached by hand then).
    """
    from toolkit.errors import ToolkitError
    from toolkit.tickets.attach import attach_files

    done = []
    for ticket in tickets:
        try:
            attach_files(
                ticket,
                [written.path, written.signature],
                f"toolkit run summary {written.path.stem} (SHA-256 {written.sha256})",
                passphrase=passphrase,
            )
        except ToolkitError as exc:
            if note is not None:
                note(
                    f"Could not attach the run summary to ticket {printable(ticket)}: "
                    f"{printable(exc.message.rstrip('.'))}; it stays at "
                    f"{printable(str(written.path))}."
                )
            continue
        done.append(ticket)
    return done


__all__ = ["FORMAT", "NAMESPACE", "Written", "attach", "build", "new_run_id", "verify", "write"]
