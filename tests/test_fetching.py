"""Fetcher behaviour against a real local HTTP server: no mocked transport, real sockets."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tasks.decoding import page_text
from tasks.fetching import Fetcher, _is_downgrade, parse_retry_after
from tasks.ratelimit import HostRateLimiter, limiter_for

PAGE = "<html><head><title>新闻</title></head><body><p>财经新闻正文</p></body></html>"
PAGE_BYTES = PAGE.encode("utf-8")
GBK_PAGE = "<html><body><p>中文新闻：股市收盘</p></body></html>"
MAX_BYTES = 1000


class _Server(ThreadingHTTPServer):
    """Counts hits per path so tests can assert how many requests really arrived."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.stop = threading.Event()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return f"http://{self.netloc}{path}"

    def total_hits(self) -> int:
        with self.lock:
            return sum(self.hits.values())

    def handle_error(self, request: object, client_address: object) -> None:
        """Resets and hangs are deliberate here; keep the test output quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        with self.server.lock:
            self.server.hits[parts.path] += 1
            hit = self.server.hits[parts.path]
        if parts.path.startswith("/chain/"):
            remaining = int(parts.path.rsplit("/", 1)[1])
            if remaining:
                self._redirect(f"/chain/{remaining - 1}")
            else:
                self._send(200, PAGE_BYTES)
            return
        route = _ROUTES.get(parts.path)
        if route is None:
            self._send(404, b"not found")
        else:
            route(self, hit, parse_qs(parts.query))

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
        length: int | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self._send(302, b"", headers={"Location": location})

    def ok(self, hit: int, query: dict[str, list[str]]) -> None:
        headers = {"ETag": '"v1"', "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT"}
        self._send(200, PAGE_BYTES, headers=headers)

    def conditional(self, hit: int, query: dict[str, list[str]]) -> None:
        if self.headers.get("If-None-Match") == '"v1"':
            self.send_response(304)
            self.send_header("ETag", '"v1"')
            self.end_headers()
        else:
            self.ok(hit, query)

    def flaky(self, hit: int, query: dict[str, list[str]]) -> None:
        if hit == 1:
            self._send(503, b"busy")
        else:
            self._send(200, PAGE_BYTES)

    def throttled(self, hit: int, query: dict[str, list[str]]) -> None:
        if hit == 1:
            self._send(429, b"slow down", headers={"Retry-After": "1"})
        else:
            self._send(200, PAGE_BYTES)

    def throttled_hostile(self, hit: int, query: dict[str, list[str]]) -> None:
        if hit == 1:
            self._send(503, b"busy", headers={"Retry-After": "9" * 400})
        else:
            self._send(200, PAGE_BYTES)

    def down(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(503, b"down")

    def gone(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(410, b"gone")

    def hang(self, hit: int, query: dict[str, list[str]]) -> None:
        self.server.stop.wait(5)

    def hang_body(self, hit: int, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.wfile.flush()
        self.server.stop.wait(5)

    def reset(self, hit: int, query: dict[str, list[str]]) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the peer sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def truncated(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, b"x" * 100, length=200)

    def gzipped(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, gzip.compress(PAGE_BYTES), headers={"Content-Encoding": "gzip"})

    def bad_gzip(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, b"this is not gzip data at all", headers={"Content-Encoding": "gzip"})

    def big(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, b"x" * (MAX_BYTES * 2))

    def big_unsized(self, hit: int, query: dict[str, list[str]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        for _ in range(10):
            self.wfile.write(b"y" * MAX_BYTES)

    def redirect(self, hit: int, query: dict[str, list[str]]) -> None:
        self._redirect(query["to"][0])

    def loop_a(self, hit: int, query: dict[str, list[str]]) -> None:
        self._redirect("/loop-b")

    def loop_b(self, hit: int, query: dict[str, list[str]]) -> None:
        self._redirect("/loop-a")

    def gbk(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, GBK_PAGE.encode("gbk"), content_type="text/html; charset=GBK")

    def echo_headers(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, str(self.headers).encode("latin-1"), content_type="text/plain")

    def cookie(self, hit: int, query: dict[str, list[str]]) -> None:
        self._send(200, PAGE_BYTES, headers={"Set-Cookie": "visit=abc; Path=/"})


_ROUTES: dict[str, Callable[[_Handler, int, dict[str, list[str]]], None]] = {
    "/ok": _Handler.ok,
    "/conditional": _Handler.conditional,
    "/flaky": _Handler.flaky,
    "/throttled": _Handler.throttled,
    "/throttled-hostile": _Handler.throttled_hostile,
    "/down": _Handler.down,
    "/gone": _Handler.gone,
    "/hang": _Handler.hang,
    "/hang-body": _Handler.hang_body,
    "/reset": _Handler.reset,
    "/truncated": _Handler.truncated,
    "/gzip": _Handler.gzipped,
    "/bad-gzip": _Handler.bad_gzip,
    "/big": _Handler.big,
    "/big-unsized": _Handler.big_unsized,
    "/redirect": _Handler.redirect,
    "/loop-a": _Handler.loop_a,
    "/loop-b": _Handler.loop_b,
    "/gbk": _Handler.gbk,
    "/headers": _Handler.echo_headers,
    "/cookie": _Handler.cookie,
}


def _serve() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server() -> Iterator[_Server]:
    yield from _serve()


@pytest.fixture
def other() -> Iterator[_Server]:
    """A second listening socket: a host that is NOT on the allow-list."""
    yield from _serve()


def _fetcher(srv: _Server, **overrides: object) -> Fetcher:
    options: dict[str, object] = {
        "rps": 0,
        "retries": 2,
        "backoff_base": 0.01,
        "backoff_max": 5.0,
        "connect_timeout": 2.0,
        "read_timeout": 2.0,
        "max_bytes": MAX_BYTES,
    }
    options.update(overrides)
    return Fetcher(allowed_hosts=[srv.netloc], **options)  # type: ignore[arg-type]


def test_200_utf8(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/ok"))
    assert result.ok
    assert result.status == 200
    assert result.error is None
    assert result.attempts == 1
    assert result.content == PAGE_BYTES
    assert page_text(result) == PAGE
    assert result.final_url == server.url("/ok")
    assert result.content_type == "text/html; charset=utf-8"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert result.fetched_at.tzinfo is not None
    assert result.fetched_at.utcoffset() == dt.timedelta(0)
    assert result.elapsed_s >= 0


def test_gbk_body_is_decoded_by_declared_charset(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/gbk"))
    assert result.ok
    assert page_text(result) == GBK_PAGE


def test_404_and_410_are_not_retried(server: _Server) -> None:
    with _fetcher(server, retries=3) as fetcher:
        missing = fetcher.fetch(server.url("/nowhere"))
        gone = fetcher.fetch(server.url("/gone"))
    assert (missing.status, missing.error, missing.attempts) == (404, "http 404", 1)
    assert (gone.status, gone.error, gone.attempts) == (410, "http 410", 1)
    assert not missing.ok
    assert missing.content == b""
    assert server.hits["/nowhere"] == 1
    assert server.hits["/gone"] == 1


def test_503_then_200_is_retried(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/flaky"))
    assert result.ok
    assert result.attempts == 2
    assert result.content == PAGE_BYTES
    assert server.hits["/flaky"] == 2


def test_429_honours_retry_after(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        started = time.monotonic()
        result = fetcher.fetch(server.url("/throttled"))
        waited = time.monotonic() - started
    assert result.ok
    assert result.attempts == 2
    assert waited >= 0.95
    assert result.elapsed_s >= 0.95


def test_retry_after_is_capped_by_backoff_max(server: _Server) -> None:
    with _fetcher(server, backoff_max=0.1) as fetcher:
        result = fetcher.fetch(server.url("/throttled"))
    assert result.ok
    assert result.elapsed_s < 0.9


def test_a_hostile_retry_after_is_ignored_not_fatal(server: _Server) -> None:
    """A Retry-After too long to be a number is no reason to give the page up."""
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/throttled-hostile"))
    assert result.ok and result.attempts == 2, result.error


def test_always_503_gives_up_after_retries(server: _Server) -> None:
    with _fetcher(server, retries=3) as fetcher:
        result = fetcher.fetch(server.url("/down"))
    assert not result.ok
    assert result.status == 503
    assert result.attempts == 4
    assert result.error == "http 503 after 4 attempts"
    assert result.content == b""
    assert server.hits["/down"] == 4


def test_read_timeout_on_hanging_server(server: _Server) -> None:
    with _fetcher(server, read_timeout=0.5, retries=1) as fetcher:
        result = fetcher.fetch(server.url("/hang"))
    assert not result.ok
    assert result.status is None
    assert result.attempts == 2
    assert result.error is not None and result.error.startswith("timeout")
    assert server.hits["/hang"] == 2
    assert result.elapsed_s < 3


def test_read_timeout_in_the_middle_of_the_body(server: _Server) -> None:
    with _fetcher(server, read_timeout=0.5, retries=1) as fetcher:
        result = fetcher.fetch(server.url("/hang-body"))
    assert not result.ok
    assert result.status == 200
    assert result.content == b""
    assert result.error is not None and result.error.startswith("timeout")
    assert server.hits["/hang-body"] == 2


def test_connection_reset_is_retried_then_reported(server: _Server) -> None:
    with _fetcher(server, retries=2) as fetcher:
        result = fetcher.fetch(server.url("/reset"))
    assert not result.ok
    assert result.status is None
    assert result.attempts == 3
    assert server.hits["/reset"] == 3
    assert result.error is not None and result.error.startswith("connection error")
    assert "\n" not in result.error


def test_connection_refused(server: _Server) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetcher = Fetcher(allowed_hosts=[f"127.0.0.1:{port}"], rps=0, retries=1, backoff_base=0.01)
    with fetcher:
        result = fetcher.fetch(f"http://127.0.0.1:{port}/")
    assert result.status is None
    assert result.attempts == 2
    assert result.error is not None and result.error.startswith("connection error")
    assert "object at 0x" not in result.error


def test_truncated_body_is_retried_and_never_ok(server: _Server) -> None:
    with _fetcher(server, retries=2) as fetcher:
        result = fetcher.fetch(server.url("/truncated"))
    assert not result.ok
    assert result.content == b""
    assert result.attempts == 3
    assert server.hits["/truncated"] == 3
    assert result.error == "truncated: 100 of 200 bytes after 3 attempts"


def test_gzip_body_is_decompressed(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/gzip"))
    assert result.ok
    assert result.content == PAGE_BYTES


def test_broken_gzip_is_an_error(server: _Server) -> None:
    with _fetcher(server, retries=1) as fetcher:
        result = fetcher.fetch(server.url("/bad-gzip"))
    assert not result.ok
    assert result.content == b""
    assert result.error is not None and result.error.startswith("decode error")
    assert server.hits["/bad-gzip"] == 2


def test_oversized_body_with_content_length_is_aborted(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/big"))
    assert not result.ok
    assert result.error == f"too large: > {MAX_BYTES} bytes"
    assert result.content == b""
    assert result.attempts == 1
    assert server.hits["/big"] == 1


def test_oversized_body_without_content_length_is_aborted(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/big-unsized"))
    assert result.error == f"too large: > {MAX_BYTES} bytes"
    assert result.content == b""
    assert result.attempts == 1


def test_redirect_on_same_host_is_followed(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/redirect?to=/ok"))
    assert result.ok
    assert result.url == server.url("/redirect?to=/ok")
    assert result.final_url == server.url("/ok")
    assert result.content == PAGE_BYTES
    assert result.attempts == 2


def test_five_redirect_hops_are_followed_but_not_six(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        five = fetcher.fetch(server.url("/chain/5"))
        six = fetcher.fetch(server.url("/chain/6"))
    assert five.ok
    assert five.final_url == server.url("/chain/0")
    assert not six.ok
    assert six.error is not None and six.error.startswith("too many redirects")
    assert server.hits["/chain/0"] == 1


def test_redirect_to_another_host_is_refused(server: _Server, other: _Server) -> None:
    target = other.url("/ok")
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url(f"/redirect?to={target}"))
    assert not result.ok
    assert result.status == 302
    assert result.error is not None
    assert result.error.startswith(f"refused: redirect to {target}")
    assert result.final_url == server.url(f"/redirect?to={target}")
    assert other.total_hits() == 0


def test_redirect_to_another_scheme_is_refused(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/redirect?to=file:///etc/passwd"))
    assert result.error is not None
    assert result.error.startswith("refused: redirect to file:///etc/passwd")
    assert result.content == b""


def test_https_to_http_downgrade_is_detected() -> None:
    assert _is_downgrade("https://example.com/a", "http://example.com/b")
    assert not _is_downgrade("http://example.com/a", "https://example.com/b")
    assert not _is_downgrade("https://example.com/a", "https://example.com/b")


def test_redirect_loop(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(server.url("/loop-a"))
    assert not result.ok
    assert result.error is not None and result.error.startswith("redirect loop")
    assert server.hits["/loop-a"] == 1
    assert server.hits["/loop-b"] == 1


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "data:text/html,<p>hi</p>",
        "javascript:alert(1)",
        "ftp://{netloc}/ok",
        "https://example.com/ok",
        "http://{netloc}.evil.test/ok",
        "http://user:pw@{netloc}/ok",
        "http://evil.test\\@{netloc}/ok",
        "http://{netloc}/ok\n",
        "//{netloc}/ok",
        "/ok",
        "",
    ],
)
def test_disallowed_urls_are_refused_without_io(server: _Server, url: str) -> None:
    url = url.format(netloc=server.netloc)
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(url)
        assert not fetcher.allowed(url)
    assert result.status is None
    assert result.attempts == 0
    assert result.error is not None and result.error.startswith("refused: ")
    assert server.total_hits() == 0


def test_other_port_on_the_same_ip_is_refused(server: _Server, other: _Server) -> None:
    with _fetcher(server) as fetcher:
        result = fetcher.fetch(other.url("/ok"))
    assert result.error is not None and result.error.startswith("refused: host")
    assert other.total_hits() == 0


def test_allow_list_matching() -> None:
    fetcher = Fetcher(allowed_hosts=["Example.com", "news.example.com:8080"], rps=0)
    assert fetcher.allowed("https://example.com/a")
    assert fetcher.allowed("http://EXAMPLE.com:80/a")
    assert fetcher.allowed("https://example.com:443/a")
    assert fetcher.allowed("http://news.example.com:8080/a")
    assert not fetcher.allowed("http://news.example.com/a")
    assert not fetcher.allowed("http://example.com:8080/a")
    assert not fetcher.allowed("http://sub.example.com/a")
    assert not fetcher.allowed("http://example.com:99999/a")
    with pytest.raises(ValueError, match="host"):
        Fetcher(allowed_hosts=["https://example.com"])


def test_if_none_match_gives_304(server: _Server) -> None:
    with _fetcher(server) as fetcher:
        fresh = fetcher.fetch(server.url("/conditional"))
        cached = fetcher.fetch(server.url("/conditional"), etag=fresh.etag)
    assert fresh.ok
    assert cached.status == 304
    assert cached.error is None
    assert cached.content == b""
    assert cached.etag == '"v1"'
    assert cached.attempts == 1


def test_rate_limit_applies_to_fetches(server: _Server) -> None:
    with _fetcher(server, rps=10) as fetcher:
        started = time.monotonic()
        results = [fetcher.fetch(server.url("/ok")) for _ in range(5)]
        elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert elapsed >= 0.38


def test_one_fetcher_many_threads(server: _Server) -> None:
    results = []
    lock = threading.Lock()
    with _fetcher(server, pool_size=4) as fetcher:

        def work() -> None:
            for _ in range(4):
                result = fetcher.fetch(server.url("/ok"))
                with lock:
                    results.append(result)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert len(results) == 32
    assert all(r.ok and r.content == PAGE_BYTES for r in results)
    assert server.hits["/ok"] == 32


def test_rate_limiter_bites() -> None:
    limiter = HostRateLimiter(10)
    started = time.monotonic()
    for _ in range(5):
        limiter.wait("example.test")
    assert time.monotonic() - started >= 0.38


def test_rate_limiter_zero_is_unlimited_and_hosts_are_independent() -> None:
    unlimited = HostRateLimiter(0)
    started = time.monotonic()
    for _ in range(100):
        assert unlimited.wait("example.test") == 0.0
    assert time.monotonic() - started < 0.05
    limiter = HostRateLimiter(2)
    started = time.monotonic()
    for host in ("a.test", "b.test", "c.test"):
        limiter.wait(host)
    assert time.monotonic() - started < 0.1


def test_rate_limiter_is_shared_and_thread_safe() -> None:
    assert limiter_for(7) is limiter_for(7.0)
    assert limiter_for(0) is limiter_for(-1)
    limiter = HostRateLimiter(20)
    threads = [threading.Thread(target=limiter.wait, args=("example.test",)) for _ in range(10)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert time.monotonic() - started >= 0.43


def test_parse_retry_after() -> None:
    now = dt.datetime(2015, 10, 21, 7, 27, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 60.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after("²") is None  # a digit to str.isdigit, not to int()
    assert parse_retry_after("9" * 400) is None  # too large for a float
    assert parse_retry_after(None) is None


# ---------------------------------------------------------------- environment: proxies, netrc

PROXY_PAGE = b"<html><body><p>via the proxy</p></body></html>"


class _Proxy(ThreadingHTTPServer):
    """A forward proxy that records what it is asked and answers GETs itself; CONNECT (an
    https tunnel) is refused, which is enough to see that the proxy was chosen."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: _Proxy

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(("GET", self.path))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PROXY_PAGE)))
        self.end_headers()
        self.wfile.write(PROXY_PAGE)

    def do_CONNECT(self) -> None:
        self.server.seen.append(("CONNECT", self.path))
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy, netrc or CA bundle setting from the environment the tests run in."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy") or name in (
            "NETRC",
            "REQUEST_METHOD",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
        ):
            monkeypatch.delenv(name)


@pytest.fixture
def proxy(clean_env: None) -> Iterator[_Proxy]:
    """A running proxy (the environment names none yet)."""
    srv = _Proxy()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def test_http_proxy_from_the_environment_is_used(
    proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with Fetcher(allowed_hosts=["finews.invalid"], rps=0, retries=0) as fetcher:
        first = fetcher.fetch("http://finews.invalid/news/1.html")
        second = fetcher.fetch("http://finews.invalid/news/2.html?x=1")
    assert first.ok and second.ok
    assert first.content == PROXY_PAGE
    assert proxy.seen == [
        ("GET", "http://finews.invalid/news/1.html"),
        ("GET", "http://finews.invalid/news/2.html?x=1"),
    ]


def test_no_proxy_from_the_environment_bypasses_the_proxy(
    server: _Server, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", proxy.url)
    with _fetcher(server) as fetcher:
        proxied = fetcher.fetch(server.url("/ok"))
    assert proxied.content == PROXY_PAGE
    assert proxy.seen == [("GET", server.url("/ok"))]
    assert server.hits["/ok"] == 0
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    with _fetcher(server) as fetcher:
        direct = fetcher.fetch(server.url("/ok"))
    assert direct.content == PAGE_BYTES
    assert server.hits["/ok"] == 1
    assert len(proxy.seen) == 1


def test_https_proxy_from_the_environment_is_used(
    proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    with Fetcher(allowed_hosts=["finews.invalid"], rps=0, retries=0) as fetcher:
        result = fetcher.fetch("https://finews.invalid/news/1.html")
    assert proxy.seen == [("CONNECT", "finews.invalid:443")]
    assert not result.ok
    assert result.error is not None and "connection error" in result.error


def test_netrc_credentials_and_cookies_are_sent(
    server: _Server, proxy: _Proxy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login reader password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    with _fetcher(server) as fetcher:
        before = page_text(fetcher.fetch(server.url("/headers")))
        assert fetcher.fetch(server.url("/cookie")).ok
        after = page_text(fetcher.fetch(server.url("/headers")))
    assert "Authorization: Basic cmVhZGVyOnMzY3JldA==" in before  # reader:s3cret
    assert "Cookie" not in before
    assert "Cookie: visit=abc" in after
    assert "User-Agent: finews/" in after
    assert "Accept-Encoding: gzip" in after


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by itself, and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_ca_bundle_from_the_environment_is_used(
    clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REQUESTS_CA_BUNDLE decides which certificates are trusted; verification stays on."""
    import ssl

    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    srv = _Server()
    srv.socket = context.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    url = f"https://{srv.netloc}/ok"
    try:
        with _fetcher(srv, retries=0) as fetcher:
            untrusted = fetcher.fetch(url)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        with _fetcher(srv, retries=0) as fetcher:
            trusted = fetcher.fetch(url)
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)
    assert untrusted.error is not None and untrusted.error.startswith("tls error")
    assert trusted.ok and trusted.content == PAGE_BYTES
