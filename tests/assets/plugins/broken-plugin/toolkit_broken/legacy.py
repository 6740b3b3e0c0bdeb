"""A ticket backend in the form before issue 16: a bare TicketPlugin behind tickets.legacy."""

from toolkit.tickets.local import LocalTickets
from toolkit.tickets.plugins import BackendConfig, TicketPlugin


def _make(config: BackendConfig) -> LocalTickets:
    return LocalTickets()


plugin = TicketPlugin(
    name="legacy",
    summary="An old-form backend \x1b[31min red",
    make=_make,
    credential=None,
    needs_url=False,
)
