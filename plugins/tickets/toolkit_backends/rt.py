"""Request Tracker 5, through REST2 (``/REST/2.0``), with an API token.

Files go up as multipart/form-data with the comment, as
``application/octet-stream``: RT re-encodes text/* attachments to UTF-8,
which changes their bytes. REST2 sends attachments back base64 in JSON.
Make a token in RT (Logged in as, Settings, Auth Tokens) and store it with
``toolkit tickets login rt --url https://rt.example.com``. RT stores files of
any size unless $TruncateLongAttachments or $DropLongAttachments is set;
then $MaxAttachmentSize (10 MiB by default) is the limit, and the read-back
check catches a file RT cut or dropped.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from pathlib import Path

from toolkit.errors import TicketBackendError
from toolkit.plugins import BackendConfig, TicketPlugin
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.http import Http, multipart
from toolkit_backends._common import OCTET, attachment_from, latest, names, numeric_id

DEFAULT_LIMIT = 10 * 1024 * 1024
_PAGE = 100
_LENGTH = re.compile(r"^Content-Length:\s*(\d+)\s*$", re.MULTILINE | re.IGNORECASE)


class RequestTracker:
    name = "rt"

    def __init__(self, config: BackendConfig) -> None:
        token = config.need_secret("API token")
        base = config.url.rstrip("/")
        if not base.endswith("/REST/2.0"):
            base += "/REST/2.0"
        self.http = Http(self.name, base, auth_headers={"Authorization": f"token {token}"})
        self.web = config.url.rstrip("/")
        self.queue = config.option("queue", "General")
        self.max_attachment_bytes = config.limit(DEFAULT_LIMIT)

    def whoami(self) -> str:
        """``GET /REST/2.0/rt`` (read-only; like every REST2 call it needs the token)."""
        found = self.http.json("GET", "rt", what="checking the API token")
        return f"RT {found['Version']} answered"

    def ticket(self, ticket: str) -> Ticket:
        number = numeric_id(self.name, ticket)
        found = self.http.json("GET", f"ticket/{number}", what=f"reading ticket {number}")
        attachments: list[Attachment] = []
        page = 1
        while True:
            listing = self.http.json(
                "GET",
                f"ticket/{number}/attachments",
                params={
                    "fields": "Filename,ContentType,Created,Headers",
                    "per_page": str(_PAGE),
                    "page": str(page),
                },
                what=f"listing ticket {number}'s attachments",
            )
            for item in listing.get("items", []):
                if not item.get("Filename"):
                    continue  # a message body, not a file
                length = _LENGTH.search(str(item.get("Headers", "")))
                attachments.append(
                    attachment_from(
                        item["Filename"],
                        length.group(1) if length else -1,
                        item.get("Created"),
                        f"attachment/{item.get('id')}",
                        item.get("id"),
                    )
                )
            if page >= int(listing.get("pages") or 1):
                break
            page += 1
        url = f"{self.web}/Ticket/Display.html?id={number}"
        return Ticket(number, tuple(attachments), str(found.get("Subject", "")), url)

    def create(self, subject: str, description: str) -> str:
        body = {
            "Queue": self.queue,
            "Subject": subject,
            "Content": description,
            "ContentType": "text/plain",
        }
        made = self.http.json("POST", "ticket", json_body=body, what="opening a ticket")
        return str(made["id"])

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        number = numeric_id(self.name, ticket)
        message = {
            "Subject": "toolkit session transcript",
            "Content": comment,
            "ContentType": "text/plain",
        }
        body, ctype = multipart(
            [("JSON", "application/json", json.dumps(message))],
            [("Attachments", p.name, OCTET, p.read_bytes()) for p in files],
        )
        self.http.request(
            "POST",
            f"ticket/{number}/comment",
            data=body,
            content_type=ctype,
            what=f"commenting on ticket {number}",
        )
        return latest(self.ticket(number).attachments, names(files))

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        found = self.http.json("GET", attachment.location, what=f"downloading {attachment.name}")
        try:
            # MIME base64: lines of 76 characters.
            data = base64.b64decode("".join(str(found.get("Content", "")).split()), validate=True)
        except (binascii.Error, ValueError):
            raise TicketBackendError(
                f"rt sent {attachment.name} back in a form that is not base64."
            ) from None
        dest.write_bytes(data)


plugin = TicketPlugin(
    name="rt",
    summary="Request Tracker 5 tickets (REST2; needs an API token)",
    make=RequestTracker,
    credential="API token",
    options={
        "queue": "the queue new tickets go to [default: General]",
        "max_attachment_bytes": f"the largest file to send in one piece [default: {DEFAULT_LIMIT}]",
    },
)
