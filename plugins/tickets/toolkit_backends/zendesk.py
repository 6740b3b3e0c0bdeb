"""Zendesk Support, through API v2: upload each file, then one comment with the upload tokens.

Authentication is an agent's email with an API token (basic auth as
``EMAIL/token:TOKEN``). A file may be up to 50 MB. Comments are private
(internal notes) so the customer is not mailed a transcript link.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import UsageError
from toolkit.plugins import BackendConfig, TicketPlugin
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.http import BackendRefused, Http, basic_auth
from toolkit_backends._common import OCTET, attachment_from, latest, names, numeric_id

DEFAULT_LIMIT = 50 * 1000 * 1000


class Zendesk:
    name = "zendesk"

    def __init__(self, config: BackendConfig) -> None:
        token = config.need_secret("API token")
        if not config.user:
            raise UsageError(
                "Zendesk needs the agent's email with the API token.",
                hint=f"Run `toolkit tickets login zendesk --url {config.url} --user EMAIL`.",
            )
        auth = basic_auth(f"{config.user}/token", token)
        self.http = Http(self.name, config.url, auth_headers=auth)
        self.max_attachment_bytes = config.limit(DEFAULT_LIMIT)

    def whoami(self) -> str:
        """The token's agent: ``GET /api/v2/users/me.json`` (read-only)."""
        me = self.http.json("GET", "api/v2/users/me.json", what="checking the API token")["user"]
        if me.get("id") is None:  # Zendesk answers an unauthenticated caller as "anonymous"
            raise BackendRefused("zendesk did not take the API token.", status=401)
        return f"agent {me.get('email') or me['name']}"

    def ticket(self, ticket: str) -> Ticket:
        number = numeric_id(self.name, ticket)
        found = self.http.json(
            "GET", f"api/v2/tickets/{number}.json", what=f"reading ticket {number}"
        )["ticket"]
        attachments: list[Attachment] = []
        page: str | None = f"api/v2/tickets/{number}/comments.json"
        while page:
            listing = self.http.json("GET", page, what=f"reading ticket {number}'s comments")
            for c in listing.get("comments", []):
                for a in c.get("attachments") or []:
                    attachments.append(
                        attachment_from(
                            a.get("file_name"),
                            a.get("size"),
                            c.get("created_at"),
                            str(a.get("content_url", "")),
                            a.get("id"),
                        )
                    )
            page = listing.get("next_page") or None
        url = self.http.url(f"agent/tickets/{number}")
        return Ticket(number, tuple(attachments), str(found.get("subject", "")), url)

    def create(self, subject: str, description: str) -> str:
        body = {"ticket": {"subject": subject, "comment": {"body": description}}}
        made = self.http.json(
            "POST", "api/v2/tickets.json", json_body=body, what="opening a ticket"
        )
        return str(made["ticket"]["id"])

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        number = numeric_id(self.name, ticket)
        tokens: list[str] = []
        for path in files:
            params = {"filename": path.name}
            if tokens:
                params["token"] = tokens[0]  # one upload batch for the one comment
            made = self.http.json(
                "POST",
                "api/v2/uploads.json",
                params=params,
                data=path.read_bytes(),
                content_type=OCTET,
                what=f"uploading {path.name}",
            )
            token = str(made["upload"]["token"])
            if not tokens:
                tokens.append(token)
        body = {"ticket": {"comment": {"body": comment, "uploads": tokens, "public": False}}}
        self.http.request(
            "PUT", f"api/v2/tickets/{number}.json", json_body=body, what=f"commenting on {number}"
        )
        return latest(self.ticket(number).attachments, names(files))

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        self.http.download(attachment.location, dest, what=f"downloading {attachment.name}")


plugin = TicketPlugin(
    name="zendesk",
    summary="Zendesk Support tickets (API v2; an agent email and API token)",
    make=Zendesk,
    credential="API token",
    user_label="email",
    options={"max_attachment_bytes": f"the largest file [default: {DEFAULT_LIMIT}]"},
)
