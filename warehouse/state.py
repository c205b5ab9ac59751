"""What the warehouse already holds, read straight from Parquet (no catalog lock involved)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from warehouse.writer import ensure_layout


@dataclass
class Known:
    """Ids and URLs already landed, and the exact category page each article links back to."""

    info_codes: set[str] = field(default_factory=set)
    urls: set[str] = field(default_factory=set)
    category_pages: dict[str, str] = field(default_factory=dict)

    def has(self, info_code: str, url: str) -> bool:
        return info_code in self.info_codes or url in self.urls


def load_known(root: Path) -> Known:
    ensure_layout(root)
    pattern = str((root / "articles" / "**" / "*.parquet").resolve()).replace("'", "''")
    known = Known()
    with duckdb.connect() as connection:
        rows = connection.execute(
            "SELECT info_code, url, any_value(category_page) FROM read_parquet("
            f"'{pattern}', union_by_name = true, hive_partitioning = false) "
            "GROUP BY info_code, url"
        ).fetchall()
    for info_code, url, category_page in rows:
        known.info_codes.add(info_code)
        known.urls.add(url)
        if category_page:
            known.category_pages[info_code] = category_page
    return known
