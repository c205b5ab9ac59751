"""Shared fixtures: one Prefect test harness per session, a replica of the site on loopback."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from replica.posts import Post, generate_posts
from replica.render import render_site
from replica.server import ReplicaServer

REPLICA_POSTS = 120
REPLICA_SEED = 3


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def posts() -> list[Post]:
    return generate_posts(REPLICA_POSTS, seed=REPLICA_SEED)


@pytest.fixture(scope="session")
def site(posts: list[Post]) -> dict[str, bytes]:
    return render_site(posts)


@pytest.fixture
def server(site: dict[str, bytes]) -> Iterator[ReplicaServer]:
    with ReplicaServer(site) as running:
        yield running


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return tmp_path / "warehouse"


@pytest.fixture(scope="session")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ``finews`` subprocesses: a private Prefect home, no telemetry."""
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env.pop("PREFECT_API_URL", None)
    return env
