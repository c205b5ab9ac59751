"""Live checks against the real site: deselected by default (``pytest -m live`` runs them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.crawl import crawl
from flows.runner import run_flow
from tests.quality import boilerplate_in
from warehouse import connect

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("prefect_harness")]


def test_emnews_from_the_real_site(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh"
    report = run_flow(crawl, categories=["emnews"], warehouse=str(warehouse), rps=1)
    assert report["categories_listed"] == 1 and report["new_articles"] > 0
    with connect(warehouse) as connection:
        rows = connection.execute(
            "SELECT body, published_at, published_at_source FROM articles"
        ).fetchall()
    for body, published_at, source in rows:
        assert boilerplate_in(body, "") == []
        assert published_at is not None and source == "page"
