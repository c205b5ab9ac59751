"""Exclusive locks between processes sharing a warehouse (``flock`` on a file in ``.state/``)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, *, busy: Callable[[], Exception] | None = None) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    Waits for it; with ``busy``, raises what ``busy`` returns instead when another process holds
    it. The lock goes with the file descriptor, so a crash releases it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise busy() from None  # type: ignore[misc]  (only non-blocking calls get here)
        yield
    finally:
        os.close(fd)
