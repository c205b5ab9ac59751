"""The post body as blocks that yield, from one description, the Markdown source, the HTML the
site's kramdown makes of it, and the text a reader sees, so the three can never disagree.

Rendering rules copied from the site's pages: each top-level element of an HTML block goes on
its own line, comments stay glued to the element after them, whitespace between elements is
dropped, and a blank line follows an HTML block only when another block comes after it.
Markdown text escapes ``& < >``; ``> digest`` becomes a ``<blockquote>``.
"""

from __future__ import annotations

import html
import random
from collections.abc import Sequence
from dataclasses import dataclass

from replica import vocab

SPACER = '<p style="display:none;height:1px;overflow:hidden;"> </p>'
SPACER_BR = '<p style="display:none;height:1px;overflow:hidden;"><br /></p>'
KLINE_START = "<!-- EM_StockImg_Start -->"
KLINE_END = "<!-- EM_StockImg_End -->"
_QUOTE = "http://quote.eastmoney.com/unify/r/"


def html_text(text: str) -> str:
    """Escape reader-visible text for an HTML block (``<…>`` becomes ``&lt;…&gt;``)."""
    return html.escape(text, quote=False)


md_text = html_text  # kramdown escapes exactly & < > in Markdown text


@dataclass(frozen=True)
class Item:
    """One top-level element of an HTML block; ``text`` is None when a reader sees nothing."""

    html: str
    text: str | None = None
    glue_next: bool = False


@dataclass(frozen=True)
class HtmlRun:
    items: tuple[Item, ...]
    sep: str = ""

    def md(self) -> str:
        out = []
        for i, item in enumerate(self.items):
            out.append(item.html)
            if i < len(self.items) - 1 and not item.glue_next:
                out.append(self.sep)
        return "".join(out)

    def html(self) -> str:
        out = []
        for i, item in enumerate(self.items):
            starts_line = i == 0 or (not self.items[i - 1].glue_next and "\n" in self.sep)
            markup_ = item.html
            # A comment that opens a source line is a block of its own; mid-line it stays glued.
            while starts_line and markup_.startswith("<!--") and "-->" in markup_:
                end = markup_.index("-->") + 3
                out.append(markup_[:end] + "\n")
                markup_ = markup_[end:]
            out.append(markup_ + "\n")
        return "".join(out)

    def texts(self) -> list[str]:
        return [item.text for item in self.items if item.text]


@dataclass(frozen=True)
class Digest:
    text: str

    def md(self) -> str:
        return "> " + self.text

    def html(self) -> str:
        return f"<blockquote>\n<p>{md_text(self.text)}</p>\n</blockquote>\n"

    def texts(self) -> list[str]:
        return [self.text]


@dataclass(frozen=True)
class MdPara:
    text: str

    def md(self) -> str:
        return self.text

    def html(self) -> str:
        return f"<p>{md_text(self.text)}</p>\n"

    def texts(self) -> list[str]:
        return [self.text]


@dataclass(frozen=True)
class SourceLink:
    """An autolink ``<url>``; the empty ``<>`` seen on the site renders as escaped text."""

    url: str

    def md(self) -> str:
        return f"<{self.url}>"

    def html(self) -> str:
        if not self.url:
            return "<p>&lt;&gt;</p>\n"
        return f'<p><a href="{self.url}">{self.url}</a></p>\n'

    def texts(self) -> list[str]:
        return []


@dataclass(frozen=True)
class BackLinks:
    links: tuple[tuple[str, str], ...]
    joiner: str  # "\n" (two lines) or "｜" (one line)

    def md(self) -> str:
        return self.joiner.join(f"[{text}]({href})" for text, href in self.links)

    def html(self) -> str:
        inner = self.joiner.join(f'<a href="{href}">{text}</a>' for text, href in self.links)
        return f"<p>{inner}</p>\n"

    def texts(self) -> list[str]:
        return []


Block = HtmlRun | Digest | MdPara | SourceLink | BackLinks


def assemble(blocks: Sequence[Block], *, leading_blank: bool = False) -> tuple[str, str, str]:
    """Return (body_md, body_html, expected_text) for the blocks, in order."""
    body_md = ("\n" if leading_blank else "") + "\n\n".join(b.md() for b in blocks)
    parts = []
    for i, block in enumerate(blocks):
        parts.append(block.html())
        if isinstance(block, HtmlRun) and i < len(blocks) - 1:
            parts.append("\n")
    texts = [t.strip() for b in blocks for t in b.texts()]
    return body_md, "".join(parts), "\n".join(t for t in texts if t)


def _stock_span(name: str, market: str, code: str, rng: random.Random) -> str:
    qid = f"{market}.{code}"
    if rng.random() < 0.35:
        return (
            f'<span web="1" href="{_QUOTE}{qid}" class="em_stock_key_common" '
            f'data-code="{market},{code}">{name}</span>'
        )
    return (
        f'<span id="stock_{qid}"><a href="{_QUOTE}{qid}" class="keytip" '
        f'data-code="{market},{code}">{name}</a></span><span id="quote_{qid}"></span>'
    )


def _board_span(name: str, bk: str, rng: random.Random) -> str:
    if rng.random() < 0.4:
        return (
            f'<span web="1" href="{_QUOTE}90.{bk}" class="em_stock_key_common" '
            f'data-code="90,{bk}">{name}</span>'
        )
    return (
        f'<span id="bk_90.{bk}"><a href="{_QUOTE}90.{bk}" class="keytip" '
        f'data-code="90,{bk}">{name}</a></span><span id="bkquote_90.{bk}"></span>'
    )


def _index_span(name: str, qid: str, info: str) -> str:
    return f'<span id="Info.{info}"><a href="{_QUOTE}{qid}" class="infokey">{name}</a></span>'


def _keywords() -> list[tuple[str, str]]:
    keys = [(name, "stock") for name, _, _ in vocab.STOCKS]
    keys += [(name, "board") for name, _ in vocab.BOARDS]
    keys += [(name, "index") for name, _, _ in vocab.INDICES]
    return keys


_KEYWORDS = _keywords()
_STOCK = {name: (m, c) for name, m, c in vocab.STOCKS}
_BOARD = dict(vocab.BOARDS)
_INDEX = {name: (q, i) for name, q, i in vocab.INDICES}


def _span_for(name: str, kind: str, rng: random.Random) -> str:
    if kind == "stock":
        return _stock_span(name, *_STOCK[name], rng)
    if kind == "board":
        return _board_span(name, _BOARD[name], rng)
    return _index_span(name, *_INDEX[name])


def decorate(escaped: str, rng: random.Random, density: float = 0.6) -> str:
    """Wrap security names in Eastmoney's quote spans, which may split a word (中信<span>证券…)."""
    keys = list(_KEYWORDS)
    rng.shuffle(keys)
    taken: list[tuple[int, int, str]] = []
    for name, kind in keys:
        start = escaped.find(name)
        while start != -1:
            end = start + len(name)
            free = all(end <= s or start >= e for s, e, _ in taken)
            if free and rng.random() < density:
                taken.append((start, end, _span_for(name, kind, rng)))
            start = escaped.find(name, end)
    out, pos = [], 0
    for s, e, span in sorted(taken):
        out.append(escaped[pos:s])
        out.append(span)
        pos = e
    out.append(escaped[pos:])
    return "".join(out)


def board_split(escaped: str, rng: random.Random) -> str:
    """Force one board span inside a longer word, e.g. the outlet name 上海证券报."""
    for name, bk in vocab.BOARDS:
        i = escaped.find(name)
        if i > 0:
            return escaped[:i] + _board_span(name, bk, rng) + escaped[i + len(name) :]
    return escaped


def paragraph(inner: str, text: str, *, br: bool = False, prefix: str = "") -> Item:
    return Item(f"{prefix}<p>{inner}{'<br />' if br else ''}</p>", text)


def subhead(text: str, prefix: str = "") -> Item:
    return Item(f"{prefix}<p><strong>{html_text(text)}</strong></p>", text)


def em_media(inner: str, text: str, prefix: str = "") -> Item:
    return Item(f'{prefix}<p class="em_media">{inner}</p>', text)


def center_image(rng: random.Random, prefix: str = "") -> Item:
    digits = "".join(str(rng.randrange(10)) for _ in range(20))
    w, h = rng.randint(400, 900), rng.randint(250, 820)
    alt = rng.choice(("", ' alt="图片"', ' alt="image"'))
    src = f"https://dfscdn.dfcfw.com/download/D{digits}_w{w}h{h}.jpg"
    style = "border:#d1d1d1 1px solid;padding:3px;margin:5px 0;"
    return Item(f'{prefix}<center><img src="{src}"{alt} style="{style}" /></center>')


def spacer(rng: random.Random, prefix: str = "", glue_next: bool = False) -> Item:
    return Item(prefix + rng.choice((SPACER, SPACER_BR)), None, glue_next)


def kline(rng: random.Random, prefix: str = "") -> Item:
    """A K-line chart block; the caller glues KLINE_END onto the next item, as the feed does."""
    _name, market, code = rng.choice([s for s in vocab.STOCKS if s[1] in ("0", "1", "116")])
    if rng.random() < 0.3:
        _board, code = rng.choice(vocab.BOARDS)
        market = "90"
    qid = f"{market}.{code}"
    token = f"{rng.getrandbits(128):032x}"
    img = (
        f'<img src="https://webquoteklinepic.eastmoney.com/GetPic.aspx?nid={qid}'
        f'&imageType=k&token={token}&at=1" border="0" alt="K图 {code}_0" '
        f'data-code="K {code}|{market}|1" data-code2="K {code}|{market}|2|" '
        f'style="border:#d1d1d1 1px solid;" width="578" height="276" />'
    )
    anchor = (
        f'<a href="{_QUOTE}{qid}" data-code="{code}|{market}|1" data-code2="{code}|{market}|2|" '
        f'class="EmImageRemark" target="_blank">{img}</a>'
    )
    return Item(f'{prefix}{KLINE_START}<p style="text-align:center;">{anchor}</p>', None, True)
