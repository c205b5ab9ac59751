"""Crawl performance benchmark: naive loop vs ``finews crawl`` over a replica served by nginx.

Usage (from the repository root; not collected by pytest)::

    .venv/bin/python tests/bench_crawl.py --posts 5000 [--posts 20000] [--categories 200]
        [--prefect-server]

For each size it writes a synthetic replica as static files, serves it with nginx on a free
loopback port (a threaded Python server if nginx cannot be had, which is said in the output)
and measures, alternating, ``--repeat`` times (best taken):

a. the naive baseline: one ``requests.Session``, the category pages (and the home page) first,
   then every post they list, ``trafilatura.bare_extraction`` per page, one Parquet file;
b. ``finews crawl --category all --rps 0`` as a subprocess: wall time, its own ``elapsed``,
   CPU of the process tree (and per kind of process), peak RSS (tree sum by polling psutil;
   largest single process);
c. extraction alone: CPU seconds per page of ``tasks.extraction.extract_article`` in one
   process over the pages read from disk, which gives the CPU limit of the machine;
d. a second ``finews crawl`` into the same warehouse (nothing new): wall time and how many
   article pages it fetched.

By default each ``finews crawl`` starts Prefect's temporary local server itself, so that server
is part of the measured tree. With ``--prefect-server`` the script starts one dedicated
``prefect server start`` (SQLite in its own PREFECT_HOME under the temporary folder, a free
loopback port) and runs every crawl with ``PREFECT_API_URL`` pointing to it, as in
production: the tree is then the crawl alone, and the server's RSS and CPU are reported apart.

It prints a Markdown table (and ``--json PATH``) with the targets checked.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import requests
import trafilatura

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from replica import ReplicaServer, generate_posts, render_site  # noqa: E402
from replica.__main__ import write_site  # noqa: E402
from replica.posts import DEFAULT_NOW, SHANGHAI  # noqa: E402
from tasks.extraction import ExtractionError, extract_article  # noqa: E402

try:
    import psutil
except ImportError:  # the tree-RSS figure is then missing; ru_maxrss still works
    psutil = None

NGINX = "/usr/sbin/nginx"
GNU_TIME = "/usr/bin/time"
MB = 1024 * 1024
POLL_S = 0.05
WINDOW_DAYS = 3.0
TARGETS = {
    "ratio": 3.0,  # (b) articles/s ÷ (a) articles/s, at least
    "efficiency": 0.80,  # (b) ÷ CPU limit, at least
    "rss_mb": 400.0,  # peak RSS of (b) at 20,000 posts, at most
    "rss_growth": 0.20,  # peak RSS growth from the smallest to the largest size, below
    "noop_share": 0.05,  # no-op run wall ÷ full run wall, at most
    "noop_article_fetches": 0,
}
_POST_HREF = re.compile(r"""href=["']([^"'<>]+/\d{4}/\d{2}/\d{2}/[^/"'<>]+\.html)["']""")
_PROCESS_KINDS = (
    ("bin/finews crawl", "finews crawl"),
    ("prefect server start", "Prefect server (prefect server start)"),
    ("uvicorn", "Prefect server (uvicorn)"),
    ("spawn_main", "spawned worker"),
    ("forkserver", "forkserver"),
    ("resource_tracker", "resource tracker"),
)
_ELAPSED = re.compile(r"^\s*elapsed\s+([0-9.]+)\s*s\s*$", re.MULTILINE)


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    """A port nobody listens on right now (loopback only)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_conf(root: Path, work: Path, port: int) -> str:
    """A minimal static-site config whose pid, logs and temp paths all live in ``work``."""
    temps = "\n".join(
        f"  {name}_temp_path {work / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""daemon off;
worker_processes 2;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  types {{ text/html html htm; application/xml xml; }}
  default_type text/html;
  charset utf-8;
  charset_types text/html application/xml;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  gzip on;
  gzip_types application/xml;
  etag on;
{temps}
  server {{
    listen 127.0.0.1:{port};
    server_name localhost;
    root {root};
    index index.html;
    error_page 404 /404.html;
  }}
}}
"""


def ensure_nginx() -> str | None:
    """Install nginx from Debian's packages if missing; the reason it is unusable, or None."""
    if Path(NGINX).exists():
        return None
    if shutil.which("apt-get") is None:
        return "nginx missing and no apt-get"
    print("nginx missing: apt-get install -y nginx …", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx"]):
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-200:]}"
    return None if Path(NGINX).exists() else "nginx not found after apt-get install"


def wait_until_serving(url: str, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Poll ``url`` until it answers 200; raise if the server died or never answered.

    Used for nginx, the fallback server and Prefect's ``/api/health``.
    """
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException as exc:
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"server did not answer {url} within {timeout:.0f} s: {last}")


def start_nginx(root: Path, work: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Start nginx (master + 2 workers, ``daemon off``) on a free loopback port serving
    ``root``; returns the process and the base URL, or raises RuntimeError."""
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = work / "nginx.conf"
    conf.write_text(nginx_conf(root, work, port))
    cmd = [NGINX, "-p", str(work), "-e", str(work / "error.log"), "-c", str(conf)]
    check = subprocess.run([*cmd, "-t"], capture_output=True, text=True, check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t: {check.stderr.strip()}")
    with (work / "nginx.out").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(base + "/", proc, timeout=15)
    except RuntimeError:
        stop_nginx(proc)
        raise
    return proc, base


def stop_nginx(proc: subprocess.Popen[bytes]) -> None:
    """Graceful stop (SIGQUIT: the master stops its workers), SIGKILL to the group if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGQUIT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def serve_site(
    make_site: Callable[[], dict[str, bytes]],
    root: Path,
    work: Path,
    choice: str,
    notes: list[str],
) -> Iterator[tuple[str, str]]:
    """nginx when possible, else ``replica.server.ReplicaServer``; yields (base URL, name,
    pid of the nginx master, or None for the in-process fallback)."""
    reason = "--server python" if choice == "python" else ensure_nginx()
    if reason is None:
        try:
            proc, base = start_nginx(root, work)
        except (RuntimeError, OSError) as exc:
            reason = f"nginx failed to start: {exc}"
        else:
            try:
                version = subprocess.run(
                    [NGINX, "-v"], capture_output=True, text=True, check=False
                ).stderr.strip()
                yield base, version.removeprefix("nginx version: ") + " (2 workers)", proc.pid
            finally:
                stop_nginx(proc)
            return
    if choice == "nginx":
        raise RuntimeError(reason)
    note = f"FALLBACK: threaded Python ReplicaServer in the benchmark process ({reason})"
    print(note, flush=True)
    notes.append(note)
    with ReplicaServer(make_site()) as server:
        wait_until_serving(server.base_url + "/", None, timeout=15)
        yield server.base_url, "python ReplicaServer (fallback)", None


# --------------------------------------------------------------------------- the Prefect server


@dataclass
class PrefectServer:
    """A dedicated ``prefect server start`` (SQLite, loopback) the crawls report to."""

    proc: subprocess.Popen[bytes]
    api_url: str
    home: Path

    def env(self) -> dict[str, str]:
        """The environment of a ``finews`` process that reports to this server."""
        return {**_prefect_env(self.home), "PREFECT_API_URL": self.api_url}


def _prefect_env(home: Path) -> dict[str, str]:
    """This environment without any PREFECT_* setting but a private home (so SQLite there)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def prefect_bin() -> str:
    candidate = Path(sys.executable).parent / "prefect"
    return str(candidate) if candidate.exists() else (shutil.which("prefect") or "prefect")


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM to the process group started with ``proc``; SIGKILL if it does not exit."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def prefect_server(work: Path) -> Iterator[PrefectServer]:
    """Start ``prefect server start`` on a free loopback port with its own PREFECT_HOME (its
    SQLite database lives there), wait for /api/health; stop it on exit."""
    home = work / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cmd = [prefect_bin(), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    print(f"starting prefect {' '.join(cmd[1:])} (PREFECT_HOME={home}) …", flush=True)
    started = time.perf_counter()
    with (work / "prefect-server.log").open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            env=_prefect_env(home),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        server = PrefectServer(proc=proc, api_url=f"http://127.0.0.1:{port}/api", home=home)
        wait_until_serving(f"{server.api_url}/health", proc, timeout=180)
        print(f"prefect server up in {time.perf_counter() - started:.1f} s", flush=True)
        yield server
    finally:
        stop_group(proc)


# --------------------------------------------------------------------------- measurements


def cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Naive:
    """(a) the sequential requests + trafilatura loop."""

    listing_pages: int
    pages: int
    extracted: int
    wall_s: float
    cpu_s: float

    @property
    def rate(self) -> float:
        return self.extracted / self.wall_s


def listed_post_urls(session: requests.Session, base: str, listing: list[str]) -> list[str]:
    """Every post URL linked from the listing pages, in order, without repeats."""
    urls: dict[str, None] = {}
    for path in listing:
        page = session.get(base + path, timeout=30)
        page.raise_for_status()
        for href in _POST_HREF.findall(page.text):
            url = urljoin(base + path, href)
            if urlsplit(url).netloc == urlsplit(base).netloc:
                urls.setdefault(url, None)
    return list(urls)


def run_naive(base: str, listing: list[str], out: Path) -> tuple[Naive, list[str]]:
    """Fetch the listing pages, then each post in turn; extract; write one Parquet file."""
    started, cpu0 = time.perf_counter(), cpu_self()
    rows: dict[str, list[Any]] = {"url": [], "title": [], "date": [], "text": []}
    with requests.Session() as session:
        urls = listed_post_urls(session, base, listing)
        for url in urls:
            response = session.get(url, timeout=30)
            if response.status_code != 200:
                continue
            doc = trafilatura.bare_extraction(response.text, with_metadata=True)
            if doc is None:
                continue
            for key, value in (
                ("url", url),
                ("title", doc.title),
                ("date", doc.date),
                ("text", doc.text),
            ):
                rows[key].append(value)
    pq.write_table(pa.table(rows), out, compression="zstd")
    result = Naive(
        listing_pages=len(listing),
        pages=len(urls),
        extracted=len(rows["url"]),
        wall_s=time.perf_counter() - started,
        cpu_s=cpu_self() - cpu0,
    )
    return result, urls


@dataclass
class Crawl:
    """(b) or (d): one ``finews crawl`` process tree."""

    exit_code: int
    wall_s: float
    elapsed_s: float | None
    cpu_s: float
    peak_tree_rss_mb: float | None
    peak_tree_pss_mb: float | None
    max_proc_rss_mb: float
    peak_procs: int | None
    started_epoch: float
    ended_epoch: float
    stdout: str
    rss_by_process: dict[str, float] = field(default_factory=dict)
    cpu_by_process: dict[str, float] = field(default_factory=dict)
    server_peak_rss_mb: float | None = None
    server_cpu_s: float | None = None
    web_cpu_s: float | None = None
    articles: int = 0
    fetches: dict[str, dict[str, float]] = field(default_factory=dict)

    def rate(self, *, own: bool) -> float:
        """Articles landed per second of wall time, or of the crawl's own ``elapsed``."""
        seconds = self.elapsed_s if own and self.elapsed_s else self.wall_s
        return self.articles / seconds


def finews_bin() -> str:
    candidate = Path(sys.executable).parent / "finews"
    return str(candidate) if candidate.exists() else (shutil.which("finews") or "finews")


class TreeSampler:
    """Polls a process and its descendants: peak summed RSS (and PSS, which counts pages shared
    by forked workers once), peak process count, the largest RSS of each kind of process, and
    each process's CPU seconds (user + system) at the last poll that saw it.

    A child caught between fork and exec still shows its parent's command line and all of its
    parent's (shared) pages; such a child younger than ``FORK_GRACE_S`` is not counted.
    """

    PSS_EVERY = 5  # smaps_rollup is dearer than statm: every 5th poll
    FORK_GRACE_S = 1.0

    def __init__(self, pid: int, *, skip_root: bool) -> None:
        self.root = psutil.Process(pid)
        self.skip_root = skip_root  # the root is /usr/bin/time: count only what it runs
        self.peak_rss = self.peak_pss = self.peak_procs = self.polls = 0
        self.by_kind: dict[str, float] = {}
        self.count_by_kind: dict[str, int] = {}
        self._labels: dict[int, str] = {}
        self._cpu: dict[tuple[int, float], tuple[str, float]] = {}

    def _label(self, args: list[str]) -> str:
        text = " ".join(args)
        known = [label for key, label in _PROCESS_KINDS if key in text]
        return known[0] if known else " ".join(Path(a).name for a in args[:2])[:40]

    def _args(self, proc: Any, now: float) -> list[str] | None:
        """The command line, or None for a zombie or a child still between fork and exec."""
        args = list(proc.cmdline())
        if not args:
            return None
        if now - proc.create_time() < self.FORK_GRACE_S:
            with contextlib.suppress(psutil.Error):
                if args == proc.parent().cmdline():
                    return None
        return args

    def poll(self) -> None:
        try:
            procs = self.root.children(recursive=True)
        except psutil.Error:
            return
        if not self.skip_root:
            procs.insert(0, self.root)
        with_pss = self.polls % self.PSS_EVERY == 0
        self.polls += 1
        now = time.time()
        rss = pss = count = 0
        kinds: dict[str, int] = {}
        for proc in procs:
            try:
                args = self._args(proc, now)
                if args is None:
                    continue
                one = proc.memory_info().rss
                pss += proc.memory_full_info().pss if with_pss else 0
                times = proc.cpu_times()
            except psutil.Error:
                continue
            rss, count = rss + one, count + 1
            label = self._label(args)
            # keyed by (pid, start time): a reused pid is another process
            self._cpu[(proc.pid, proc.create_time())] = (label, times.user + times.system)
            self.by_kind[label] = max(self.by_kind.get(label, 0), one / MB)
            kinds[label] = kinds.get(label, 0) + 1
        for label, number in kinds.items():
            self.count_by_kind[label] = max(self.count_by_kind.get(label, 0), number)
        self.peak_rss, self.peak_procs = max(self.peak_rss, rss), max(self.peak_procs, count)
        self.peak_pss = max(self.peak_pss, pss)

    def cpu_by_kind(self) -> dict[str, float]:
        """CPU seconds per kind of process, each process as of the last poll that saw it."""
        out: dict[str, float] = {}
        for label, seconds in self._cpu.values():
            out[label] = out.get(label, 0.0) + seconds
        return dict(sorted(out.items(), key=lambda item: -item[1]))

    def cpu_total(self) -> float:
        return sum(seconds for _, seconds in self._cpu.values())


def run_finews(args: list[str], work: Path, name: str) -> tuple[int, str]:
    """``finews ARGS`` to completion, output kept; (exit code, stdout)."""
    done = subprocess.run(
        [finews_bin(), *args], cwd=REPO, capture_output=True, text=True, check=False
    )
    (work / f"{name}.out").write_text(done.stdout + done.stderr)
    return done.returncode, done.stdout


def finews_sql(query: str, warehouse: Path, work: Path) -> list[dict[str, Any]]:
    code, out = run_finews(
        ["sql", query, "--warehouse", str(warehouse), "--format", "json"], work, "sql"
    )
    if code != 0:
        log = (work / "sql.out").read_text(errors="replace").strip()[-500:]
        raise RuntimeError(f"finews sql failed ({code}): {query}\n{log}")
    return list(json.loads(out))


def run_crawl(
    base: str,
    warehouse: Path,
    work: Path,
    name: str,
    concurrency: int | None,
    server: PrefectServer | None = None,
    web_pid: int | None = None,
) -> Crawl:
    """Run ``finews crawl`` in its own session, under ``/usr/bin/time`` when there is one;
    poll the tree's RSS (and a dedicated Prefect server's, apart); reap it with wait4."""
    cmd = [finews_bin(), "crawl", "--site", base, "--category", "all"]
    cmd += ["--warehouse", str(warehouse), "--rps", "0"]
    if concurrency is not None:
        cmd += ["--concurrency", str(concurrency)]
    out_path, rss_path = work / f"{name}.out", work / f"{name}.maxrss"
    # A child's ru_maxrss starts from its parent's RSS at fork (here the benchmark, holding
    # every page), so the largest process is measured by GNU time, a small parent.
    timed = Path(GNU_TIME).exists()
    if timed:
        cmd = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd]
    server_sampler = None
    if server is not None and psutil is not None:
        server_sampler = TreeSampler(server.proc.pid, skip_root=False)
        server_sampler.poll()
    server_cpu0 = server_sampler.cpu_total() if server_sampler else None
    web_sampler = None  # nginx serves on the same cores: its CPU is part of the budget
    if web_pid is not None and psutil is not None:
        web_sampler = TreeSampler(web_pid, skip_root=False)
        web_sampler.poll()
    web_cpu0 = web_sampler.cpu_total() if web_sampler else None
    env = server.env() if server is not None else None
    cpu0 = cpu_children()
    started_epoch, started = time.time(), time.perf_counter()
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    sampler = TreeSampler(proc.pid, skip_root=timed) if psutil is not None else None
    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if sampler is not None:
                sampler.poll()
            if server_sampler is not None:
                server_sampler.poll()
            time.sleep(POLL_S)
    finally:
        if proc.returncode is None:  # interrupted: stop the whole tree we started
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            proc.wait()
    wall = time.perf_counter() - started
    if server_sampler is not None:
        server_sampler.poll()
    if web_sampler is not None:
        web_sampler.poll()
    stdout = out_path.read_text(errors="replace")
    match = _ELAPSED.search(stdout)
    max_rss_kib = float(usage.ru_maxrss)  # KiB on Linux
    if timed and rss_path.exists() and rss_path.read_text().split():
        max_rss_kib = float(rss_path.read_text().split()[-1])
    return Crawl(
        exit_code=proc.returncode,
        wall_s=wall,
        elapsed_s=float(match.group(1)) if match else None,
        cpu_s=cpu_children() - cpu0,
        peak_tree_rss_mb=sampler.peak_rss / MB if sampler else None,
        peak_tree_pss_mb=sampler.peak_pss / MB if sampler else None,
        max_proc_rss_mb=max_rss_kib / 1024,  # the largest single process of the tree
        peak_procs=sampler.peak_procs if sampler else None,
        rss_by_process={
            f"{k} ×{sampler.count_by_kind.get(k, 1)}": v for k, v in sorted(sampler.by_kind.items())
        }
        if sampler
        else {},
        cpu_by_process=sampler.cpu_by_kind() if sampler else {},
        server_peak_rss_mb=server_sampler.peak_rss / MB if server_sampler else None,
        server_cpu_s=(
            server_sampler.cpu_total() - server_cpu0
            if server_sampler and server_cpu0 is not None
            else None
        ),
        web_cpu_s=(
            web_sampler.cpu_total() - web_cpu0 if web_sampler and web_cpu0 is not None else None
        ),
        started_epoch=started_epoch,
        ended_epoch=started_epoch + wall,
        stdout=stdout,
    )


def last_run_fetches(warehouse: Path, work: Path) -> dict[str, dict[str, float]]:
    """Per fetch kind of the latest run: count, summed fetch seconds, first and last fetch."""
    rows = finews_sql(
        "SELECT kind, count(*) AS n, sum(elapsed_s) AS fetch_s, "
        "epoch_ms(min(fetched_at)) / 1000.0 AS first, epoch_ms(max(fetched_at)) / 1000.0 AS last "
        "FROM fetch_log WHERE run_id = (SELECT max(run_id) FROM runs) GROUP BY 1 ORDER BY 1",
        warehouse,
        work,
    )
    return {str(row["kind"]): {k: float(v) for k, v in row.items() if k != "kind"} for row in rows}


def count_articles(warehouse: Path, work: Path) -> int:
    return int(finews_sql("SELECT count(*) AS n FROM articles", warehouse, work)[0]["n"])


@dataclass
class ExtractCost:
    """(c) CPU cost of the project's extraction alone, one process, no network."""

    pages: int
    failed: int
    cpu_s: float

    @property
    def per_page(self) -> float:
        return self.cpu_s / self.pages

    @property
    def cpu_limit(self) -> float:
        """Articles per second if every core did nothing but extraction."""
        return (os.cpu_count() or 1) / self.per_page


def run_extraction(
    pages: list[tuple[str, str, str]], site: str, fetched_at: dt.datetime
) -> ExtractCost:
    """Time ``extract_article`` over (url, category, html) already in memory."""
    failed = 0
    cpu0 = time.process_time()
    for url, category, page in pages:
        try:
            extract_article(page, url, fetched_at=fetched_at, category=category, site=site)
        except ExtractionError:
            failed += 1
    return ExtractCost(pages=len(pages), failed=failed, cpu_s=time.process_time() - cpu0)


def read_pages(root: Path, base: str, urls: list[str], category_of: dict[str, str]) -> list[Any]:
    """The post pages behind ``urls``, read from the files nginx serves."""
    pages = []
    for url in urls:
        path = urlsplit(url).path
        text = (root / unquote(path).lstrip("/")).read_text(encoding="utf-8")
        pages.append((base + path, category_of.get(path, ""), text))
    return pages


# --------------------------------------------------------------------------- one size


def info_code(url: str) -> str:
    return Path(urlsplit(url).path).stem.removeprefix("NW")


def bench_size(
    n: int,
    opts: argparse.Namespace,
    tmp: Path,
    notes: list[str],
    server: PrefectServer | None = None,
) -> dict[str, Any]:
    """Every measurement for ``n`` posts; one row of the report."""
    print(f"\n== {n} posts, {opts.categories} categories ==", flush=True)
    clock = time.perf_counter()
    posts = generate_posts(
        n, seed=opts.seed, n_categories=opts.categories, now=DEFAULT_NOW, window_days=WINDOW_DAYS
    )
    site = render_site(posts)
    root = tmp / f"site-{n}"
    files = write_site(site, root)
    days = sorted({p.published_at.astimezone(SHANGHAI).date() for p in posts})
    listing = ["/", *sorted(k for k in site if k.startswith("/category/"))]
    category_of = {p.url_path: p.category for p in posts}
    print(
        f"replica: {files} files ({sum(map(len, site.values())) / MB:.0f} MB), "
        f"{len(listing) - 1} category pages, {len({p.info_code for p in posts})} stories, "
        f"published {days[0]}..{days[-1]} ({len(days)} days), built in "
        f"{time.perf_counter() - clock:.1f} s",
        flush=True,
    )
    del site
    naive: list[Naive] = []
    crawls: list[Crawl] = []
    noops: list[Crawl] = []
    costs: list[ExtractCost] = []
    served = serve_site(lambda: render_site(posts), root, tmp / f"nginx-{n}", opts.server, notes)
    with served as (base, site_server, web_pid):
        print(f"serving {root} on {base} with {site_server}", flush=True)
        pages: list[Any] = []
        for rep in range(opts.repeat):
            work = tmp / f"work-{n}-{rep}"
            work.mkdir()
            a, urls = run_naive(base, listing, work / "naive.parquet")
            naive.append(a)
            print(
                f"[{rep}] (a) naive: {a.extracted}/{a.pages} pages in {a.wall_s:.1f} s "
                f"= {a.rate:.1f}/s, cpu {a.cpu_s:.1f} s",
                flush=True,
            )
            warehouse = work / "warehouse"
            b = run_crawl(base, warehouse, work, "crawl", opts.concurrency, server, web_pid)
            if b.exit_code not in (0, 1):
                tail = "\n".join(b.stdout.strip().splitlines()[-15:])
                raise RuntimeError(f"finews crawl crashed (exit {b.exit_code}):\n{tail}")
            b.articles = count_articles(warehouse, work)
            b.fetches = last_run_fetches(warehouse, work)
            crawls.append(b)
            print(
                f"[{rep}] (b) finews crawl: exit {b.exit_code}, {b.articles} articles, wall "
                f"{b.wall_s:.1f} s, elapsed {b.elapsed_s} s, cpu {b.cpu_s:.1f} s, peak tree RSS "
                f"{_num(b.peak_tree_rss_mb, 0)} MB (PSS {_num(b.peak_tree_pss_mb, 0)} MB, "
                f"{b.peak_procs} procs), max process {b.max_proc_rss_mb:.0f} MB"
                + (
                    f"; Prefect server (apart): peak RSS {_num(b.server_peak_rss_mb, 0)} MB, "
                    f"CPU {_num(b.server_cpu_s)} s"
                    if server is not None
                    else ""
                ),
                flush=True,
            )
            d = run_crawl(base, warehouse, work, "noop", opts.concurrency, server, web_pid)
            d.fetches = last_run_fetches(warehouse, work)
            noops.append(d)
            print(
                f"[{rep}] (d) no-op crawl: wall {d.wall_s:.1f} s, elapsed {d.elapsed_s} s, "
                f"fetches {_kinds(d.fetches)}",
                flush=True,
            )
            if not pages:
                pages = read_pages(root, base, urls, category_of)
            c = run_extraction(pages, base, dt.datetime.now(dt.UTC))
            costs.append(c)
            print(
                f"[{rep}] (c) extract_article: {c.pages} pages ({c.failed} failed), "
                f"{c.per_page * 1000:.2f} ms CPU/page -> CPU limit {c.cpu_limit:.0f}/s",
                flush=True,
            )
            if not opts.keep:
                shutil.rmtree(work, ignore_errors=True)
        expected = len({info_code(u) for u in urls})
    if not opts.keep:
        shutil.rmtree(root, ignore_errors=True)
    row = summarise(n, site_server, naive, crawls, noops, costs, expected)
    row["prefect"] = "dedicated server" if server is not None else "temporary (in finews)"
    return row


def _kinds(fetches: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{kind} {int(v['n'])}" for kind, v in fetches.items()) or "none"


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def phases(crawl: Crawl) -> dict[str, float]:
    """Where the wall time of a crawl went, from the fetch_log timestamps (seconds)."""
    if not crawl.fetches:
        return {}
    first = min(v["first"] for v in crawl.fetches.values())
    last = max(v["last"] for v in crawl.fetches.values())
    out = {
        "start_to_first_fetch_s": first - crawl.started_epoch,
        "first_to_last_fetch_s": last - first,
        "last_fetch_to_exit_s": crawl.ended_epoch - last,
    }
    article = crawl.fetches.get("article")
    if article:
        span = article["last"] - article["first"]
        out["article_phase_s"] = span
        out["article_fetch_s_sum"] = article["fetch_s"]
        out["article_fetch_ms_mean"] = 1000 * article["fetch_s"] / article["n"]
        out["listing_phase_s"] = article["first"] - first
    return out


def cpu_budget(b: Crawl, c: ExtractCost) -> dict[str, float]:
    """CPU ms per landed article by kind of process, with the extraction share split out.

    Extraction itself costs what (c) measured per page; the rest of the workers' CPU is
    fetching, decoding and passing batches back. The ratio extraction ÷ total is the ceiling
    of the efficiency on this machine: the efficiency when every core is busy.
    """
    n = max(b.articles, 1)
    out = {f"{kind} (all)": 1000 * sec / n for kind, sec in b.cpu_by_process.items() if sec}
    workers = out.pop("spawned worker (all)", None)
    if workers is not None:
        out["worker: extraction (c)"] = 1000 * c.per_page
        out["worker: fetch + rest"] = workers - 1000 * c.per_page
    if b.web_cpu_s is not None:
        out["web server"] = 1000 * b.web_cpu_s / n
    if b.server_cpu_s is not None:
        out["Prefect server"] = 1000 * b.server_cpu_s / n
    out = {k: v for k, v in out.items() if v >= 0.005}
    out["total"] = sum(out.values())
    return out


def summarise(
    n: int,
    server: str,
    naive: list[Naive],
    crawls: list[Crawl],
    noops: list[Crawl],
    costs: list[ExtractCost],
    expected: int,
) -> dict[str, Any]:
    """The best of each measurement (peak RSS: the worst) as one flat row."""
    a = min(naive, key=lambda r: r.wall_s)
    b = min(crawls, key=lambda r: r.wall_s)
    d = min(noops, key=lambda r: r.wall_s)
    c = min(costs, key=lambda r: r.cpu_s)
    own = b.elapsed_s is not None
    tree = [r.peak_tree_rss_mb for r in crawls if r.peak_tree_rss_mb is not None]
    pss = [r.peak_tree_pss_mb for r in crawls if r.peak_tree_pss_mb is not None]
    return {
        "posts": n,
        "server": server,
        "naive_pages": a.pages,
        "naive_extracted": a.extracted,
        "naive_wall_s": a.wall_s,
        "naive_rate": a.rate,
        "naive_cpu_s_per_article": a.cpu_s / a.extracted,
        "expected_stories": expected,
        "crawl_exit_codes": [r.exit_code for r in crawls],
        "crawl_articles": b.articles,
        "crawl_wall_s": b.wall_s,
        "crawl_elapsed_s": b.elapsed_s,
        "crawl_startup_s": b.wall_s - b.elapsed_s if own else None,
        "crawl_rate_wall": b.rate(own=False),
        "crawl_rate_elapsed": b.rate(own=True) if own else None,
        "ratio_wall": b.rate(own=False) / a.rate,
        "ratio_elapsed": b.rate(own=True) / a.rate if own else None,
        "crawl_cpu_s": b.cpu_s,
        "crawl_cpu_s_per_article": b.cpu_s / max(b.articles, 1),
        "crawl_cpu_utilisation": b.cpu_s / b.wall_s / (os.cpu_count() or 1),
        "peak_tree_rss_mb": max(tree) if tree else None,
        "peak_tree_pss_mb": max(pss) if pss else None,
        "max_proc_rss_mb": max(r.max_proc_rss_mb for r in crawls),
        "rss_by_process_mb": max(crawls, key=lambda r: r.peak_tree_rss_mb or 0).rss_by_process,
        "cpu_by_process_s": b.cpu_by_process,
        "server_peak_rss_mb": max(
            (r.server_peak_rss_mb for r in crawls if r.server_peak_rss_mb is not None),
            default=None,
        ),
        "server_cpu_s": b.server_cpu_s,
        "noop_server_cpu_s": d.server_cpu_s,
        "web_cpu_s": b.web_cpu_s,
        "cpu_budget_ms_per_article": cpu_budget(b, c),
        "peak_procs": max((r.peak_procs or 0) for r in crawls) or None,
        "crawl_fetches": b.fetches,
        "crawl_phases": phases(b),
        "extract_pages": c.pages,
        "extract_failed": c.failed,
        "extract_cpu_ms_per_page": 1000 * c.per_page,
        "cpu_limit": c.cpu_limit,
        "efficiency_wall": b.rate(own=False) / c.cpu_limit,
        "efficiency_elapsed": b.rate(own=True) / c.cpu_limit if own else None,
        "noop_wall_s": d.wall_s,
        "noop_elapsed_s": d.elapsed_s,
        "noop_share_wall": d.wall_s / b.wall_s,
        "noop_share_elapsed": d.elapsed_s / b.elapsed_s if own and d.elapsed_s else None,
        "noop_article_fetches": max(int(r.fetches.get("article", {}).get("n", 0)) for r in noops),
        "noop_fetches": {k: int(v["n"]) for k, v in d.fetches.items()},
    }


# --------------------------------------------------------------------------- the report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f}%"


def markdown(rows: list[dict[str, Any]]) -> str:
    """One row per size; 'wall / own' pairs are process wall time and the crawl's ``elapsed``."""
    head = [
        "posts",
        "Prefect (server RSS MB)",
        "(a) naive art/s",
        "(b) finews art/s wall / own",
        "b÷a wall / own",
        "CPU limit art/s",
        "efficiency wall / own",
        "CPU s/art (a) / (b)",
        "peak RSS (b) MB: tree / tree PSS / max proc",
        "no-op s (% of full, wall / own)",
        "no-op article fetches",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            f"{r['posts']:,} ({r['naive_extracted']:,} pages / {r['crawl_articles']:,} art.)",
            _prefect_cell(r),
            f"{r['naive_rate']:.0f}",
            f"{r['crawl_rate_wall']:.0f} / {_num(r['crawl_rate_elapsed'], 0)}",
            f"{r['ratio_wall']:.2f} / {_num(r['ratio_elapsed'], 2)}",
            f"{r['cpu_limit']:.0f} ({r['extract_cpu_ms_per_page']:.2f} ms/page)",
            f"{_pct(r['efficiency_wall'])} / {_pct(r['efficiency_elapsed'])}",
            f"{r['naive_cpu_s_per_article'] * 1000:.1f} ms / "
            f"{r['crawl_cpu_s_per_article'] * 1000:.1f} ms",
            f"{_num(r['peak_tree_rss_mb'], 0)} / {_num(r['peak_tree_pss_mb'], 0)} / "
            f"{r['max_proc_rss_mb']:.0f}",
            f"{r['noop_wall_s']:.1f} s ({_pct(r['noop_share_wall'])} / "
            f"{_pct(r['noop_share_elapsed'])})",
            str(r["noop_article_fetches"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _prefect_cell(r: dict[str, Any]) -> str:
    """Which Prefect API the crawls used; a dedicated server's RSS is not in the tree."""
    if r.get("prefect") == "dedicated server":
        return f"dedicated server, not in tree ({_num(r.get('server_peak_rss_mb'), 0)})"
    return "temporary, in tree"


def details(rows: list[dict[str, Any]]) -> str:
    """Wall vs own time, CPU use and fetch_log phases of the full crawl, per size."""
    out = []
    for r in rows:
        ph = r["crawl_phases"]
        out.append(
            f"- {r['posts']:,} posts: (a) {r['naive_wall_s']:.1f} s for {r['naive_pages']:,} "
            f"pages; (b) wall {r['crawl_wall_s']:.1f} s = start-up/shutdown "
            f"{_num(r['crawl_startup_s'])} s + own elapsed {_num(r['crawl_elapsed_s'])} s; "
            f"tree CPU {r['crawl_cpu_s']:.1f} s ({_pct(r['crawl_cpu_utilisation'])} of "
            f"{os.cpu_count()} cores over the wall time), peak {r['peak_procs']} processes; "
            f"exit codes {r['crawl_exit_codes']}; stories expected {r['expected_stories']:,}, "
            f"landed {r['crawl_articles']:,}"
        )
        if ph:
            out.append(
                f"  - fetch_log: process start → first fetch {ph['start_to_first_fetch_s']:.1f} s"
                f", listing {_num(ph.get('listing_phase_s'))} s, article fetch+extract "
                f"{_num(ph.get('article_phase_s'))} s (HTTP time summed over threads "
                f"{_num(ph.get('article_fetch_s_sum'))} s, "
                f"{_num(ph.get('article_fetch_ms_mean'), 2)} ms/page), last fetch → exit "
                f"{ph['last_fetch_to_exit_s']:.1f} s; fetches by kind "
                + ", ".join(f"{k} {int(v['n'])}" for k, v in r["crawl_fetches"].items())
            )
        if r["rss_by_process_mb"]:
            out.append(
                "  - largest RSS of one process of each kind (MB; ×N = most at once): "
                + "; ".join(f"{k} {v:.0f}" for k, v in r["rss_by_process_mb"].items())
            )
        if r.get("cpu_by_process_s"):
            out.append(
                "  - CPU seconds by kind of process (user + system, each process at its last "
                "poll): " + "; ".join(f"{k} {v:.1f}" for k, v in r["cpu_by_process_s"].items())
            )
        if r.get("prefect") == "dedicated server":
            out.append(
                f"  - dedicated Prefect server (not in the tree): peak RSS "
                f"{_num(r.get('server_peak_rss_mb'), 0)} MB, CPU during the full run "
                f"{_num(r.get('server_cpu_s'))} s, during the no-op run "
                f"{_num(r.get('noop_server_cpu_s'))} s"
            )
        if r.get("cpu_budget_ms_per_article"):
            budget = r["cpu_budget_ms_per_article"]
            total = budget["total"]
            out.append(
                "  - CPU per landed article on the machine during the full run (ms; the web "
                "server and a dedicated Prefect server share the cores): "
                + "; ".join(f"{k} {v:.2f}" for k, v in budget.items() if k != "total")
                + f"; total {total:.2f} → at most {os.cpu_count() or 1} ÷ {total:.2f} ms = "
                f"{1000 * (os.cpu_count() or 1) / total:.0f} art/s if every core were busy, "
                f"{r['extract_cpu_ms_per_page'] / total:.0%} of the CPU limit"
            )
        out.append(
            f"  - no-op run: wall {r['noop_wall_s']:.1f} s, own {_num(r['noop_elapsed_s'])} s, "
            f"fetches {r['noop_fetches'] or 'none'}"
        )
    return "\n".join(out)


def targets(rows: list[dict[str, Any]]) -> list[str]:
    """Each target with the measured value and PASS/FAIL."""
    checks: list[str] = []

    def check(name: str, ok: bool, value: str) -> None:
        checks.append(f"- {'PASS' if ok else 'FAIL'} {name}: {value}")

    for r in rows:
        p = f"{r['posts']:,}"
        if r["crawl_articles"] != r["expected_stories"]:
            checks.append(
                f"- WARN at {p}: finews landed {r['crawl_articles']:,} articles but the category "
                f"pages list {r['expected_stories']:,} stories (the rates count what landed)"
            )
        ratio = r["ratio_elapsed"] or r["ratio_wall"]
        check(
            f"b÷a ≥ {TARGETS['ratio']:.0f} at {p} (own elapsed; wall {r['ratio_wall']:.2f})",
            ratio >= TARGETS["ratio"],
            f"{ratio:.2f}",
        )
        eff = r["efficiency_elapsed"] or r["efficiency_wall"]
        check(
            f"efficiency ≥ {_pct(TARGETS['efficiency'])} at {p} (own elapsed; wall "
            f"{_pct(r['efficiency_wall'])})",
            eff >= TARGETS["efficiency"],
            _pct(eff),
        )
        check(
            f"no-op ≤ {_pct(TARGETS['noop_share'])} of the full run at {p} (wall)",
            r["noop_share_wall"] <= TARGETS["noop_share"],
            _pct(r["noop_share_wall"]),
        )
        check(
            f"no-op article fetches = 0 at {p}",
            r["noop_article_fetches"] == TARGETS["noop_article_fetches"],
            str(r["noop_article_fetches"]),
        )
        rss = r["peak_tree_rss_mb"] or r["max_proc_rss_mb"]
        if r["posts"] >= 20_000:
            check(
                f"peak RSS ≤ {TARGETS['rss_mb']:.0f} MB at {p}",
                rss <= TARGETS["rss_mb"],
                f"{rss:.0f}",
            )
    if len(rows) > 1:
        lo, hi = rows[0], rows[-1]
        key = "peak_tree_rss_mb" if lo["peak_tree_rss_mb"] and hi["peak_tree_rss_mb"] else None
        key = key or "max_proc_rss_mb"
        growth = hi[key] / lo[key] - 1
        check(
            f"peak RSS growth {lo['posts']:,} → {hi['posts']:,} < {_pct(TARGETS['rss_growth'])}",
            growth < TARGETS["rss_growth"],
            f"{_pct(growth)} ({lo[key]:.0f} → {hi[key]:.0f} MB)",
        )
    return checks


# --------------------------------------------------------------------------- main


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, action="append", help="posts (repeatable)")
    parser.add_argument("--categories", type=int, default=200, help="categories incl. emnews")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement")
    parser.add_argument("--concurrency", type=int, help="passed to finews crawl")
    parser.add_argument("--server", choices=["auto", "nginx", "python"], default="auto")
    parser.add_argument(
        "--prefect-server",
        action="store_true",
        help="run the crawls against a dedicated `prefect server start` (started and stopped "
        "here) instead of each finews process's temporary server",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    opts = parser.parse_args(argv)
    opts.posts = sorted(set(opts.posts or [5000]))
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    if psutil is None:
        print("psutil not installed: tree RSS not measured (pip install psutil)", flush=True)
    load_start = "/".join(f"{x:.1f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="finews-bench-"))
    tmp.chmod(0o755)  # nginx workers run as an unprivileged user and must read the site
    notes: list[str] = []
    rows: list[dict[str, Any]] = []
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(prefect_server(tmp)) if opts.prefect_server else None
            for n in opts.posts:
                rows.append(bench_size(n, opts, tmp, notes, server))
    except KeyboardInterrupt:
        print("\ninterrupted; servers and crawls stopped", file=sys.stderr)
        return 130
    finally:
        if opts.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    servers = sorted({r["server"] for r in rows})
    load = "/".join(f"{x:.1f}" for x in os.getloadavg())
    mode = (
        "Prefect: a dedicated `prefect server start` (SQLite), started by the script; the crawls "
        "report to it (PREFECT_API_URL), so the tree is the crawl alone"
        if opts.prefect_server
        else "Prefect: each finews process starts its own temporary server (in the tree)"
    )
    header = (
        f"{mode}; os.cpu_count() = {os.cpu_count()}; server: {', '.join(servers)}; "
        f"finews concurrency: "
        f"{opts.concurrency or 'default'}; {opts.categories} categories; best of {opts.repeat}; "
        f"load average at start {load_start}, at end {load}"
    )
    report = [
        "",
        f"## Crawl benchmark ({dt.datetime.now():%Y-%m-%d %H:%M})",
        "",
        header,
        *notes,
        "",
        markdown(rows),
        "",
        "wall = the finews process from start to exit"
        + (
            " (connects to the dedicated Prefect server)"
            if opts.prefect_server
            else " (includes starting and stopping the temporary Prefect server)"
        )
        + "; own = the crawl's own `elapsed` from its summary.",
        "",
        details(rows),
        "",
        "Targets:",
        *targets(rows),
    ]
    print("\n".join(report))
    if opts.json:
        meta = {
            "cpu_count": os.cpu_count(),
            "loadavg_start": load_start,
            "loadavg_end": load,
            "servers": servers,
            "notes": notes,
            "concurrency": opts.concurrency,
            "prefect_server": opts.prefect_server,
            "categories": opts.categories,
            "seed": opts.seed,
            "repeat": opts.repeat,
            "targets": TARGETS,
            "checks": targets(rows),
        }
        opts.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1, default=str))
        print(f"\nwrote {opts.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
