"""Frozen records handed from one pipeline step to the next.

Every record that comes from the network carries the time it was fetched, so a row in the
warehouse can always say when its data was seen.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FetchResult:
    """One fetch outcome, successful or not: the unit of the fetch log."""

    url: str
    final_url: str
    status: int | None
    content: bytes
    content_type: str | None
    elapsed_s: float
    attempts: int
    fetched_at: dt.datetime
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    transient: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200

    @property
    def not_modified(self) -> bool:
        return self.error is None and self.status == 304


@dataclass(frozen=True, slots=True)
class ArticleRef:
    """A link to a post found on a listing page (category, home, feed)."""

    url: str
    info_code: str
    info_code_raw: str
    category: str
    listed_on: str


@dataclass(frozen=True, slots=True)
class Article:
    """One extracted post, ready to land as a row of ``articles``."""

    info_code: str
    info_code_raw: str
    url: str
    category: str
    title: str | None
    published_at: dt.datetime | None
    source: str | None
    digest: str | None
    body: str
    source_url: str | None
    content_hash: str
    fetched_at: dt.datetime
    extractor: str
    extraction_path: str
    category_page: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)
    published_at_source: str = "page"


@dataclass(frozen=True, slots=True)
class Failure:
    """A page that could not be turned into an article, with the reason.

    ``transient`` failures (timeouts, resets, 5xx, 429, truncated bodies) go to the retry
    queue and are tried again by later runs; the others are recorded once and left alone.
    """

    url: str
    info_code: str | None
    stage: str
    reason: str
    status: int | None
    failed_at: dt.datetime
    transient: bool = False
    category: str | None = None


@dataclass(frozen=True, slots=True)
class ListingBatch:
    """What a batch of listing pages yielded."""

    refs: tuple[ArticleRef, ...]
    fetches: tuple[tuple[str, FetchResult], ...]
    failures: tuple[Failure, ...]


@dataclass(frozen=True, slots=True)
class ArticleBatch:
    """What a batch of article references yielded: the articles, raw pages, every failure."""

    articles: tuple[Article, ...]
    fetches: tuple[tuple[str, FetchResult], ...]
    failures: tuple[Failure, ...]
    raw_pages: tuple[tuple[ArticleRef, FetchResult], ...] = ()


@dataclass(frozen=True, slots=True)
class LandedBatch:
    """What a batch landed, once committed: counts and back-links travel, not the bodies."""

    new: int  # info_codes the lake did not hold
    replaced: int  # newer versions of info_codes it held
    category_pages: tuple[tuple[str, str], ...]  # (post URL, the category page it links to)
    failures: tuple[Failure, ...]
    fetched: int
