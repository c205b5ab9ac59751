"""A run's counters: what it listed, fetched, landed and lost, and how it ends."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect.states import Failed, State

from tasks.extraction import EXTRACTOR


@dataclass
class RunReport:
    """The counts a run ends with; printed by the CLI, landed in ``runs``, published to Prefect."""

    run_id: str
    flow: str
    site: str
    categories: list[str]
    warehouse: str
    mode: str
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    elapsed_s: float = 0.0
    categories_listed: int = 0
    pages_fetched: int = 0
    not_modified: int = 0
    refs_seen: int = 0
    new_articles: int = 0
    new_versions: int = 0
    unchanged: int = 0
    duplicates_skipped: int = 0
    out_of_range: int = 0
    retried: int = 0
    failures: int = 0
    commits: int = 0
    commit_retries: int = 0
    failure_reasons: list[str] = field(default_factory=list)
    status: str = "running"

    def summary_row(self) -> dict[str, Any]:
        """The row of the ``runs`` table."""
        return {
            "run_id": self.run_id,
            "flow": self.flow,
            "status": self.status,
            "site": self.site,
            "categories": self.categories,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "elapsed_s": self.elapsed_s,
            "categories_listed": self.categories_listed,
            "pages_fetched": self.pages_fetched,
            "refs_seen": self.refs_seen,
            "new_articles": self.new_articles,
            "new_versions": self.new_versions,
            "duplicates_skipped": self.duplicates_skipped,
            "failures": self.failures,
            "not_modified": self.not_modified,
            "retried": self.retried,
            "extractor": EXTRACTOR,
            "commits": self.commits,
            "commit_retries": self.commit_retries,
        }

    def as_dict(self) -> dict[str, Any]:
        """Plain data (ISO timestamps): the flow's result, the CLI summary, the Prefect report."""
        data = asdict(self)
        data["started_at"] = self.started_at.isoformat()
        data["finished_at"] = self.finished_at.isoformat() if self.finished_at else None
        return data


class PagesFailed(RuntimeError):
    """Some pages of a run failed; everything else landed. Carries the run's report."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(
            f"{report['failures']} page(s) failed (recorded in the failures table); "
            f"{report['new_articles']} new article(s) landed"
        )
        self.report = report


def outcome(report: RunReport) -> dict[str, Any] | State:
    """Runs that lost pages end Failed (data landed, pages listed in the report), not Completed."""
    data = report.as_dict()
    if report.failures:
        error = PagesFailed(data)
        return Failed(message=str(error), data=error)
    return data
