"""Options and prompts shared by every command that signs."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.errors import IdentityError

if TYPE_CHECKING:
    from toolkit.identity.store import Identity

PASSPHRASE_ENV = "TOOLKIT_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        help="Sign with this OpenSSH private key file instead of the stored identity.",
        dir_okay=False,
    ),
]
AgentOption = Annotated[
    str | None,
    typer.Option(
        "--agent",
        metavar="[FINGERPRINT|COMMENT]",
        help="Sign with a key held by ssh-agent; alone, the agent's only key.",
        show_default=False,
    ),
]


def passphrase_source(*, confirm: bool = False) -> str:
    """The key passphrase: TOOLKIT_KEY_PASSPHRASE, else a hidden prompt on a terminal."""
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise IdentityError(
            "The key needs a passphrase and there is no terminal to ask for it.",
            hint=f"Set {PASSPHRASE_ENV}, or run the command in a terminal.",
        )
    from rich.prompt import Prompt

    first = Prompt.ask("Key passphrase", password=True)
    if confirm and Prompt.ask("Same passphrase again", password=True) != first:
        raise IdentityError("The two passphrases differ; nothing was saved.")
    return first


def load_identity(key: Path | None, agent: str | None) -> Identity:
    from toolkit.identity.store import resolve

    return resolve(passphrase_source, key=key, agent=agent)
