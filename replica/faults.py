"""Deterministic faults for the replica: the failures a crawler meets in the wild, on demand.

A :class:`FaultPlan` gives each URL path at most one fault, chosen by a stable hash of the seed
and the path, so the same seed always breaks the same pages. ``shares`` says which share of the
post pages gets each fault; ``pinned`` states faults for given paths (any page, not only posts).
Hand the plan to ``ReplicaServer(site, faults=plan)``: the request handler asks it first.

The ``…_then_ok`` faults count hits per path for the plan's lifetime (one server), so a page
that failed on its first hits is served normally afterwards, to a retry or to a later run.

``redirect_offsite`` sends the crawler to a second listening socket on another loopback
address (``127.0.0.2``), standing for a host the crawler must never contact;
``plan.offsite.connections`` records every connection it accepts.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import socket
import socketserver
import struct
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from replica.server import ReplicaServer

__all__ = [
    "EXTRA_FAULTS",
    "FAULTS",
    "PERMANENT",
    "RECOVERING",
    "TRANSIENT_FOREVER",
    "FaultPlan",
    "OffsiteHost",
    "is_post_path",
]

RECOVERING = (
    "503_then_ok",
    "429_retry_after",
    "reset_then_ok",
    "hang_then_ok",
    "truncated_then_ok",
    "bad_gzip_then_ok",
)
TRANSIENT_FOREVER = ("always_503",)
PERMANENT = (
    "404",
    "410",
    "not_html",
    "no_article",
    "huge",
    "redirect_loop",
    "redirect_offsite",
)
# Hostile variants, for the tests that want them by name: a 200 with an empty body, an oversized
# body without Content-Length (chunked), a small gzip body that inflates past any sane cap.
EXTRA_FAULTS = ("empty", "huge_chunked", "gzip_bomb")
FAULTS = (*RECOVERING, *TRANSIENT_FOREVER, *PERMANENT, *EXTRA_FAULTS)

NO_RESPONSE = 0  # status logged in ``server.requests`` when the socket got no response at all
_POST_PATH = re.compile(r"^/(?:[^/]+/)+\d{4}/\d{2}/\d{2}/[^/]+\.html$")
_FILLER = (
    "<p>" + "巨大的页面。" * 40 + "</p>\n"
).encode()  # ~0.7 KB of plausible HTML, repeated to build huge bodies
_PDF = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
# A gzip header followed by a deflate block of the reserved type 3: every inflater rejects it.
_BAD_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"\x07not deflate data" * 8


def is_post_path(path: str) -> bool:
    """Whether ``path`` is a post page (``/<category…>/YYYY/MM/DD/<id>.html``)."""
    return bool(_POST_PATH.match(unquote(path)))


class OffsiteHost:
    """A listening socket standing for a forbidden host; it records every connection.

    It answers like a web server (200, a small HTML page), so a crawler that did connect would
    find something worth keeping; a test asserts ``connections == []``.
    """

    def __init__(self, host: str = "127.0.0.2") -> None:
        self.connections: list[tuple[str, int]] = []
        self.request_lines: list[str] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            timeout = 5

            def handle(self) -> None:
                with owner._lock:
                    owner.connections.append(self.client_address[:2])
                try:
                    line = self.rfile.readline(8192).decode("latin-1").strip()
                except OSError:
                    return
                with owner._lock:
                    owner.request_lines.append(line)
                body = b"<html><body><p>offsite page</p></body></html>"
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

            def handle_error(self, request: object, client_address: object) -> None:
                pass

        self._server = Server((host, 0), Handler)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()


class FaultPlan:
    """Which path fails how, and the per-path hit counts that make ``…_then_ok`` recover.

    ``shares`` maps fault names (see ``FAULTS``) to the share of post pages that get them
    (summing to at most 1); ``pinned`` maps exact paths to a fault and overrides the hash.
    ``fail_hits`` is K for ``503_then_ok``; ``hang_s`` must exceed the client's read timeout.
    """

    def __init__(
        self,
        seed: int,
        shares: Mapping[str, float],
        *,
        pinned: Mapping[str, str] | None = None,
        fail_hits: int = 3,
        hang_s: float = 2.5,
        huge_bytes: int = 4_000_000,
        offsite_host: str = "127.0.0.2",
    ) -> None:
        unknown = sorted(set(shares) - set(FAULTS)) + sorted(
            set((pinned or {}).values()) - set(FAULTS)
        )
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {', '.join(FAULTS)}")
        if any(share < 0 for share in shares.values()) or sum(shares.values()) > 1 + 1e-9:
            raise ValueError("shares must be >= 0 and sum to at most 1")
        if fail_hits < 1 or hang_s <= 0 or huge_bytes <= 0:
            raise ValueError("fail_hits must be >= 1, hang_s and huge_bytes > 0")
        self.seed = seed
        self.shares = dict(shares)
        self.pinned = {unquote(path): fault for path, fault in (pinned or {}).items()}
        self.fail_hits = fail_hits
        self.hang_s = hang_s
        self.huge_bytes = huge_bytes
        self.offsite = OffsiteHost(offsite_host)
        self._hits: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._bomb: bytes | None = None
        # cumulative thresholds in the canonical order, so the dict's order does not matter
        self._bounds: list[tuple[float, str]] = []
        total = 0.0
        for name in FAULTS:
            if self.shares.get(name, 0.0) > 0:
                total += self.shares[name]
                self._bounds.append((total, name))

    # -- which page fails how ---------------------------------------------------------------

    def fault_for(self, path: str) -> str | None:
        """The fault of ``path`` (percent-encoded or not), or None for a healthy page."""
        path = unquote(urlsplit(path).path or "/")
        if path in self.pinned:
            return self.pinned[path]
        if not is_post_path(path):
            return None
        digest = hashlib.sha256(f"{self.seed}\x00{path}".encode()).digest()
        point = struct.unpack(">Q", digest[:8])[0] / 2**64
        for bound, name in self._bounds:
            if point < bound:
                return name
        return None

    def assign(self, paths: Iterable[str]) -> dict[str, str]:
        """The faulty ones of ``paths``, path -> fault."""
        return {path: fault for path in paths if (fault := self.fault_for(path)) is not None}

    def hits(self, path: str) -> int:
        """How many requests for ``path`` met its fault so far."""
        with self._lock:
            return self._hits[unquote(path)]

    # -- lifecycle (driven by ReplicaServer.start / stop) ------------------------------------

    def start(self) -> None:
        self._closing.clear()
        self.offsite.start()

    def close(self) -> None:
        self._closing.set()  # wakes hanging handlers
        self.offsite.close()

    def __enter__(self) -> FaultPlan:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving -----------------------------------------------------------------------------

    def intercept(
        self, server: ReplicaServer, handler: BaseHTTPRequestHandler, path: str, *, head: bool
    ) -> bool:
        """Answer the request with its fault; False when the page is to be served normally."""
        fault = self.fault_for(path)
        entry = server.lookup(path)
        if fault is None or entry is None:
            return False
        key = unquote(path)
        with self._lock:
            self._hits[key] += 1
            hit = self._hits[key]
        reply = _Reply(server, handler, head=head)
        if fault == "503_then_ok":
            if hit > self.fail_hits:
                return False
            reply.send(503, b"<h1>503 Service Unavailable</h1>", "text/html")
        elif fault == "429_retry_after":
            if hit > 1:
                return False
            reply.send(429, b"<h1>429 Too Many Requests</h1>", "text/html", {"Retry-After": "1"})
        elif fault == "reset_then_ok":
            if hit > 1:
                return False
            reply.reset()
        elif fault == "hang_then_ok":
            if hit > 1:
                return False
            reply.log(NO_RESPONSE)
            self._closing.wait(self.hang_s)
            handler.close_connection = True
        elif fault == "truncated_then_ok":
            if hit > 1:
                return False
            reply.truncated(entry.body, "text/html; charset=utf-8")
        elif fault == "bad_gzip_then_ok":
            if hit > 1:
                return False
            reply.send(200, _BAD_GZIP, "text/html; charset=utf-8", {"Content-Encoding": "gzip"})
        elif fault == "always_503":
            reply.send(503, b"<h1>503 Service Unavailable</h1>", "text/html")
        elif fault == "404":
            reply.send(404, server.not_found_body, "text/html; charset=utf-8")
        elif fault == "410":
            reply.send(410, b"<h1>410 Gone</h1>", "text/html; charset=utf-8")
        elif fault == "not_html":
            reply.send(200, _PDF, "application/pdf")
        elif fault == "no_article":
            # the site's own page without a post (its 404 page), served as a 200: a soft 404
            reply.send(200, server.not_found_body, "text/html; charset=utf-8")
        elif fault == "empty":
            reply.send(200, b"", "text/html; charset=utf-8")
        elif fault == "huge":
            reply.huge(self.huge_bytes, chunked=False)
        elif fault == "huge_chunked":
            reply.huge(self.huge_bytes, chunked=True)
        elif fault == "gzip_bomb":
            reply.send(200, self._gzip_bomb(), "text/html", {"Content-Encoding": "gzip"})
        elif fault == "redirect_loop":
            query = urlsplit(handler.path).query
            target = path if query else f"{path}?loop=1"
            reply.send(302, b"", "text/html", {"Location": target})
        elif fault == "redirect_offsite":
            reply.send(302, b"", "text/html", {"Location": self.offsite.base_url + path})
        else:  # pragma: no cover - FAULTS and this chain are kept in step
            raise AssertionError(fault)
        return True

    def _gzip_bomb(self) -> bytes:
        with self._lock:
            if self._bomb is None:
                inflated = max(self.huge_bytes * 5, 20_000_000)
                self._bomb = gzip.compress(b" " * inflated, compresslevel=9, mtime=0)
            return self._bomb


class _Reply:
    """Raw responses written on the handler's socket, logged like the server's own."""

    def __init__(
        self, server: ReplicaServer, handler: BaseHTTPRequestHandler, *, head: bool
    ) -> None:
        self.server = server
        self.handler = handler
        self.head = head

    def log(self, status: int) -> None:
        self.server.log(self.handler.command, self.handler.path, status)

    def _headers(self, status: int, content_type: str, extra: Mapping[str, str]) -> None:
        self.log(status)
        self.handler.send_response(status)
        self.handler.send_header("Content-Type", content_type)
        for name, value in extra.items():
            self.handler.send_header(name, value)

    def send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        self._headers(status, content_type, extra or {})
        self.handler.send_header("Content-Length", str(len(body)))
        self.handler.end_headers()
        if not self.head:
            self.handler.wfile.write(body)

    def reset(self) -> None:
        """Close the connection without a byte of response (RST rather than FIN)."""
        self.log(NO_RESPONSE)
        connection = self.handler.connection
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.handler.close_connection = True
        connection.close()

    def truncated(self, body: bytes, content_type: str) -> None:
        """Announce the whole body, send half of it, hang up."""
        self._headers(200, content_type, {"Connection": "close"})
        self.handler.send_header("Content-Length", str(len(body)))
        self.handler.end_headers()
        if not self.head:
            self.handler.wfile.write(body[: len(body) // 2])
        self.handler.close_connection = True

    def huge(self, size: int, *, chunked: bool) -> None:
        """``size`` bytes of HTML, declared up front or streamed in chunks without a length."""
        extra = {"Transfer-Encoding": "chunked"} if chunked else {"Connection": "close"}
        self._headers(200, "text/html; charset=utf-8", extra)
        if not chunked:
            self.handler.send_header("Content-Length", str(size))
        self.handler.end_headers()
        self.handler.close_connection = True
        if self.head:
            return
        block = _FILLER * max(1, 64 * 1024 // len(_FILLER))
        sent = 0
        try:
            while sent < size:
                piece = block[: size - sent]
                if chunked:
                    self.handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                else:
                    self.handler.wfile.write(piece)
                sent += len(piece)
            if chunked:
                self.handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up once it had seen enough: expected
            return
