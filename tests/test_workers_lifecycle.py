"""Worker processes live while a run uses them, and no longer."""

import os
import subprocess
import sys
import time
from concurrent.futures import BrokenExecutor, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tasks import workers
from tasks.batches import RunStopped, _on_worker

ROOT = Path(__file__).resolve().parent.parent


def test_last_user_shuts_the_pool_and_a_later_run_gets_a_new_one() -> None:
    with workers.workers_in_use():
        first = workers.extraction_pool(2)
        with workers.workers_in_use():  # an overlapping run in the same process
            assert workers.extraction_pool(2) is first
        assert first.submit(os.getpid).result() != os.getpid()  # one run still holds it
    assert workers._pools == {}
    with pytest.raises(RuntimeError):
        first.submit(os.getpid)  # shut down with its last user
    with workers.workers_in_use():
        second = workers.extraction_pool(2)
        assert second is not first and second.submit(os.getpid).result() != os.getpid()
    assert workers._pools == {}


def _die_once(marker: str) -> int:
    """Kill the worker running this the first time (``marker`` exists), as the OOM killer would."""
    if os.path.exists(marker):
        os.unlink(marker)
        os._exit(1)
    time.sleep(0.2)
    return os.getpid()


def _die(_: str) -> int:
    os._exit(1)


def _wait_then_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def test_a_dead_worker_fails_only_a_batch_that_kills_it_twice(tmp_path: Path) -> None:
    """Every batch in flight on the broken pool goes once more on a fresh pool: the innocent
    ones land, and a batch that kills its worker again fails alone."""
    settings: Any = SimpleNamespace(extract_workers=2)
    marker = tmp_path / "die"
    marker.touch()
    with workers.workers_in_use(), ThreadPoolExecutor(max_workers=3) as threads:
        innocent = threads.submit(_on_worker, settings, _wait_then_pid, 1.0)
        time.sleep(0.3)  # the innocent batch is running when the worker dies
        killer = threads.submit(_on_worker, settings, _die_once, str(marker))
        assert innocent.result(timeout=60) > 0
        assert killer.result(timeout=60) > 0
        with pytest.raises(BrokenExecutor):
            _on_worker(settings, _die, "")
        assert _on_worker(settings, _wait_then_pid, 0.0) > 0, "a fresh pool after the failure"


def test_discarding_a_broken_pool_leaves_its_replacement_alone() -> None:
    with workers.workers_in_use():
        broken = workers.extraction_pool(2)
        workers.discard_pool(2, broken)
        fresh = workers.extraction_pool(2)
        workers.discard_pool(2, broken)  # a late report of the same breakage
        assert workers.extraction_pool(2) is fresh
        assert fresh.submit(os.getpid).result() != os.getpid()


def test_one_worker_per_core_this_process_may_use() -> None:
    """``extract_workers = 0`` counts the cores of the process's affinity, not the host's."""
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))});"
        "from tasks.workers import extraction_workers; print(extraction_workers(0))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == "1"
    assert workers.extraction_workers(3) == 3


def test_a_run_that_fails_stops_its_workers_at_once(tmp_path: Path) -> None:
    """Ctrl-C (or any error) in a run: queued batches are cancelled and running ones ended, so
    the run stops now, not after every batch it queued (minutes at one request a second)."""
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), workers.workers_in_use():
        pool = workers.extraction_pool(2)
        assert {pool.submit(_wait_then_pid, 0.3).result() for _ in range(2)}  # workers up
        running = [pool.submit(_wait_then_pid, 30.0) for _ in range(2)]
        while not all(future.running() for future in running):
            time.sleep(0.01)
        queued = [pool.submit(_wait_then_pid, 30.0) for _ in range(4)]
        raise KeyboardInterrupt
    assert time.monotonic() - started < 20
    assert all(future.done() for future in running + queued)
    assert not any(
        future.done() and not future.cancelled() and not future.exception()
        for future in running + queued
    ), "no batch ran to its end"
    assert workers.stopping()
    marker = tmp_path / "die"
    marker.touch()
    with pytest.raises(RunStopped):  # a batch that saw its pool break is not sent again
        _on_worker(SimpleNamespace(extract_workers=2), _die_once, str(marker))
    with workers.workers_in_use():  # the next run starts afresh
        assert not workers.stopping()
        assert workers.extraction_pool(2).submit(os.getpid).result() != os.getpid()
