"""``toolkit keys``: the technician's identity."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from toolkit.cli._console import err, out
from toolkit.cli._identity import AgentOption, KeyOption, load_identity, passphrase_source
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


@app.command()
def init(
    name: Annotated[str, typer.Option("--name", help="Your name, as customers will see it.")],
    email: Annotated[
        str, typer.Option("--email", help="Your email: the principal in allowed_signers.")
    ],
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
    """Make a new Ed25519 signing key, kept in the OS keyring (or an encrypted file)."""
    from toolkit.identity import store

    profile = store.init(
        name,
        email,
        lambda: passphrase_source(confirm=True),
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
    from toolkit.tickets.package import MANIFEST_NAMESPACE
    from toolkit.transcript.models import NAMESPACES

    view = _view(key, agent)
    # The manifest's namespace too, so ssh-keygen can check what goes onto a ticket.
    namespaces = ",".join((*NAMESPACES, MANIFEST_NAMESPACE))
    line = f'{view["email"]} namespaces="{namespaces}" {view["public_key"]}'
    out().print(printable(line, None), highlight=False, markup=False)
