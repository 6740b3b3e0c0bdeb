"""Jira Cloud, Zendesk and ServiceNow as their public API docs describe them, on 127.0.0.1.

Each fake enforces the documented request shapes (auth header, the
X-Atlassian-Token header, multipart field names, upload-token flows, query
parameters) and answers with the documented JSON, including the error and
size-limit answers. Attachment downloads redirect to another origin
(``localhost`` instead of ``127.0.0.1``), as Jira's media API and Zendesk's
CDN do, and refuse a request that still carries the account's credentials.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import http.server
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

USER, SECRET = "agent@example.com", "s3cret-token-for-tests"


@dataclass
class Record:
    id: str
    subject: str
    files: list[dict[str, Any]] = field(default_factory=list)  # id, name, data, comment
    comments: list[Any] = field(default_factory=list)


class Fake:
    def __init__(self, system: str, limit: int = 10 * 1024 * 1024) -> None:
        self.system = system
        self.limit = limit
        self.records: dict[str, Record] = {}
        self.uploads: dict[str, list[dict[str, Any]]] = {}
        self.ids = itertools.count(10001)
        self.refusals: list[str] = []  # what the fake refused, for tests to read
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    status, payload, headers = fake.route(self, body)
                except Refuse as exc:
                    fake.refusals.append(exc.message)
                    status, payload, headers = exc.status, {"errorMessages": [exc.message]}, {}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    # -- helpers ------------------------------------------------------------------

    def expected_auth(self) -> str:
        user = f"{USER}/token" if self.system == "zendesk" else USER
        return "Basic " + base64.b64encode(f"{user}:{SECRET}".encode()).decode()

    def new_record(self, subject: str) -> Record:
        n = next(self.ids)
        rid = {"jira": f"SUP-{n}", "servicenow": f"INC00{n}"}.get(self.system, str(n))
        self.records[rid] = Record(rid, subject)
        return self.records[rid]

    def find(self, rid: str) -> Record:
        if rid not in self.records:
            raise Refuse(404, f"no record {rid}")
        return self.records[rid]

    def by_sys_id(self, sys_id: str) -> Record:
        for r in self.records.values():
            if sys_id == f"sys{r.id}":
                return r
        raise Refuse(404, "no such sys_id")

    def media(self, file_id: str) -> str:
        return f"http://localhost:{self.port}/media/{file_id}"

    def store(self, record: Record, name: str, data: bytes) -> dict[str, Any]:
        if len(data) > self.limit:
            raise Refuse(413, f"the file exceeds the maximum size of {self.limit} bytes")
        item = {"id": str(next(self.ids)), "name": name, "data": data}
        record.files.append(item)
        return item

    # -- routing -----------------------------------------------------------------

    def route(
        self, req: http.server.BaseHTTPRequestHandler, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        url = urllib.parse.urlsplit(req.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        path = url.path
        if path.startswith("/media/"):
            if "Authorization" in req.headers:
                raise Refuse(400, "credentials sent to the media host")
            for r in self.records.values():
                for f in r.files:
                    if f["id"] == path.rsplit("/", 1)[1]:
                        return 200, f["data"], {"Content-Type": "application/octet-stream"}
            raise Refuse(404, "no such file")
        if req.headers.get("Authorization") != self.expected_auth():
            raise Refuse(401, "authentication failed")
        if req.command in ("POST", "PUT", "PATCH") and not req.headers.get("Content-Type"):
            raise Refuse(415, "a Content-Type header is required")
        handler = getattr(self, self.system)
        result: tuple[int, Any, dict[str, str]] = handler(req.command, path, query, req, body)
        return result

    def jira(
        self, method: str, path: str, query: dict[str, str], req: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/rest/api/3/issue":
            fields = json.loads(body)["fields"]
            if not {"project", "summary", "issuetype"} <= set(fields):
                raise Refuse(400, "project, summary and issuetype are required")
            r = self.new_record(fields["summary"])
            return 201, {"id": "1", "key": r.id, "self": f"{self.url}/rest/api/3/issue/1"}, {}
        m = re.fullmatch(r"/rest/api/3/issue/([A-Z]+-\d+)(/attachments|/comment)?", path)
        if m and method == "GET" and not m.group(2):
            r = self.find(m.group(1))
            files = [
                {"id": f["id"], "filename": f["name"], "size": len(f["data"]),
                 "created": "2026-01-01T00:00:00.000+0000",
                 "content": f"{self.url}/rest/api/3/attachment/content/{f['id']}"}
                for f in r.files
            ]  # fmt: skip
            return 200, {"key": r.id, "fields": {"summary": r.subject, "attachment": files}}, {}
        if m and method == "POST" and m.group(2) == "/attachments":
            r = self.find(m.group(1))
            if req.headers.get("X-Atlassian-Token") != "no-check":
                raise Refuse(403, "XSRF check failed")
            parts = multipart_parts(req.headers.get("Content-Type", ""), body)
            if not parts or any(name != "file" or not fn for name, fn, _ in parts):
                raise Refuse(400, "the multipart parameter must be named file")
            made = [self.store(r, fn, data) for _, fn, data in parts]
            return 200, [{"id": f["id"], "filename": f["name"]} for f in made], {}
        if m and method == "POST" and m.group(2) == "/comment":
            doc = json.loads(body).get("body", {})
            if doc.get("type") != "doc" or doc.get("version") != 1:
                raise Refuse(400, "comment body must be an ADF document")
            self.find(m.group(1)).comments.append(doc)
            return 201, {"id": "1"}, {}
        if method == "GET" and path == "/rest/api/3/myself":  # who the credentials are
            return 200, {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": USER}, {}
        m = re.fullmatch(r"/rest/api/3/attachment/content/(\d+)", path)
        if m and method == "GET":
            return 303, b"", {"Location": self.media(m.group(1))}
        raise Refuse(404, f"no route {method} {path}")

    def zendesk(
        self, method: str, path: str, query: dict[str, str], req: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/api/v2/tickets.json":
            t = json.loads(body)["ticket"]
            r = self.new_record(t["subject"])
            r.comments.append({"body": t["comment"]["body"], "uploads": []})
            return 201, {"ticket": {"id": int(r.id), "subject": r.subject}}, {}
        if method == "POST" and path == "/api/v2/uploads.json":
            if "filename" not in query or not body:
                raise Refuse(400, "filename and a body are required")
            if len(body) > self.limit:
                raise Refuse(413, "the file exceeds the 50 MB limit")
            token = query.get("token") or f"tok{next(self.ids)}"
            if "token" in query and token not in self.uploads:
                raise Refuse(422, "unknown upload token")
            file_id = str(next(self.ids))
            item = {"id": file_id, "name": query["filename"], "data": body}
            self.uploads.setdefault(token, []).append(item)
            att = {"id": int(file_id), "file_name": query["filename"], "size": len(body)}
            return 201, {"upload": {"token": token, "attachment": att}}, {}
        if method == "GET" and path == "/api/v2/users/me.json":  # who the credentials are
            return 200, {"user": {"id": 361, "name": "Agent", "email": USER}}, {}
        m = re.fullmatch(r"/api/v2/tickets/(\d+)(/comments)?\.json", path)
        if m and method == "GET" and not m.group(2):
            r = self.find(m.group(1))
            return 200, {"ticket": {"id": int(r.id), "subject": r.subject}}, {}
        if m and method == "PUT" and not m.group(2):
            r = self.find(m.group(1))
            comment = json.loads(body)["ticket"]["comment"]
            files = []
            for token in comment.get("uploads", []):
                if token not in self.uploads:
                    raise Refuse(422, "unknown upload token")
                files += self.uploads.pop(token)
            r.files += files
            r.comments.append({"body": comment["body"], "files": files})
            return 200, {"ticket": {"id": int(r.id)}}, {}
        if m and method == "GET" and m.group(2):
            r = self.find(m.group(1))
            page = int(query.get("page", "1"))
            comments = r.comments[page - 1 : page]  # one a page: the client must follow next_page
            out = [
                {"created_at": "2026-01-01T00:00:00Z", "attachments": [
                    {"id": int(f["id"]), "file_name": f["name"], "size": len(f["data"]),
                     "content_url": self.media(f["id"])}
                    for f in c.get("files", [])]}
                for c in comments
            ]  # fmt: skip
            more = page < len(r.comments)
            nxt = f"{self.url}{path}?page={page + 1}" if more else None
            return 200, {"comments": out, "next_page": nxt}, {}
        raise Refuse(404, f"no route {method} {path}")

    def servicenow(
        self, method: str, path: str, query: dict[str, str], req: Any, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if path == "/api/now/table/incident" and method == "GET":
            number = query.get("sysparm_query", "").removeprefix("number=")
            r = self.records.get(number)
            if r is None:
                return 200, {"result": []}, {}
            rows = [{"sys_id": f"sys{r.id}", "number": r.id, "short_description": r.subject}]
            return 200, {"result": rows}, {}
        if path == "/api/now/table/incident" and method == "POST":
            r = self.new_record(json.loads(body)["short_description"])
            return 201, {"result": {"number": r.id, "sys_id": f"sys{r.id}"}}, {}
        m = re.fullmatch(r"/api/now/table/incident/(sys[A-Z0-9]+)", path)
        if m and method == "PATCH":
            self.by_sys_id(m.group(1)).comments.append(json.loads(body)["work_notes"])
            return 200, {"result": {}}, {}
        if path == "/api/now/attachment/file" and method == "POST":
            if not {"table_name", "table_sys_id", "file_name"} <= set(query):
                raise Refuse(400, "table_name, table_sys_id and file_name are required")
            if len(body) > self.limit:
                raise Refuse(400, "Attachment size exceeds the maximum allowed (max_size)")
            f = self.store(self.by_sys_id(query["table_sys_id"]), query["file_name"], body)
            return 201, {"result": {"sys_id": f["id"], "file_name": f["name"]}}, {}
        if path == "/api/now/attachment" and method == "GET":
            q = dict(p.split("=", 1) for p in query.get("sysparm_query", "").split("^"))
            r = self.by_sys_id(q["table_sys_id"])
            rows = [
                {"sys_id": f["id"], "file_name": f["name"], "size_bytes": str(len(f["data"])),
                 "sys_created_on": "2026-01-01 00:00:00"}
                for f in r.files
            ]  # fmt: skip
            return 200, {"result": rows}, {}
        m = re.fullmatch(r"/api/now/attachment/(\d+)/file", path)
        if m and method == "GET":
            for r in self.records.values():
                for f in r.files:
                    if f["id"] == m.group(1):
                        return 200, f["data"], {"Content-Type": "application/octet-stream"}
        raise Refuse(404, f"no route {method} {path}")


class Refuse(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def multipart_parts(ctype: str, body: bytes) -> list[tuple[str, str, bytes]]:
    if not ctype.startswith("multipart/form-data; boundary="):
        raise Refuse(415, "multipart/form-data is required")
    msg = email.parser.BytesParser().parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    found: list[tuple[str, str, bytes]] = []
    for part in msg.get_payload():
        assert isinstance(part, email.message.Message)
        name = part.get_param("name", header="content-disposition") or ""
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        found.append((str(name), part.get_filename() or "", data))
    return found


@contextmanager
def serving(system: str, limit: int = 10 * 1024 * 1024) -> Iterator[Fake]:
    fake = Fake(system, limit)
    thread = threading.Thread(target=fake.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
