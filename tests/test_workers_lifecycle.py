"""Worker processes live while a run uses them, and no longer."""

import os

import pytest

from tasks import workers


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
