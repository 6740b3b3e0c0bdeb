"""Pinned agent host keys for the CLI: the known agents file, with ssh's question on a terminal.

toolkit.transport.pins decides; this module supplies the person. For one session
(``connect --grant``, ``run --grant``): a host key never seen is shown and asked
about as ssh asks about a server's (``yes`` or the fingerprint pins it in the known
agents file); without a terminal it is refused with the line to add. A fleet run is
unattended and never asks (toolkit.cli.fleet). A changed key is refused either way.
"""

from __future__ import annotations

from toolkit.cli._console import say
from toolkit.cli._relay import _terminal, _yes
from toolkit.text import printable
from toolkit.transport.pins import KnownAgents


def known_agents(*, ask: bool = True) -> KnownAgents:
    """The known agents file; ``ask``: ask about a key never seen, when on a terminal."""
    pins: KnownAgents | None = None

    def question(label: str, fingerprint: str) -> bool:
        say(printable(f"The authenticity of the agent {label} can't be established."))
        say(printable(f"Its host key fingerprint is {fingerprint}."))
        say("Compare it with the one its owner gives (toolkit serve --show-host-key).")
        if not _yes(fingerprint):
            return False
        assert pins is not None
        say(printable(f"Pinned {label} in {pins.path}."))
        return True

    pins = KnownAgents(ask=question if ask and _terminal() else None)
    return pins


__all__ = ["known_agents"]
