"""Ticket backends: where sealed transcripts are attached."""

from toolkit.tickets.base import Attachment, Ticket, TicketBackend, check_ticket_id

__all__ = ["Attachment", "Ticket", "TicketBackend", "check_ticket_id"]
