"""Polite, bounded HTTP fetching: every URL yields one FetchResult, never an exception.

All crawler traffic goes through :class:`Fetcher`, so the rules live here: only allow-listed
hosts are contacted over http(s), redirect hops included and checked before they are sent (an
https page may not hand over to plain http); each host is paced by a process-wide rate limit;
bodies are size-capped and checked for truncation; and only transient faults (timeouts, resets,
short or undecodable bodies, 429, 5xx) are retried, with capped exponential backoff and full
jitter, honouring ``Retry-After``.

Requests go out through the mounted ``requests`` adapter's urllib3 pool directly, not through
``Session.get``: what a session re-derives from the environment on every request (proxies and
``NO_PROXY``, ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, ``~/.netrc``) is settled once per
origin with requests' own functions, and the rest of requests' per-request machinery (building
a ``Response``, merging settings) is skipped. Headers, the cookie jar, the wire URL, exceptions
and their classification are the same as with ``Session.get``; it costs less than half the CPU.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import logging
import random
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urldefrag, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests.cookies import extract_cookies_to_jar
from requests.utils import get_netrc_auth
from urllib3 import Timeout
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    DecodeError,
    InvalidHeader,
    LocationParseError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.exceptions import ProxyError as Urllib3ProxyError
from urllib3.exceptions import SSLError as Urllib3SSLError
from urllib3.response import BaseHTTPResponse, HTTPResponse
from urllib3.util import parse_url

from common.links import NETLOC
from common.records import FetchResult
from tasks.ratelimit import HostRateLimiter, SharedHostRateLimiter, limiter_for

__all__ = ["MAX_REDIRECTS", "Fetcher", "parse_retry_after"]

log = logging.getLogger(__name__)

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_NO_BODY = frozenset({204, 304})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")
_DECODERS = frozenset(getattr(HTTPResponse, "CONTENT_DECODERS", ["gzip", "x-gzip", "deflate"]))
_CHUNK = 64 * 1024
_DRAIN_LIMIT = 64 * 1024
_MAX_ERROR_LEN = 300

_DECIMAL = re.compile(r"[0-9]{1,15}")


@dataclass(slots=True)
class _Attempt:
    """What one HTTP request produced; the fetch loop decides whether to retry or follow."""

    status: int | None = None
    content: bytes = b""
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    transient: bool = False
    retry_after: float | None = None
    location: str | None = None
    body_read: bool = False  # read to its end: the connection went back to the pool


@dataclass(frozen=True, slots=True)
class _Route:
    """How requests to one origin go out, as ``Session.get`` would settle it on every request:
    the proxies the environment names (``NO_PROXY`` applied), the urllib3 pool (proxied or
    direct, TLS verification from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``) and any
    ``~/.netrc`` credentials."""

    pool: HTTPConnectionPool
    proxies: dict[str, str]
    auth: tuple[str, str] | None


class Fetcher:
    """Thread-safe fetcher for a fixed set of hosts; share one instance across worker threads."""

    def __init__(
        self,
        *,
        allowed_hosts: Iterable[str],
        rps: float = 1.0,
        user_agent: str = "finews/0.1 (+https://github.com/finews)",
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        max_bytes: int = 5_000_000,
        retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        pool_size: int = 8,
        limiter: HostRateLimiter | SharedHostRateLimiter | None = None,
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts must be an iterable of netlocs, not a string")
        hosts = frozenset(h.strip().lower() for h in allowed_hosts)
        bad = sorted(h for h in hosts if not NETLOC.fullmatch(h))
        if bad:
            raise ValueError(f"allowed_hosts must be 'host' or 'host:port', got {bad}")
        if retries < 0 or max_bytes <= 0 or pool_size <= 0:
            raise ValueError("retries must be >= 0, max_bytes and pool_size > 0")
        self.allowed_hosts = hosts
        self.max_bytes = max_bytes
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._timeout = Timeout(connect=connect_timeout, read=read_timeout)
        self._limiter = limiter if limiter is not None else limiter_for(rps)
        self._random = random.Random()
        # The session holds the adapter, the default headers and the cookie jar; requests are
        # sent through the adapter's pools by _send (see the module docstring).
        self._session = requests.Session()
        self._adapter = HTTPAdapter(
            pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
        )
        self._session.mount("http://", self._adapter)
        self._session.mount("https://", self._adapter)
        self._routes: dict[tuple[str, str], _Route] = {}
        self._session.headers.update(
            {
                "User-Agent": user_agent,
                "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                "Accept-Encoding": "gzip",
            }
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release pooled connections."""
        self._routes.clear()
        self._session.close()

    def allowed(self, url: str) -> bool:
        """Whether ``fetch`` would contact ``url`` at all."""
        return self._refusal(url) is None

    def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None
    ) -> FetchResult:
        """Fetch ``url`` (conditionally, given validators) and describe the outcome."""
        started = time.monotonic()
        reason = self._refusal(url)
        if reason is not None:
            return self._result(url, url, _Attempt(error=f"refused: {reason}"), started, 0)
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        current = url
        seen = {urldefrag(url).url}
        attempts = failures = hops = 0
        while True:
            outcome = self._attempt(current, headers)
            attempts += 1
            if outcome.location is not None:
                target, outcome.location = outcome.location, None
                hops += 1
                outcome.error = self._redirect_error(current, target, seen, hops)
                if outcome.error is not None:
                    break
                seen.add(urldefrag(target).url)
                current = target
                continue
            if not outcome.transient:
                break
            if failures >= self.retries:
                if attempts > 1:
                    outcome.error = f"{outcome.error} after {attempts} attempts"
                break
            delay = self._backoff(failures, outcome.retry_after)
            failures += 1
            log.info("retrying %s in %.2fs: %s", current, delay, outcome.error)
            time.sleep(delay)
        if outcome.status == 304:
            outcome.etag = outcome.etag or etag
            outcome.last_modified = outcome.last_modified or last_modified
        return self._result(url, current, outcome, started, attempts)

    def _redirect_error(self, current: str, target: str, seen: set[str], hops: int) -> str | None:
        """Why a redirect hop must not be followed; every hop meets the allow-list first."""
        refusal = self._refusal(target)
        if refusal is None and _is_downgrade(current, target):
            refusal = "https to http downgrade"
        if refusal is not None:
            return f"refused: redirect to {target} ({refusal})"
        if urldefrag(target).url in seen:
            return f"redirect loop: {target}"
        if hops > MAX_REDIRECTS:
            return f"too many redirects (> {MAX_REDIRECTS})"
        return None

    def _attempt(self, url: str, headers: dict[str, str]) -> _Attempt:
        self._limiter.wait(urlsplit(url).hostname or "")
        try:
            request, response = self._send(url, headers)
        except requests.RequestException as exc:
            return _failure(exc)
        except Exception as exc:  # a crawl must record odd failures, not die of them
            log.warning("unexpected error fetching %s", url, exc_info=True)
            return _Attempt(error=f"request error: {_describe(exc)}")
        out = None
        try:
            extract_cookies_to_jar(self._session.cookies, request, response)
            out = self._read(url, response)
            return out
        except Exception as exc:
            log.warning("unexpected error reading %s", url, exc_info=True)
            return _Attempt(status=response.status, error=f"read error: {_describe(exc)}")
        finally:
            # As requests.Response.close: a body read to its end has already given its
            # connection back to the pool; anything else drops the connection.
            if out is None or not out.body_read:
                response.close()
            response.release_conn()

    def _send(
        self, url: str, headers: dict[str, str]
    ) -> tuple[requests.PreparedRequest, BaseHTTPResponse]:
        """One GET, no redirects followed, body not read yet; raises what ``Session.get`` and
        ``HTTPAdapter.send`` would raise."""
        request = requests.PreparedRequest()
        request.method = "GET"
        request.prepare_url(url, None)  # the URL requests would put on the wire
        request.prepare_headers({**self._session.headers, **headers})
        request.body = None
        request.prepare_cookies(self._session.cookies)
        route = self._route(request)
        if route.auth is not None:
            HTTPBasicAuth(*route.auth)(request)
        try:
            return request, self._urlopen(route, request, reroute=True)
        except ClosedPoolError:
            # The pool was closed under us (close(), or evicted by the pool manager after
            # too many origins): nothing was sent, so settle the route again and go once more.
            self._routes.pop(self._origin(request), None)
            return request, self._urlopen(self._route(request), request, reroute=False)

    def _urlopen(
        self, route: _Route, request: requests.PreparedRequest, *, reroute: bool
    ) -> BaseHTTPResponse:
        """``HTTPAdapter.send`` without building a Response; urllib3 errors become the
        requests exceptions it raises (a closed pool is raised as is when ``reroute``)."""
        try:
            return route.pool.urlopen(
                method="GET",
                url=self._adapter.request_url(request, route.proxies),
                body=None,
                headers=request.headers,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                retries=self._adapter.max_retries,
                timeout=self._timeout,
                chunked=False,
            )
        except ClosedPoolError as err:
            if reroute:
                raise
            raise requests.ConnectionError(err, request=request) from err
        except (ProtocolError, OSError) as err:
            raise requests.ConnectionError(err, request=request) from err
        except MaxRetryError as err:
            reason = err.reason
            if isinstance(reason, ConnectTimeoutError) and not isinstance(
                reason, NewConnectionError
            ):
                raise requests.exceptions.ConnectTimeout(err, request=request) from err
            if isinstance(reason, ResponseError):
                raise requests.exceptions.RetryError(err, request=request) from err
            if isinstance(reason, Urllib3ProxyError):
                raise requests.exceptions.ProxyError(err, request=request) from err
            if isinstance(reason, Urllib3SSLError):
                raise requests.exceptions.SSLError(err, request=request) from err
            raise requests.ConnectionError(err, request=request) from err
        except Urllib3ProxyError as err:
            raise requests.exceptions.ProxyError(err) from err
        except Urllib3SSLError as err:
            raise requests.exceptions.SSLError(err, request=request) from err
        except ReadTimeoutError as err:
            raise requests.exceptions.ReadTimeout(err, request=request) from err
        except InvalidHeader as err:
            raise requests.exceptions.InvalidHeader(err, request=request) from err

    @staticmethod
    def _origin(request: requests.PreparedRequest) -> tuple[str, str]:
        parts = urlsplit(request.url or "")
        return parts.scheme.lower(), parts.netloc.lower()

    def _route(self, request: requests.PreparedRequest) -> _Route:
        """The route to ``request``'s origin, settled from the environment on first use.

        Proxies, ``NO_PROXY``, the CA bundle and netrc depend only on the scheme and host, so
        this is what ``Session.get`` would compute for every request (it reads and matches
        the whole environment each time: ~0.1 ms per request).
        """
        key = self._origin(request)
        route = self._routes.get(key)
        if route is not None:
            return route
        scheme, netloc = key
        origin = f"{scheme}://{netloc}/"
        session = self._session
        settings = session.merge_environment_settings(origin, {}, True, None, None)
        proxies, verify = settings["proxies"], settings["verify"]
        auth = get_netrc_auth(origin) if session.trust_env and session.auth is None else None
        try:
            pool = self._adapter.get_connection_with_tls_context(request, verify, proxies=proxies)
        except LocationValueError as err:
            raise requests.exceptions.InvalidURL(err, request=request) from err
        self._adapter.cert_verify(pool, request.url or "", verify, None)
        route = _Route(pool=pool, proxies=proxies, auth=auth)
        self._routes[key] = route
        return route

    def _read(self, url: str, response: BaseHTTPResponse) -> _Attempt:
        status = response.status
        out = _Attempt(
            status=status,
            content_type=response.headers.get("Content-Type"),
            etag=response.headers.get("ETag"),
            last_modified=response.headers.get("Last-Modified"),
        )
        location = _redirect_target(response) if status in _REDIRECTS else None
        if location:
            _drain(response)
            out.location = urljoin(url, location)
            return out
        if status == 429 or status >= 500:
            _drain(response)
            out.error, out.transient = f"http {status}", True
            if status in (429, 503):
                out.retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return out
        if not (200 <= status < 300 or status == 304):
            _drain(response)
            out.error = f"http {status}"
            return out
        return self._read_body(response, out)

    def _read_body(self, response: BaseHTTPResponse, out: _Attempt) -> _Attempt:
        status = out.status
        expected = _content_length(response.headers.get("Content-Length"))
        encodings = _content_encodings(response.headers.get("Content-Encoding"))
        unknown = [e for e in encodings if e not in _DECODERS]
        if unknown:
            out.error = f"unsupported content-encoding: {', '.join(unknown)}"
            return out
        if expected is not None and expected > self.max_bytes and status not in _NO_BODY:
            out.error = f"too large: > {self.max_bytes} bytes"
            return out
        body = bytearray()
        try:
            for chunk in _iter_content(response):
                body += chunk
                if len(body) > self.max_bytes:
                    out.error = f"too large: > {self.max_bytes} bytes"
                    return out
            out.body_read = True
        except requests.exceptions.ChunkedEncodingError as exc:
            out.error = _truncated(response.tell(), expected, exc)
            out.transient = True
            return out
        except requests.RequestException as exc:
            failed = _failure(exc)
            out.error, out.transient = failed.error, failed.transient
            return out
        received = response.tell()
        if expected is not None and status not in _NO_BODY and received < expected:
            out.error = _truncated(received, expected, None)
            out.transient = True
            return out
        out.content = bytes(body)
        return out

    def _backoff(self, failures: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(self.backoff_max, retry_after)
        ceiling = min(self.backoff_max, self.backoff_base * 2**failures)
        return ceiling * self._random.random()

    def _refusal(self, url: str) -> str | None:
        if not isinstance(url, str) or not url:
            return "empty url"
        if _URL_CONTROL.search(url) or url != url.strip():
            return "control characters or surrounding whitespace in url"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            return f"malformed url ({exc})"
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return f"scheme {scheme or '(none)'!r} not allowed"
        netloc = parts.netloc.lower()
        if "@" in netloc:
            return "credentials in url"
        if not NETLOC.fullmatch(netloc) or not parts.hostname:
            return f"malformed host {netloc!r}"
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        try:
            # requests/urllib3 parse URLs their own way; refuse anything they read differently.
            same = (parse_url(url).host or "").lower() == host
        except LocationParseError:
            same = False
        if not same:
            return f"ambiguous host {netloc!r}"
        default = _DEFAULT_PORTS[scheme]
        if port is None or port == default:
            names = {host, f"{host}:{default}"}
        else:
            names = {f"{host}:{port}"}
        if names.isdisjoint(self.allowed_hosts):
            return f"host {netloc!r} not allowed"
        return None

    def _result(
        self, url: str, final_url: str, out: _Attempt, started: float, attempts: int
    ) -> FetchResult:
        return FetchResult(
            url=url,
            final_url=final_url,
            status=out.status,
            content=out.content if out.error is None else b"",
            content_type=out.content_type,
            elapsed_s=time.monotonic() - started,
            attempts=attempts,
            fetched_at=dt.datetime.now(dt.UTC),
            error=_one_line(out.error) if out.error is not None else None,
            etag=out.etag,
            last_modified=out.last_modified,
            transient=out.error is not None and out.transient,
        )


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if (seconds := _decimal(value)) is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def _failure(exc: requests.RequestException) -> _Attempt:
    """Classify a requests exception: only network-level hiccups are worth another attempt."""
    root = _root_cause(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return _Attempt(error=f"tls error: {_describe(root)}")
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _Attempt(error="timeout (connect)", transient=True)
    if isinstance(exc, requests.exceptions.ReadTimeout) or isinstance(
        root, ReadTimeoutError | TimeoutError
    ):
        return _Attempt(error="timeout (read)", transient=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return _Attempt(error="timeout", transient=True)
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return _Attempt(error=f"decode error: {_describe(root)}", transient=True)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return _Attempt(error=f"truncated: {_describe(root)}", transient=True)
    if isinstance(exc, requests.ConnectionError):
        return _Attempt(error=f"connection error: {_describe(root)}", transient=True)
    return _Attempt(error=f"request error: {_describe(exc)}")


def _root_cause(exc: BaseException) -> BaseException:
    """Dig through requests/urllib3 wrappers (MaxRetryError, ProtocolError) to the OS error."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, MaxRetryError) and exc.reason is not None:
            exc = exc.reason
        elif exc.args and isinstance(exc.args[-1], BaseException):
            exc = exc.args[-1]
        else:
            break
    return exc


def _describe(exc: BaseException) -> str:
    message = _OBJECT_REPR.sub("", str(getattr(exc, "_message", None) or exc)).strip()
    name = type(exc).__name__
    if name == "error":  # zlib.error, socket.error-style names say nothing alone
        name = f"{type(exc).__module__}.{name}"
    return f"{name}: {message}" if message else name


def _truncated(received: int, expected: int | None, exc: BaseException | None) -> str:
    if expected is not None:
        return f"truncated: {received} of {expected} bytes"
    cause = f" ({_describe(_root_cause(exc))})" if exc is not None else ""
    return f"truncated: body ended after {received} bytes{cause}"


def _is_downgrade(source: str, target: str) -> bool:
    """An https page must not hand the crawl over to plain http, where it can be altered."""
    return urlsplit(source).scheme.lower() == "https" and urlsplit(target).scheme.lower() == "http"


def _content_length(value: str | None) -> int | None:
    """The declared length, or None when absent or not one consistent integer."""
    if value is None:
        return None
    lengths = {v.strip() for v in value.split(",")}
    if len(lengths) != 1:
        return None
    (length,) = lengths
    return _decimal(length)


def _decimal(value: str) -> int | None:
    """A header's non-negative integer: ASCII digits only (``str.isdigit`` takes "²"), and
    few enough of them that a hostile value cannot overflow a float or Python's int parser."""
    return int(value) if _DECIMAL.fullmatch(value) else None


def _content_encodings(value: str | None) -> list[str]:
    if not value:
        return []
    return [e for e in (p.strip().lower() for p in value.split(",")) if e and e != "identity"]


def _iter_content(response: BaseHTTPResponse) -> Iterable[bytes]:
    """The decoded body in chunks, failing as ``requests.Response.iter_content`` does."""
    try:
        yield from response.stream(_CHUNK, decode_content=True)
    except ProtocolError as exc:
        raise requests.exceptions.ChunkedEncodingError(exc) from exc
    except DecodeError as exc:
        raise requests.exceptions.ContentDecodingError(exc) from exc
    except ReadTimeoutError as exc:
        raise requests.ConnectionError(exc) from exc
    except Urllib3SSLError as exc:
        raise requests.exceptions.SSLError(exc) from exc


def _redirect_target(response: BaseHTTPResponse) -> str | None:
    """The Location of a redirect, read as ``Session.get_redirect_target`` does (UTF-8 bytes
    that http.client decoded as latin-1 are decoded again)."""
    location = response.headers.get("Location")
    if location is None:
        return None
    raw = location.encode("latin1")
    try:
        return raw.decode("utf8")
    except UnicodeDecodeError:
        return raw.decode("latin1")


def _drain(response: BaseHTTPResponse) -> None:
    """Read a small unwanted body so the connection can go back to the pool."""
    length = _content_length(response.headers.get("Content-Length"))
    if length is None or length > _DRAIN_LIMIT:
        return
    with contextlib.suppress(Exception):  # best effort: close() drops the connection anyway
        response.read(length, decode_content=False)


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR_LEN else text[: _MAX_ERROR_LEN - 1] + "…"
