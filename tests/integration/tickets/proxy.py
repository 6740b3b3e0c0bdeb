"""A reverse proxy on 127.0.0.1 that can hold back one kind of answer after the server acted.

It forwards each request to the real ticket system. A request matching
``stall`` is forwarded and answered upstream, but the proxy never passes the
answer on: the client waits as if the network died right after the system
committed the change. That is the moment a kill -9 hurts most.
"""

from __future__ import annotations

import http.server
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.stall: Callable[[str, str], bool] = lambda method, path: False
        self.stalled = threading.Event()  # set once a held-back answer was committed upstream
        self._release = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                request = urllib.request.Request(
                    proxy.upstream + self.path, data=body, method=self.command, headers=headers
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as resp:
                        status, rheaders, data = resp.status, resp.headers, resp.read()
                except urllib.error.HTTPError as exc:
                    status, rheaders, data = exc.code, exc.headers, exc.read()
                if proxy.stall(self.command, self.path):
                    proxy.stalled.set()
                    proxy._release.wait(120)
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in rheaders.items():
                    if k.lower() not in _HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self) -> None:
        self.stall = lambda method, path: False
        self._release.set()


@contextmanager
def proxying(upstream: str) -> Iterator[Proxy]:
    proxy = Proxy(upstream)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release()
        proxy.server.shutdown()
        proxy.server.server_close()
