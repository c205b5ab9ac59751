"""Where a page's real body starts: the site's broken ``<head>`` repeats parts of the page
(links, text, tags) as junk, so anything read from markup is read after the last ``<body>``."""

from __future__ import annotations

import re

_BODY_START = re.compile(r"<body[\s>]", re.IGNORECASE)


def body_start(page: str) -> int:
    """The offset of the last ``<body`` tag, or 0 when the page has none."""
    starts = list(_BODY_START.finditer(page))
    return starts[-1].start() if starts else 0
