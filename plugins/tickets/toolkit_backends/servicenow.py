"""ServiceNow, through the Table API and the Attachment API, with a user and password.

Each file goes to ``POST /api/now/attachment/file`` (table_name,
table_sys_id, file_name in the query; the bytes as the body); the comment
follows as a work note. Tickets are named by number (INC0010001) and looked
up by it. The instance's com.glide.attachment.max_size is 1024 MB unless an
administrator lowered it.
"""

from __future__ import annotations

import re
from pathlib import Path

from toolkit.errors import TicketBackendError, UsageError
from toolkit.plugins import BackendConfig, TicketPlugin
from toolkit.tickets.base import Attachment, Ticket
from toolkit.tickets.http import Http, basic_auth
from toolkit_backends._common import OCTET, attachment_from, latest, names

DEFAULT_LIMIT = 1024 * 1024 * 1024
_NUMBER = re.compile(r"^[A-Z]{2,8}[0-9]{4,12}$")
_TABLE = re.compile(r"^[a-z][a-z0-9_]{0,79}$")


class ServiceNow:
    name = "servicenow"

    def __init__(self, config: BackendConfig) -> None:
        password = config.need_secret("password")
        if not config.user:
            raise UsageError(
                "ServiceNow needs a user name with the password.",
                hint=f"Run `toolkit tickets login servicenow --url {config.url} --user NAME`.",
            )
        self.http = Http(self.name, config.url, auth_headers=basic_auth(config.user, password))
        self.user = config.user
        self.table = config.option("table", "incident")
        if not _TABLE.match(self.table):
            raise UsageError(
                f"tickets.toml: [servicenow] table {self.table!r} is not a table name."
            )
        self.max_attachment_bytes = config.limit(DEFAULT_LIMIT)

    def whoami(self) -> str:
        """One row of the tickets table (read-only): checks the password and the table's rights."""
        found = self.http.json(
            "GET",
            f"api/now/table/{self.table}",
            params={"sysparm_limit": "1", "sysparm_fields": "sys_id"},
            what=f"reading the {self.table} table",
        )
        if not isinstance(found.get("result"), list):
            raise TypeError("not a Table API answer")
        return f"user {self.user}, who can read {self.table}"

    def _record(self, ticket: str) -> dict[str, str]:
        if not _NUMBER.match(ticket):
            raise UsageError(f"{ticket!r} is not a ServiceNow number (like INC0010001).")
        found = self.http.json(
            "GET",
            f"api/now/table/{self.table}",
            params={
                "sysparm_query": f"number={ticket}",
                "sysparm_fields": "sys_id,number,short_description",
                "sysparm_limit": "1",
            },
            what=f"looking up {ticket}",
        ).get("result", [])
        if not found:
            raise TicketBackendError(
                f"servicenow has no {self.table} record {ticket}.", hint="Check the number."
            )
        return {k: str(v) for k, v in found[0].items()}

    def ticket(self, ticket: str) -> Ticket:
        record = self._record(ticket)
        listing = self.http.json(
            "GET",
            "api/now/attachment",
            params={"sysparm_query": f"table_name={self.table}^table_sys_id={record['sys_id']}"},
            what=f"listing {ticket}'s attachments",
        ).get("result", [])
        found = tuple(
            attachment_from(
                a.get("file_name"),
                a.get("size_bytes"),
                a.get("sys_created_on"),
                f"api/now/attachment/{a.get('sys_id')}/file",
                a.get("sys_id"),
            )
            for a in listing
        )
        url = self.http.url(f"nav_to.do?uri={self.table}.do?sys_id={record['sys_id']}")
        return Ticket(ticket, found, record.get("short_description", ""), url)

    def create(self, subject: str, description: str) -> str:
        made = self.http.json(
            "POST",
            f"api/now/table/{self.table}",
            json_body={"short_description": subject, "description": description},
            what="opening a record",
        )
        return str(made["result"]["number"])

    def attach(self, ticket: str, files: list[Path], comment: str) -> list[Attachment]:
        record = self._record(ticket)
        for path in files:
            self.http.request(
                "POST",
                "api/now/attachment/file",
                params={
                    "table_name": self.table,
                    "table_sys_id": record["sys_id"],
                    "file_name": path.name,
                },
                data=path.read_bytes(),
                content_type=OCTET,
                what=f"uploading {path.name}",
            )
        self.http.request(
            "PATCH",
            f"api/now/table/{self.table}/{record['sys_id']}",
            json_body={"work_notes": comment},
            what=f"adding a work note to {ticket}",
        )
        return latest(self.ticket(ticket).attachments, names(files))

    def download(self, ticket: str, attachment: Attachment, dest: Path) -> None:
        self.http.download(attachment.location, dest, what=f"downloading {attachment.name}")


plugin = TicketPlugin(
    name="servicenow",
    summary="ServiceNow records (Table and Attachment APIs; a user and password)",
    make=ServiceNow,
    credential="password",
    user_label="user",
    options={
        "table": "the table tickets live in [default: incident]",
        "max_attachment_bytes": f"com.glide.attachment.max_size [default: {DEFAULT_LIMIT}]",
    },
)
