"""A local stand-in for GitHub Pages serving a rendered site over real HTTP."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from replica.faults import FaultPlan


@dataclass(frozen=True)
class _Entry:
    body: bytes
    etag: str
    last_modified: float
    content_type: str
    gzipped: list[bytes] = field(default_factory=list)  # lazily filled cache

    def gzip_body(self) -> bytes:
        if not self.gzipped:
            self.gzipped.append(gzip.compress(self.body, mtime=0))
        return self.gzipped[0]


def _content_type(path: str) -> str:
    if path.endswith("/") or path.endswith(".html"):
        return "text/html; charset=utf-8"
    if path.endswith(".xml"):
        return "application/xml"
    return "application/octet-stream"


def _accepts_gzip(header: str | None) -> bool:
    for part in (header or "").split(","):
        token, _, params = part.strip().partition(";")
        if token.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            return not (params.strip().startswith("q=") and float(q or 0) == 0)
    return False


class ReplicaServer:
    """Serves ``site`` (path -> bytes) on 127.0.0.1 like GitHub Pages: ETag/Last-Modified,
    304s, gzip, HEAD, 404 with /404.html, no robots.txt. ``update`` swaps in a rebuild.
    ``faults`` (see ``replica.faults``) answers the requests of the pages it breaks."""

    def __init__(
        self,
        site: dict[str, bytes],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultPlan | None = None,
    ) -> None:
        self.requests: list[tuple[str, str, int]] = []
        self.faults = faults
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._index: dict[str, _Entry] = {}
        self._not_found = b"<h1>404</h1>\n"
        self.update(site)
        self._httpd = _QuietServer((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplicaServer:
        if self.faults is not None:
            self.faults.start()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()
        if self.faults is not None:
            self.faults.close()

    def __enter__(self) -> ReplicaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def update(self, site: dict[str, bytes]) -> None:
        """Swap the whole site at once; unchanged pages keep their ETag and Last-Modified."""
        now = float(int(time.time()))
        entries: dict[str, _Entry] = {}
        for path, body in site.items():
            etag = '"' + hashlib.sha1(body).hexdigest()[:20] + '"'
            old = self._entries.get(path)
            if old is not None and old.etag == etag:
                entries[path] = old
            else:
                entries[path] = _Entry(body, etag, now, _content_type(path))
        index = dict(entries)
        for path, entry in entries.items():
            index.setdefault(unquote(path), entry)
        with self._lock:
            self._entries = entries
            self._index = index
            self._not_found = site.get("/404.html", self._not_found)

    def lookup(self, path: str) -> _Entry | None:
        index = self._index
        for candidate in (path, unquote(path)):
            entry = index.get(candidate)
            if entry is None and candidate.endswith("/index.html"):
                entry = index.get(candidate.removesuffix("index.html"))
            if entry is not None:
                return entry
        return None

    @property
    def not_found_body(self) -> bytes:
        return self._not_found

    def log(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up mid-response are normal for a crawler test; stay silent."""


def _handler_for(server: ReplicaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out as separate writes; with Nagle's algorithm on, the body
            # waits for the client's delayed ACK (~40 ms a response on loopback).
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        server_version = "GitHub.com"
        timeout = 30

        def version_string(self) -> str:
            return self.server_version

        def do_GET(self) -> None:
            self._serve(head=False)

        def do_HEAD(self) -> None:
            self._serve(head=True)

        def log_message(self, format: str, *args: object) -> None:
            pass

        def _serve(self, *, head: bool) -> None:
            path = urlsplit(self.path).path or "/"
            if server.faults is not None and server.faults.intercept(server, self, path, head=head):
                return
            entry = server.lookup(path)
            if entry is None and server.lookup(path + "/") is not None:
                self._send(301, b"", "text/html", extra={"Location": path + "/"}, head=head)
                return
            if entry is None:
                self._send(404, server.not_found_body, "text/html; charset=utf-8", head=head)
                return
            validators = {
                "ETag": entry.etag,
                "Last-Modified": formatdate(entry.last_modified, usegmt=True),
                "Cache-Control": "max-age=600",
            }
            if self._not_modified(entry):
                self._send(304, b"", None, extra=validators, head=True)
                return
            self._send(
                200, entry.body, entry.content_type, extra=validators, head=head, entry=entry
            )

        def _not_modified(self, entry: _Entry) -> bool:
            inm = self.headers.get("If-None-Match")
            if inm is not None:
                tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
                return entry.etag in tags or "*" in tags
            ims = self.headers.get("If-Modified-Since")
            if ims:
                try:
                    return entry.last_modified <= parsedate_to_datetime(ims).timestamp()
                except (TypeError, ValueError):
                    return False
            return False

        def _send(
            self,
            status: int,
            body: bytes,
            content_type: str | None,
            *,
            extra: dict[str, str] | None = None,
            head: bool,
            entry: _Entry | None = None,
        ) -> None:
            server.log(self.command, self.path, status)
            if status in (200, 404) and _accepts_gzip(self.headers.get("Accept-Encoding")):
                body = entry.gzip_body() if entry else gzip.compress(body, mtime=0)
                extra = {**(extra or {}), "Content-Encoding": "gzip"}
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.send_header("Vary", "Accept-Encoding")
            if status != 304:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and status != 304:
                self.wfile.write(body)

    return Handler
