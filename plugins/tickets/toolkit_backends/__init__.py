"""First-party ticket backends: one ``toolkit.plugins`` entry point, like any third party's.

``plugin`` is the :class:`toolkit.plugins.Plugin` behind the entry point
``ticket-backends``; its ``ticket_backends`` are Redmine, Request Tracker,
Jira, Zendesk and ServiceNow. They use only toolkit's public plugin
interface: :mod:`toolkit.plugins` (``Plugin``), :mod:`toolkit.tickets.base`
(the protocol and records), :mod:`toolkit.tickets.plugins` (``TicketPlugin``,
``BackendConfig``) and :mod:`toolkit.tickets.http` (the HTTP client).
"""

from toolkit.plugins import Plugin
from toolkit_backends import jira, redmine, rt, servicenow, zendesk
from toolkit_backends._common import attachment_from, parse_time

__version__ = "0.1.0"  # as in pyproject.toml

plugin = Plugin(
    name="ticket-backends",
    version=__version__,
    summary="Ticket backends: Redmine, Request Tracker, Jira, Zendesk, ServiceNow",
    ticket_backends=(
        jira.plugin,
        redmine.plugin,
        rt.plugin,
        servicenow.plugin,
        zendesk.plugin,
    ),
)

__all__ = ["attachment_from", "parse_time", "plugin"]
