"""Every core at work: a process pool where batches of posts are fetched and extracted.

Extraction is CPU-bound Python (lxml + trafilatura) and so is much of HTTP handling, so threads
would share one core. Each worker process fetches its batch (its own connection pool; the
per-host rate limit is shared through the warehouse) and extracts it; Articles and raw pages
come back and are landed by the caller. Workers are spawned (not forked: the parent runs
threads and event loops) and live while a run uses them.

Workers are kept lean, as a crawl runs several of them: they import only what a batch needs
(no Prefect, pydantic, DuckDB or pyarrow: batches arrive with plain-data settings, the console
script they re-import imports nothing heavy, and Parquet is written by the caller); after each
batch the memory it used is handed back to the OS (glibc's ``malloc_trim``), so an idle worker
sits at its import footprint."""

from __future__ import annotations

import atexit
import functools
import math
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (gives freed heap pages back to the OS), or None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # not glibc
        return None


def release_memory() -> None:
    """Hand memory freed by a finished batch back to the OS (Arrow's pool, then the C heap)."""
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def run_on_worker(fn: Callable[..., T], *args: Any) -> T:
    """Run one batch; on a worker process, release the memory it used afterwards."""
    try:
        return fn(*args)
    finally:
        if multiprocessing.parent_process() is not None:
            release_memory()


def use_system_allocator() -> None:
    """Arrow allocates with the C library's malloc in this process, not its mimalloc pool.

    mimalloc (Arrow's default) keeps freed memory cached: measured ~25 MB more per process
    that landed batches, for the small tables a crawl writes. Arrow reads
    ``ARROW_DEFAULT_MEMORY_POOL`` once, when pyarrow is imported: before that (``finews
    crawl`` before it imports the flows) the variable is set; after it, the
    pool is switched, which spares less (mimalloc has already reserved its first segments).
    An ``ARROW_DEFAULT_MEMORY_POOL`` set by the user is left alone.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" in os.environ:
        return
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is None:
        os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"  # read on Arrow's first allocation
    elif pyarrow.default_memory_pool().backend_name != "system":
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


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
_users = 0
_stopping = threading.Event()


def extraction_workers(requested: int) -> int:
    """0 means one worker per core.

    Not one more: fetching costs little CPU and other batches' threads keep the pool's queue
    full, so a spare worker finds no idle core, only adds memory. On the 2-core development
    machine, ``tests/bench_crawl.py --posts 5000 --prefect-server`` (nginx on loopback, two
    runs each): 2 workers 5.4 and 5.6 s of the crawl's own time, peak tree RSS 392-395 MB;
    3 workers 5.9 and 6.1 s, 476-489 MB.
    """
    return requested if requested > 0 else usable_cores()


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (``taskset``, a container's cpuset),
    capped by a cgroup v2 CPU quota (``docker --cpus``), not every core of the host."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2, or no limit readable
        pass
    return max(1, cores)


def extraction_pool(requested: int) -> Executor:
    """The shared pool for this process (created on first use, shut down at exit)."""
    workers = extraction_workers(requested)
    with _lock:
        if workers not in _pools:
            if workers == 1:
                _pools[workers] = _InlineExecutor()
            else:
                context = multiprocessing.get_context("spawn")
                _pools[workers] = ProcessPoolExecutor(
                    max_workers=workers, mp_context=context, initializer=_leave_interrupts
                )
        return _pools[workers]


def _leave_interrupts() -> None:
    """Ctrl-C reaches the terminal's whole process group: the run decides (``_stop``), so a
    worker does not die of it half way through a batch, with a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def discard_pool(requested: int, broken: Executor) -> None:
    """Forget a broken pool (a worker died) so the next batch gets a fresh one.

    Only ``broken`` itself: every batch that was in flight on it reports the breakage, some
    after another batch has already put a fresh pool in its place.
    """
    key = extraction_workers(requested)
    with _lock:
        if _pools.get(key) is broken:
            del _pools[key]
    broken.shutdown(wait=False, cancel_futures=True)


@contextmanager
def workers_in_use() -> Iterator[None]:
    """Keep the pools while a run fetches; the last run to stop using them shuts them down.

    So a run's worker memory ends with its batches (before the catalog refresh), and an idle
    ``finews serve`` process holds no worker processes between scheduled runs. A run that ends
    in an error or an interrupt (Ctrl-C) stops its workers at once: queued batches are
    cancelled, running ones ended (a batch lands only once it has returned, so its pages are
    simply fetched by the next run), and none is retried on a fresh pool.
    """
    global _users
    with _lock:
        if _users == 0:
            _stopping.clear()
        _users += 1
    failed = True
    try:
        yield
        failed = False
    finally:
        with _lock:
            _users -= 1
            idle = list(_pools.values()) if _users == 0 else []
            if idle:
                _pools.clear()
            if failed and _users == 0:
                _stopping.set()
        for pool in idle:
            if failed:
                _stop(pool)
            else:
                pool.shutdown(wait=True)


def stopping() -> bool:
    """Whether the pools are being stopped after a failed or interrupted run."""
    return _stopping.is_set()


def _stop(pool: Executor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)
    workers = [child for child in multiprocessing.active_children() if child.is_alive()]
    for child in workers:
        child.terminate()
    for child in workers:
        child.join(timeout=5)
    pool.shutdown(wait=True)


@atexit.register
def _shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()
