"""Redmine, through its REST API (``/uploads.json``, then the issue update that uses the tokens).

Set-up: an administrator enables the REST API (Administration, Settings,
API); each technician stores their API key (My account, API access key) with
``toolkit tickets login redmine --url URL``. Redmine's own default limit for
one attachment is 5 MiB (Settings, Files, "Maximum attachment size"); set
``max_attachment_bytes`` in tickets.toml when yours differs.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.errors import UsageError
from toolkit.plugins import BackendConfig, TicketPlugin
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.http import Http
from toolkit_backends._common import OCTET, attachment_from, latest, names, numeric_id

DEFAULT_LIMIT = 5 * 1024 * 1024


class Redmine:
    name = "redmine"

    def __init__(self, config: BackendConfig) -> None:
        key = config.need_secret("API key")
        self.http = Http(self.name, config.url, auth_headers={"X-Redmine-API-Key": key})
        self.project = config.option("project", "")
        self.max_attachment_bytes = config.limit(DEFAULT_LIMIT)

    def whoami(self) -> str:
        """The API key's user: ``GET /users/current.json`` (read-only)."""
        user = self.http.json("GET", "users/current.json", what="checking the API key")["user"]
        return f"user {user['login']}"

    def ticket(self, ticket: str) -> Ticket:
        number = numeric_id(self.name, ticket)
        issue = self.http.json(
            "GET",
            f"issues/{number}.json",
            params={"include": "attachments"},
            what=f"reading issue #{number}",
        )["issue"]
        found = tuple(
            attachment_from(
                a.get("filename"),
                a.get("filesize"),
                a.get("created_on"),
                f"attachments/download/{a.get('id')}/{a.get('filename')}",
                a.get("id"),
                str(a.get("description") or ""),
            )
            for a in issue.get("attachments", [])
        )
        url = self.http.url(f"issues/{number}")
        return Ticket(number, found, str(issue.get("subject", "")), url)

    def create(self, subject: str, description: str) -> str:
        if not self.project:
            raise UsageError(
                "Redmine needs a project to open an issue in.",
                hint='Add project = "IDENTIFIER" to [redmine] in tickets.toml.',
            )
        body = {"issue": {"project_id": self.project, "subject": subject}}
        body["issue"]["description"] = description
        made = self.http.json("POST", "issues.json", json_body=body, what="opening an issue")
        return str(made["issue"]["id"])

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        number = numeric_id(self.name, ticket)
        uploads = []
        for path in files:
            made = self.http.json(
                "POST",
                "uploads.json",
                params={"filename": path.name},
                data=path.read_bytes(),
                content_type=OCTET,
                what=f"uploading {path.name}",
            )
            uploads.append(
                {"token": made["upload"]["token"], "filename": path.name, "content_type": OCTET}
            )
        # One journal entry: the note and every file together, or nothing.
        self.http.request(
            "PUT",
            f"issues/{number}.json",
            json_body={"issue": {"notes": f"<pre>\n{comment}</pre>", "uploads": uploads}},
            what=f"attaching to issue #{number}",
        )
        return latest(self.ticket(number).attachments, names(files))

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        self.http.download(attachment.location, dest, what=f"downloading {attachment.name}")


plugin = TicketPlugin(
    name="redmine",
    summary="Redmine issues (REST API; needs the API enabled and a user's API key)",
    make=Redmine,
    credential="API key",
    options={
        "project": "the project identifier new issues go to (toolkit tickets new)",
        "max_attachment_bytes": f"the largest file Redmine takes [default: {DEFAULT_LIMIT}]",
    },
)
