"""The per-host rate limit holds across processes sharing a warehouse, and an unreachable site
is refused up front."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

from tasks.ratelimit import SharedHostRateLimiter

WORKER = """
import sys
import time
from pathlib import Path
from tasks.ratelimit import SharedHostRateLimiter
limiter = SharedHostRateLimiter(float(sys.argv[1]), Path(sys.argv[2]))
for _ in range(int(sys.argv[3])):
    slot = limiter.reserve("example.test")
    time.sleep(max(0.0, slot - time.time()))
    print(slot, flush=True)
"""


def test_two_processes_share_one_schedule(tmp_path: Path) -> None:
    rps, calls = 20.0, 6
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rps), str(tmp_path), str(calls)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    stamps = sorted(
        float(line) for proc in procs for line in proc.communicate(timeout=60)[0].split()
    )
    assert len(stamps) == 2 * calls
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert min(gaps) >= 0.999 / rps, "no two slots closer than 1/rps, whichever process"
    assert stamps[-1] - stamps[0] >= (2 * calls - 1) * 0.999 / rps


def test_unlimited_does_not_wait(tmp_path: Path) -> None:
    limiter = SharedHostRateLimiter(0, tmp_path)
    started = time.monotonic()
    for _ in range(100):
        limiter.wait("example.test")
    assert time.monotonic() - started < 0.5
    assert list(tmp_path.iterdir()) == []


def test_unreachable_site_is_one_line_and_exit_2(tmp_path: Path, cli_env: dict[str, str]) -> None:
    warehouse = tmp_path / "wh"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flows.cli",
            "crawl",
            "--site",
            "http://127.0.0.1:9",
            "--warehouse",
            str(warehouse),
            "--rps",
            "0",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unreachable" in result.stderr
    assert not warehouse.exists(), "nothing written"
