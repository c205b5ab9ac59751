"""A run's plan: which listing pages to ask for, and which posts to fetch.

The lake answers what is already known (a semi-join per listing batch, no id set in memory);
the planner keeps only what this run listed and queued.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import duckdb

from common.links import category_page_url, post_categories, post_date, slug_from_category_url
from common.records import ArticleRef
from flows.run_report import RunReport
from tasks.listing import dedupe_refs
from tasks.planning import ListingCheck, overflowing_groups, stalest
from tasks.settings import Settings
from warehouse.state import CrawlState, category_pages, known_refs

Page = tuple[str, str, str | None]  # (url, kind, category slug)


@dataclass
class Planner:
    """What one run lists and fetches; incremental unless ``full``."""

    settings: Settings
    session: duckdb.DuckDBPyConnection
    report: RunReport
    full: bool = False
    refetch: bool = False
    since: dt.date | None = None
    until: dt.date | None = None
    state: CrawlState = field(default_factory=CrawlState)
    listed: set[str] = field(default_factory=set)
    queued: set[str] = field(default_factory=set)
    found_category_pages: dict[str, str] = field(default_factory=dict)
    overflowing: list[Sequence[ArticleRef]] = field(default_factory=list)
    listing_retries: list[Page] = field(default_factory=list)

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None

    def first_pages(self) -> list[Page]:
        """Home page and feed (and category pages whose last listing failed), or the
        categories asked for."""
        site = self.settings.site
        if self.settings.all_categories:
            home = [(f"{site}/", "home", None), (f"{site}/feed.xml", "feed", None)]
            return home + self.listing_retries
        return [
            (category_page_url(site, slug), "category", slug) for slug in self.settings.categories
        ]

    def validators(self, pages: Iterable[Page]) -> dict[str, tuple[str | None, str | None]]:
        if self.full:
            return {}
        return {
            url: (state.etag, state.last_modified)
            for url, _, _ in pages
            if (state := self.state.listings.get(url)) is not None
        }

    def unlisted(self, pages: Iterable[Page]) -> list[Page]:
        """Pages not listed yet by this run (and now counted as listed)."""
        fresh = [page for page in pages if page[0] not in self.listed]
        self.listed.update(page[0] for page in fresh)
        return fresh

    def note_home(self, groups: list[tuple[str, list[ArticleRef]]]) -> None:
        """Home groups whose oldest post is new: their category page may hold more. Asked of
        the lake now, before this run lands the home page's posts."""
        if self.full:
            return
        known = known_refs(self.session, [refs[-1] for _, refs in groups if refs])
        self.overflowing = [refs for _, refs in overflowing_groups(groups, known.has)]

    def select(self, refs: list[ArticleRef], *, retry: bool = False) -> list[ArticleRef]:
        """Dedupe within the run and against the lake, before fetching anything."""
        unique, _ = dedupe_refs(refs)
        in_range = []
        out_of_range = 0
        for ref in unique:
            day = post_date(ref.url) if self.bounded else None
            if (self.since and day and day < self.since) or (
                self.until and day and day > self.until
            ):
                out_of_range += 1
            elif ref.info_code not in self.queued:
                in_range.append(ref)
        known = known_refs(self.session, in_range) if not self.refetch else None
        selected = []
        for ref in in_range:
            if ref.info_code in self.queued or (known is not None and known.has(ref)):
                continue
            if not retry and not self.refetch and ref.url in self.state.dead_urls:
                continue
            self.queued.add(ref.info_code)
            selected.append(ref)
        self.report.out_of_range += out_of_range
        if not retry:
            self.report.duplicates_skipped += len(refs) - len(selected) - out_of_range
        return selected

    def next_pages(self, refs: list[ArticleRef]) -> list[Page]:
        """Full runs list every category seen; incremental runs only those that may hold news
        (home groups that overflow, a sweep of the stalest category pages)."""
        pages: dict[str, Page] = {}
        if self.full:
            candidates: list[Sequence[ArticleRef]] = [[ref] for ref in refs]
        else:
            candidates = self.overflowing
            checks = {
                url: ListingCheck(url, state.checked_at)
                for url, state in self.state.listings.items()
                if state.kind == "category"
            }
            for url in stalest(checks, self.settings.sweep_fraction, exclude=self.listed):
                pages[url] = (url, "category", self.state.listings[url].category)
            self.overflowing = []
        exact = category_pages(
            self.session,
            [
                ref.url
                for group in candidates
                for ref in group
                if ref.url not in self.found_category_pages
            ],
        )
        for group in candidates:
            page = self._category_page(group, exact)
            if page is not None:
                pages.setdefault(page[0], page)
        return [page for url, page in pages.items() if url not in self.listed]

    def _category_page(self, refs: Sequence[ArticleRef], exact: dict[str, str]) -> Page | None:
        """The exact category page (a back-link of one of these posts) or one guessed from a URL.

        A guess is the URL's lower-cased path, so it misses slugs with capitals: exact links
        are preferred whenever any post of the group carries one.
        """
        for ref in refs:
            link = self.found_category_pages.get(ref.url) or exact.get(ref.url)
            if link:
                return (link, "category", slug_from_category_url(link))
        for ref in refs:
            cats = post_categories(ref.url)
            if cats and len(cats) == 1:
                return (category_page_url(self.settings.site, cats[0]), "category", cats[0])
        return None
