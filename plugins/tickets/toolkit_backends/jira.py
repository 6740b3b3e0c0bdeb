"""Jira Cloud, through REST API v3, with an account's email and API token (basic auth).

Files go to ``POST /rest/api/3/issue/{key}/attachments`` as multipart/form-data,
every file a part named ``file``, in one request with the
``X-Atlassian-Token: no-check`` header Jira requires; the comment follows as
an Atlassian Document Format code block. A site administrator sets the
largest attachment; toolkit assumes 10 MiB unless ``max_attachment_bytes``
says otherwise.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from toolkit.errors import UsageError
from toolkit.plugins import BackendConfig, TicketPlugin
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.http import Http, basic_auth, multipart
from toolkit_backends._common import OCTET, attachment_from, latest, names

DEFAULT_LIMIT = 10 * 1024 * 1024
API = "rest/api/3"
_KEY = re.compile(r"^([A-Z][A-Z0-9_]{0,30}-[1-9][0-9]{0,12}|[1-9][0-9]{0,17})$")


def _key(ticket: str) -> str:
    if not _KEY.match(ticket):
        raise UsageError(f"{ticket!r} is not a Jira issue key (like SUP-42).")
    return ticket


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format code block."""
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "codeBlock", "content": [{"type": "text", "text": text}]}],
    }


class Jira:
    name = "jira"

    def __init__(self, config: BackendConfig) -> None:
        token = config.need_secret("API token")
        if not config.user:
            raise UsageError(
                "Jira needs the account's email with the API token.",
                hint=f"Run `toolkit tickets login jira --url {config.url} --user EMAIL`.",
            )
        self.http = Http(self.name, config.url, auth_headers=basic_auth(config.user, token))
        self.project = config.option("project", "")
        self.issue_type = config.option("issue_type", "Task")
        self.max_attachment_bytes = config.limit(DEFAULT_LIMIT)

    def whoami(self) -> str:
        """The token's account: ``GET /rest/api/3/myself`` (read-only)."""
        me = self.http.json("GET", f"{API}/myself", what="checking the API token")
        return f"account {me.get('emailAddress') or me['displayName']}"

    def ticket(self, ticket: str) -> Ticket:
        key = _key(ticket)
        issue = self.http.json(
            "GET",
            f"{API}/issue/{key}",
            params={"fields": "attachment,summary"},
            what=f"reading issue {key}",
        )
        fields = issue.get("fields") or {}
        found = tuple(
            attachment_from(
                a.get("filename"),
                a.get("size"),
                a.get("created"),
                f"{API}/attachment/content/{a.get('id')}",
                a.get("id"),
            )
            for a in fields.get("attachment") or []
        )
        return Ticket(key, found, str(fields.get("summary", "")), self.http.url(f"browse/{key}"))

    def create(self, subject: str, description: str) -> str:
        if not self.project:
            raise UsageError(
                "Jira needs a project to open an issue in.",
                hint='Add project = "KEY" to [jira] in tickets.toml.',
            )
        body = {
            "fields": {
                "project": {"key": self.project},
                "summary": subject,
                "issuetype": {"name": self.issue_type},
                "description": adf(description),
            }
        }
        made = self.http.json("POST", f"{API}/issue", json_body=body, what="opening an issue")
        return str(made["key"])

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        key = _key(ticket)
        body, ctype = multipart([], [("file", p.name, OCTET, p.read_bytes()) for p in files])
        self.http.request(
            "POST",
            f"{API}/issue/{key}/attachments",
            data=body,
            content_type=ctype,
            headers={"X-Atlassian-Token": "no-check"},
            what=f"attaching to {key}",
        )
        self.http.request(
            "POST",
            f"{API}/issue/{key}/comment",
            json_body={"body": adf(comment)},
            what=f"commenting on {key}",
        )
        return latest(self.ticket(key).attachments, names(files))

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        self.http.download(attachment.location, dest, what=f"downloading {attachment.name}")


plugin = TicketPlugin(
    name="jira",
    summary="Jira Cloud issues (REST API v3; an account email and API token)",
    make=Jira,
    credential="API token",
    user_label="email",
    options={
        "project": "the project key new issues go to",
        "issue_type": "the issue type of new issues [default: Task]",
        "max_attachment_bytes": f"the site's attachment limit [default: {DEFAULT_LIMIT}]",
    },
)
