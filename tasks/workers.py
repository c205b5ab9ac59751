"""Every core at work: a process pool where batches of posts are fetched and extracted.

Extraction is CPU-bound Python (lxml + trafilatura) and so is much of HTTP handling, so threads
would share one core. Each worker process fetches its batch (its own connection pool; the
per-host rate limit is shared through the warehouse) and extracts it; Articles come back.
Workers are spawned (not forked: the parent runs threads and event loops) and kept for the
process's life.
"""

from __future__ import annotations

import atexit
import datetime as dt
import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

from tasks.decoding import decode_html
from tasks.extraction import ExtractionError, extract_article
from tasks.records import Article


@dataclass(frozen=True, slots=True)
class PageJob:
    """A fetched post page to extract; plain data so it pickles cheaply."""

    content: bytes
    content_type: str | None
    url: str
    fetched_at: dt.datetime
    category: str
    site: str


@dataclass(frozen=True, slots=True)
class JobOutcome:
    article: Article | None
    reason: str | None = None


def run_job(job: PageJob) -> JobOutcome:
    """Decode and extract one page; an ExtractionError or a bug becomes a reason, never a raise."""
    try:
        page = decode_html(job.content, job.content_type)
        return JobOutcome(
            extract_article(
                page, job.url, fetched_at=job.fetched_at, category=job.category, site=job.site
            )
        )
    except ExtractionError as exc:
        return JobOutcome(None, str(exc))
    except Exception as exc:  # an extractor bug on one page is recorded, not fatal
        return JobOutcome(None, f"{type(exc).__name__}: {exc}")


class _InlineExecutor(Executor):
    """Runs jobs in the calling thread: for one worker, tests, and platforms without processes."""

    def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        future: Future[object] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


_pools: dict[int, Executor] = {}
_lock = threading.Lock()


def extraction_workers(requested: int) -> int:
    """0 means one worker per core, plus one to use the time the others wait on the network."""
    return requested if requested > 0 else (os.cpu_count() or 1) + 1


def extraction_pool(requested: int) -> Executor:
    """The shared pool for this process (created on first use, shut down at exit)."""
    workers = extraction_workers(requested)
    with _lock:
        if workers not in _pools:
            if workers == 1:
                _pools[workers] = _InlineExecutor()
            else:
                context = multiprocessing.get_context("spawn")
                _pools[workers] = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        return _pools[workers]


def discard_pool(requested: int) -> None:
    """Forget a broken pool (a worker died) so the next batch gets a fresh one."""
    with _lock:
        pool = _pools.pop(extraction_workers(requested), None)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()
