"""``toolkit keys``: the technician's identity."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated

import typer

from toolkit.cli._console import err, out
from toolkit.cli._identity import (
    AgentOption,
    KeyOption,
    ask_text,
    load_identity,
    passphrase_source,
)
from toolkit.errors import UsageError
from toolkit.identity import PASSPHRASE_ENV
from toolkit.text import printable

app = typer.Typer(
    help="Create and show the technician's signing identity.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _view(key: KeyOption, agent: AgentOption) -> dict[str, str | None]:
    from toolkit.identity.keys import blob_from_line, fingerprint, public_line

    if key is None and agent is None:
        from toolkit.identity.store import read_profile

        profile = read_profile()
        blob = blob_from_line(profile.public_key)
        store = profile.store
        if profile.keyring_backend:
            store = f"{store} ({profile.keyring_backend})"
        return {
            "name": profile.name,
            "email": profile.email,
            "public_key": public_line(blob, profile.email),
            "fingerprint": fingerprint(blob),
            "store": store,
            "key_file": profile.key_file,
        }
    ident = load_identity(key, agent)
    return {
        "name": ident.name,
        "email": ident.email,
        "public_key": public_line(ident.public_blob, ident.email),
        "fingerprint": ident.fingerprint,
        "store": ident.store,
        "key_file": str(key) if key else None,
    }


def _new_passphrase() -> str:
    """The new key file's passphrase (asked only where no keyring takes the key)."""
    from toolkit.identity.store import MIN_PASSPHRASE

    if PASSPHRASE_ENV not in os.environ and sys.stdin.isatty():
        err().print(
            "No usable OS keyring here, so the key goes into a file encrypted with a "
            f"passphrase (at least {MIN_PASSPHRASE} characters).",
            highlight=False,
            markup=False,
        )
    return passphrase_source(confirm=True, min_length=MIN_PASSPHRASE)


@app.command()
def init(
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            metavar="NAME",
            help="Your name, as customers will see it [asked on a terminal].",
            show_default=False,
        ),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(
            "--email",
            metavar="EMAIL",
            help="Your email: the principal in allowed_signers [asked on a terminal].",
            show_default=False,
        ),
    ] = None,
    no_passphrase: Annotated[
        bool,
        typer.Option(
            "--no-passphrase",
            help="Where no keyring exists, store the key file unencrypted (not recommended).",
        ),
    ] = False,
    no_keyring: Annotated[
        bool, typer.Option("--no-keyring", help="Use a key file even if a keyring exists.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing identity.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Make a new Ed25519 signing key, kept in the OS keyring (or an encrypted file).

    On a terminal it asks for what the flags do not give; scripts pass --name
    and --email (and TOOLKIT_KEY_PASSPHRASE where no keyring exists).
    """
    from toolkit.identity import store

    # What the flags say is checked first, then whether a key exists: before anyone types.
    name = store.check_name(name) if name is not None else None
    email = store.check_email(email) if email is not None else None
    store.check_free(force=force)
    if name is None or email is None:
        if not sys.stdin.isatty():
            missing = " and ".join(
                f for f, v in (("--name", name), ("--email", email)) if v is None
            )
            raise UsageError(
                f"toolkit keys init needs {missing} when there is no terminal to ask.",
                hint='Run `toolkit keys init --name "Your Name" --email you@example.com`.',
            )
        err().print(
            "Your name and email go into every session: customers see them before they say yes, "
            "and supervisors check transcripts by the email.",
            highlight=False,
            markup=False,
        )
        if name is None:
            name = ask_text("Your name, as customers will see it", store.check_name)
        if email is None:
            email = ask_text("Your email", store.check_email)

    profile = store.init(
        name,
        email,
        _new_passphrase,
        no_passphrase=no_passphrase,
        use_keyring=not no_keyring,
        force=force,
    )
    view = _view(None, None)
    if as_json:
        out().print_json(json.dumps(view))
        return
    where = {
        store.STORE_KEYRING: f"in the OS keyring ({profile.keyring_backend})",
        store.STORE_ENCRYPTED: f"in {profile.key_file}, encrypted with your passphrase "
        "(no usable OS keyring was found)",
        store.STORE_PLAIN: f"in {profile.key_file}, NOT encrypted (--no-passphrase)",
    }[profile.store]
    who = printable(f"{profile.name} <{profile.email}>")
    err().print(f"Created a signing key for {who}.", highlight=False, markup=False)
    err().print(f"The private key is stored {printable(where)}.", highlight=False, markup=False)
    out().print(view["fingerprint"], highlight=False, markup=False)


@app.command()
def show(key: KeyOption = None, agent: AgentOption = None, as_json: JsonOption = False) -> None:
    """Show the public key, fingerprint, name, email and where the key is stored."""
    view = _view(key, agent)
    if as_json:
        out().print_json(json.dumps(view))
        return
    console = out()
    for label, field in [
        ("name", "name"),
        ("email", "email"),
        ("fingerprint", "fingerprint"),
        ("store", "store"),
        ("public key", "public_key"),
    ]:
        # A key file's profile or an ssh-agent key's comment may hold anything.
        shown = printable(view[field], None)
        console.print(f"{label:<12} {shown}", highlight=False, soft_wrap=True, markup=False)


@app.command("allowed-signers")
def allowed_signers(key: KeyOption = None, agent: AgentOption = None) -> None:
    """Print this identity's allowed_signers line, for toolkit verify and ssh-keygen."""
    from toolkit.fleet.summary import NAMESPACE as RUN_SUMMARY_NAMESPACE
    from toolkit.tickets.package import MANIFEST_NAMESPACE
    from toolkit.transcript.models import NAMESPACES

    view = _view(key, agent)
    # The manifest's and a fleet's run summary's namespaces too, so ssh-keygen can check
    # everything the technician signs that goes onto a ticket.
    namespaces = ",".join((*NAMESPACES, MANIFEST_NAMESPACE, RUN_SUMMARY_NAMESPACE))
    line = f'{view["email"]} namespaces="{namespaces}" {view["public_key"]}'
    out().print(printable(line, None), highlight=False, markup=False)
