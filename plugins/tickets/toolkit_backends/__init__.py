"""First-party ticket backends, each a ``toolkit.plugins`` entry point like any third party's.

They use only toolkit's public plugin interface: :mod:`toolkit.tickets.base`
(the protocol and records), :mod:`toolkit.tickets.plugins` (``TicketPlugin``,
``BackendConfig``) and :mod:`toolkit.tickets.http` (the HTTP client).
"""

from toolkit_backends._common import attachment_from, parse_time

__all__ = ["attachment_from", "parse_time"]
