"""Options and prompts shared by every command that signs."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from toolkit.errors import IdentityError, ToolkitError, UsageError
from toolkit.identity import PASSPHRASE_ENV

if TYPE_CHECKING:
    from toolkit.identity.store import Identity

#: How often a prompt asks before it gives up.
_TRIES = 3

KeyOption = Annotated[
    Path | None,
    typer.Option(
        "--key",
        metavar="FILE",
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


def passphrase_source(
    *,
    confirm: bool = False,
    min_length: int = 0,
    label: str = "Key passphrase",
    needed_by: str = "The key",
) -> str:
    """The key passphrase: TOOLKIT_KEY_PASSPHRASE, else a hidden prompt on a terminal.

    On a terminal, a new passphrase (``confirm``) is checked for ``min_length``
    before it is asked for again, and a short or mistyped one is asked for
    anew, as ssh-keygen does; the environment's value is returned as it is.
    """
    value = os.environ.get(PASSPHRASE_ENV)
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise IdentityError(
            f"{needed_by} needs a passphrase and there is no terminal to ask for it.",
            hint=f"Set {PASSPHRASE_ENV}, or run the command in a terminal.",
        )
    from rich.prompt import Prompt

    from toolkit.cli._console import err, say

    for _ in range(_TRIES):
        first = Prompt.ask(label, password=True, console=err())
        if len(first) < min_length:
            say(f"The passphrase must have at least {min_length} characters; try again.")
            continue
        if not confirm:
            return first
        if Prompt.ask("Same passphrase again", password=True, console=err()) == first:
            return first
        say("The two passphrases differ; try again.")
    raise IdentityError(f"No passphrase after {_TRIES} tries; nothing was saved.")


def ask_text(question: str, check: Callable[[str], str]) -> str:
    """An answer typed on the terminal, asked again (up to 3 times) until ``check`` takes it.

    ``check`` returns the value to use or raises ToolkitError with what is wrong.
    """
    from rich.prompt import Prompt

    from toolkit.cli._console import err, say
    from toolkit.text import printable

    for _ in range(_TRIES):
        answer = Prompt.ask(question, console=err())
        try:
            return check(answer)
        except ToolkitError as exc:
            say(printable(f"{exc.message} Try again."))  # it may quote what was typed
    raise UsageError(f"No usable answer after {_TRIES} tries; nothing was saved.")


def load_identity(key: Path | None, agent: str | None) -> Identity:
    from toolkit.identity.store import resolve

    return resolve(passphrase_source, key=key, agent=agent)
