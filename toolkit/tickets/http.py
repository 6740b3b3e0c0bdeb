"""A small HTTP client for ticket backends, on the standard library's urllib.

Backends (first-party and third-party alike) use :class:`Http` so that every
one of them gets the same manners: errors are :class:`TicketBackendError`
sentences that name the system and what to do next, credentials never leave
the system's own origin (redirects to another host, such as a CDN serving an
attachment, drop them), response bodies in errors are cut short, and
downloads stream to a file.

urllib is enough here: every call is one request and one response, bodies
are at most an attachment's size, and the only encoding not built in,
multipart/form-data, is :func:`multipart` below.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from toolkit.errors import TicketBackendError

TIMEOUT = 60.0
_timeout = [TIMEOUT]  # what Http uses when not told; quick() lowers it for a while
_MAX_REDIRECTS = 5
_SHOWN = 300  # characters of a response body shown in an error
_CHUNK = 1 << 20
OUTBOX_HINT = "The transcript waits in the outbox; `toolkit tickets sync` tries again."


class BackendUnreachable(TicketBackendError):
    """The ticket system did not answer (refused connection, DNS, timeout, TLS)."""


class BackendRefused(TicketBackendError):
    """The ticket system answered with an error."""

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class AttachmentTooLarge(BackendRefused):
    """The ticket system refused a file as too large."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise TicketBackendError(
                f"The ticket system sent something that is not JSON (HTTP {self.status}): "
                f"{_shown(self.body)}"
            ) from None


def _shown(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace").strip().replace("\n", " ")
    return text[:_SHOWN] + ("..." if len(text) > _SHOWN else "")


@functools.cache
def _opener() -> Any:
    """urllib's opener that follows no redirect. Built at the first request: urllib.request
    (http.client, ssl) costs 30 ms that every toolkit start-up loading the ticket
    backends' plugin would pay for nothing."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None  # Http follows redirects itself, deciding which headers go along

    return urllib.request.build_opener(NoRedirect)


def multipart(
    fields: Sequence[tuple[str, str, str]], files: Sequence[tuple[str, str, str, bytes]]
) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type.

    ``fields`` are (name, content type, text); ``files`` are (field name,
    file name, content type, bytes).
    """
    boundary = "toolkit-" + secrets.token_hex(16)
    parts: list[bytes] = []
    for name, ctype, text in fields:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_q(name)}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n".encode()
            + text.encode()
            + b"\r\n"
        )
    for name, filename, ctype, data in files:
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_q(name)}"; '
            f'filename="{_q(filename)}"\r\nContent-Type: {ctype}\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _q(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")


class Http:
    """Requests to one ticket system at ``base_url``, with its credential headers."""

    def __init__(
        self,
        system: str,
        base_url: str,
        *,
        auth_headers: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TicketBackendError(
                f"{base_url!r} is not an http(s) URL for {system}.",
                hint=f"Run `toolkit tickets login {system} --url https://...`.",
            )
        self.system = system
        self.base_url = base_url.rstrip("/")
        self._origin = (parsed.scheme, parsed.netloc)
        self._auth = dict(auth_headers or {})
        self._headers = {"User-Agent": "toolkit", "Accept": "application/json", **(headers or {})}
        self.timeout = timeout if timeout is not None else _timeout[-1]

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        url = path if "://" in path else self.base_url + "/" + path.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _same_origin(self, url: str) -> bool:
        parsed = urllib.parse.urlsplit(url)
        return (parsed.scheme, parsed.netloc) == self._origin

    def _open(
        self,
        method: str,
        url: str,
        data: bytes | None,
        headers: Mapping[str, str],
    ) -> Any:
        import urllib.error
        import urllib.request

        for _ in range(_MAX_REDIRECTS + 1):
            sent = dict(self._headers)
            if self._same_origin(url):
                sent.update(self._auth)
            sent.update(headers)
            request = urllib.request.Request(  # noqa: S310 (Http checked the scheme)
                url, data=data, method=method, headers=sent
            )
            try:
                return _opener().open(request, timeout=self.timeout)
            except urllib.error.HTTPError as exc:
                location = exc.headers.get("Location")
                if exc.code in (301, 302, 303, 307, 308) and location:
                    exc.close()
                    url = urllib.parse.urljoin(url, location)
                    if exc.code == 303 or (exc.code in (301, 302) and method != "GET"):
                        method, data, headers = "GET", None, {}
                    continue
                raise
        raise BackendRefused(f"{self.system} redirected too often ({url}).", status=310)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        data: bytes | None = None,
        content_type: str | None = None,
        headers: Mapping[str, str] | None = None,
        what: str = "",
    ) -> Response:
        """One request; a Response for any 2xx answer, TicketBackendError otherwise.

        ``what`` says what the request was for ("attaching s.cast"), for errors.
        """
        extra = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            content_type = "application/json"
        if content_type:
            extra["Content-Type"] = content_type
        url = self.url(path, params)
        with self._errors(what or f"{method} {path}"), self._open(method, url, data, extra) as resp:
            return Response(resp.status, resp.headers, resp.read())

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def download(
        self, path: str, dest: Path, *, headers: Mapping[str, str] | None = None, what: str = ""
    ) -> None:
        """Stream a GET response body into ``dest``."""
        with (
            self._errors(what or f"downloading {path}"),
            self._open("GET", self.url(path), None, dict(headers or {})) as resp,
            dest.open("wb") as f,
        ):
            while chunk := resp.read(_CHUNK):
                f.write(chunk)

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """HTTP errors as BackendRefused, network errors as BackendUnreachable."""
        import urllib.error

        try:
            yield
        except urllib.error.HTTPError as exc:
            body = exc.read()
            exc.close()
            raise self._refused(exc.code, body, what) from None
        except (urllib.error.URLError, OSError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> BackendUnreachable:
        reason = getattr(exc, "reason", None) or exc
        # URLError wraps the OSError: "Connection refused", not "[Errno 111] Connection refused".
        reason = getattr(reason, "strerror", None) or reason
        return BackendUnreachable(
            f"{self.system} at {self.base_url} cannot be reached ({reason}).", hint=OUTBOX_HINT
        )

    def _refused(self, status: int, body: bytes, what: str) -> BackendRefused:
        detail = _shown(body)
        message = f"{self.system} refused {what} (HTTP {status})" + (
            f": {detail}" if detail else "."
        )
        if status in (401, 403):
            return BackendRefused(
                message,
                status=status,
                hint=f"Check the account's rights, or store a new key with "
                f"`toolkit tickets login {self.system} --url {self.base_url}`.",
            )
        if status == 413 or "exceeds the maximum" in detail or "too large" in detail.lower():
            return AttachmentTooLarge(
                message,
                status=status,
                hint=f"Set a smaller max_attachment_bytes for {self.system} in tickets.toml "
                "(docs/tickets.md, size limits).",
            )
        if status == 404:
            return BackendRefused(message, status=status, hint="Check the ticket id.")
        return BackendRefused(message, status=status, hint=OUTBOX_HINT if status >= 500 else None)


@contextlib.contextmanager
def quick(seconds: float) -> Iterator[None]:
    """Backends made inside this block give up on a silent system after ``seconds``."""
    _timeout.append(seconds)
    try:
        yield
    finally:
        _timeout.pop()


def basic_auth(user: str, password: str) -> dict[str, str]:
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


__all__ = [
    "OUTBOX_HINT",
    "AttachmentTooLarge",
    "BackendRefused",
    "BackendUnreachable",
    "Http",
    "Response",
    "basic_auth",
    "multipart",
    "quick",
]
