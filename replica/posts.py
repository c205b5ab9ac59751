"""Synthetic posts shaped like the real site's ``_posts/*.md``, generated from a seed."""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from replica import markup, vocab
from replica.shapes import FORCED, Shape, random_shape
from replica.textgen import TextGen

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_NOW = datetime(2022, 6, 1, 12, 0, 0, tzinfo=SHANGHAI)
SITE = "//finews.withounder.com"
OLD_SITE = "//finews.zning.me"
# News ids grow with time (about 13 a second), anchored on a real id/time pair.
_ID_ANCHOR = datetime(2022, 5, 31, 18, 3, 41, tzinfo=SHANGHAI)
_ID_ANCHOR_COUNTER = 2398034850
# Characters that Markdown (kramdown/GFM) would turn into markup or smart punctuation.
_MD_UNSAFE = re.compile(r"[\"'*_`\[\]\\>&|~$#]|<(?!\d)|\.\.\.|--")


@dataclass(frozen=True)
class Post:
    id_raw: str
    category: str
    tag: str
    title: str
    published_at: datetime
    date_has_offset: bool
    body_md: str
    body_html: str
    expected_text: str
    digest: str | None
    source_name: str | None
    source_url: str | None

    @property
    def url_path(self) -> str:
        """Jekyll's permalink: categories split on spaces and downcased, then the local date."""
        parts = [c.lower() for c in self.category.split()]
        day = self.published_at.astimezone(SHANGHAI).strftime("%Y/%m/%d")
        return "/" + "/".join([*parts, day, self.id_raw]) + ".html"

    @property
    def info_code(self) -> str:
        return self.id_raw.removeprefix("NW")

    @property
    def file_name(self) -> str:
        return f"{self.published_at.astimezone(SHANGHAI):%Y-%m-%d}-{self.id_raw}.md"

    def to_source(self) -> str:
        """The post's ``.md`` file as the site's generator writes it."""
        stamp = f"{self.published_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"
        if self.date_has_offset:
            stamp += " +0800"
        title = self.title.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f'---\nlayout: post\ntitle: "{title}"\ndate: {stamp}\n'
            f"categories: {self.category}\ntags: {self.tag}\n---\n{self.body_md}"
        )


def md_safe(text: str) -> bool:
    return not _MD_UNSAFE.search(text)


def pick_categories(rng: random.Random, n_categories: int) -> list[tuple[str, str]]:
    """``emnews`` plus outlets as (slug, tag); the quirky slugs come first once there is room."""
    n_outlets = max(0, n_categories - 1)
    plain = list(vocab.OUTLETS)
    rng.shuffle(plain)
    chosen = list(vocab.SPECIAL_OUTLETS) if n_categories >= 8 else []
    pool = plain + _city_outlets(rng)
    taken = {slug for slug, _ in chosen}
    for slug, name in pool:
        if len(chosen) >= n_outlets:
            break
        if slug not in taken:
            chosen.append((slug, name))
            taken.add(slug)
    counter = 2
    while len(chosen) < n_outlets:
        base_slug, base_name = pool[len(chosen) % len(pool)]
        chosen.append((f"{base_slug}{counter}", f"{base_name}{counter}"))
        counter += 1
    outlets = [(slug, name + "新闻") for slug, name in chosen[:n_outlets]]
    return [(vocab.EMNEWS_SLUG, vocab.EMNEWS_TAG), *outlets]


def _city_outlets(rng: random.Random) -> list[tuple[str, str]]:
    combos = [(c + k, cn + kn) for c, cn in vocab.CITIES for k, kn in vocab.MEDIA_KINDS]
    rng.shuffle(combos)
    return combos


def _news_counter(when: datetime, rng: random.Random) -> int:
    seconds = (when - _ID_ANCHOR).total_seconds()
    value = _ID_ANCHOR_COUNTER + int(seconds * 13.2) + rng.randrange(13)
    return 1_000_000_000 + (value - 1_000_000_000) % 9_000_000_000


@dataclass
class _Unit:
    """A piece of the story shared by twins; each post renders it (twins differ in spans)."""

    kind: str  # p | sub | img | kline | spacer
    text: str = ""
    html_only: bool = False  # holds characters that only an HTML block carries safely
    br: bool = False
    strong_tail: str = ""
    item: markup.Item | None = None


def _story_units(shape: Shape, tg: TextGen, rng: random.Random) -> list[_Unit]:
    if shape.length == "one":
        return [_Unit("p", tg.one_liner())]
    lo, hi = (300, 3000)
    if shape.length == "long":
        lo, hi = (10_000, 16_000)
    elif shape.kind == "emnews_old":
        lo, hi = (60, 900)  # the early rolling-news items were a paragraph or two
    target = int(math.exp(rng.uniform(math.log(lo), math.log(hi))))
    paras: list[_Unit] = []
    total = 0
    while total < target:
        text = tg.paragraph(rng.randint(1, 5))
        paras.append(_Unit("p", text))
        total += len(text)
    if shape.english:
        extra = tg.fill("{english_stock}盘前涨超{pct}，{foreign}维持其增持评级。")
        paras[-1].text += extra
    if shape.entities:
        target_para = paras[min(1, len(paras) - 1)]
        target_para.text += tg.pick(vocab.ANGLE_SENTENCES) + tg.pick(vocab.AMP_SENTENCES)
        target_para.html_only = True
    if shape.raw_lt:
        paras[-1].text += tg.pick(vocab.LT_SENTENCES)
    if shape.spans:
        lead = tg.fill("截至{date}收盘，{stock}报{price}元，{index}收涨{pct}。")
        paras[0].text = lead + paras[0].text
    for para in paras:
        if rng.random() < 0.08:
            sentence = tg.sentence()
            para.text += sentence
            para.strong_tail = sentence
    if shape.br:
        paras[0].br = True
    units: list[_Unit] = []
    for i, para in enumerate(paras):
        if i > 0 and shape.subheads and (i == 1 or rng.random() < 0.2):
            units.append(_Unit("sub", tg.subhead()))
        units.append(para)
        if shape.images and (i == 0 or rng.random() < 0.15):
            units.append(_Unit("img", item=markup.center_image(rng)))
    if shape.kline:
        units.insert(0, _Unit("kline", item=markup.kline(rng)))
    if shape.spacer:
        units.insert(0, _Unit("spacer", item=markup.spacer(rng, glue_next=shape.kline)))
    return units


def _html_items(units: list[_Unit], decorate: bool, rng: random.Random) -> list[markup.Item]:
    items: list[markup.Item] = []
    prefix = ""
    for unit in units:
        if unit.kind == "p":
            head = unit.text[: len(unit.text) - len(unit.strong_tail)]
            inner = markup.html_text(head)
            if decorate:
                inner = markup.decorate(inner, rng)
            if unit.strong_tail:
                inner += f"<strong>{markup.html_text(unit.strong_tail)}</strong>"
            items.append(markup.paragraph(inner, unit.text, br=unit.br, prefix=prefix))
        elif unit.kind == "sub":
            items.append(markup.subhead(unit.text, prefix=prefix))
        else:
            assert unit.item is not None
            items.append(replace(unit.item, html=prefix + unit.item.html))
        prefix = markup.KLINE_END if unit.kind == "kline" else ""
    return items


def _with_media(
    items: list[markup.Item], source: str, split: bool, rng: random.Random
) -> list[markup.Item]:
    text = f"（文章来源：{source}）"
    inner = markup.html_text(text)
    if split:
        inner = markup.board_split(inner, rng)
    if items:
        items[-1] = replace(items[-1], glue_next=True)
    return [*items, markup.em_media(inner, text)]


def _source_url(shape: Shape, id_raw: str, digits: str, rng: random.Random) -> str | None:
    if shape.source == "none":
        return None
    if shape.source == "empty":
        return ""
    if shape.source in ("zning", "choice"):
        host = "finews.zning.xyz" if shape.source == "zning" else "choicewzp1.eastmoney.com"
        return f"http://{host}/html_News/NewsShare.html?infoCode={id_raw}"
    columns = {"finance": (1353, 1351, 1345, 1354, 11060), "stock": (1611, 1406), "hk": (1533,)}
    column = rng.choice(columns[shape.source])
    return f"http://{shape.source}.eastmoney.com/news/{column},{digits}.html"


def _backlinks(shape: Shape, slug: str, tag: str) -> markup.BackLinks | None:
    mine = "返回" + tag
    emnews = slug == vocab.EMNEWS_SLUG
    cat = f"/category/{quote(slug, safe='')}.html"
    home = ("返回首页", f"{SITE}/")
    variants = {
        "rel": (((mine, "../emnews/"), ("返回首页", "../")), "\n"),
        "dot": (((mine, "./emnews/"), ("返回首页", "./")), "\n"),
        "zning_me": (
            ((mine, OLD_SITE + ("/emnews/" if emnews else cat)), ("返回首页", f"{OLD_SITE}/")),
            "｜",
        ),
        "abs_one": (((mine, f"{SITE}/emnews/"), home), "｜"),
        "abs_two": (((mine, f"{SITE}/emnews/"), home), "\n"),
        "category": (((mine, SITE + cat), home), "｜"),
        "category_two": (((mine, SITE + cat), home), "\n"),
    }
    if shape.backlinks not in variants:
        return None
    links, joiner = variants[shape.backlinks]
    return markup.BackLinks(links, joiner)


def _digest(units: list[_Unit], tg: TextGen, source: str, rng: random.Random) -> str:
    first = next((u for u in units if u.kind == "p"), None)
    text = first.text if first and not first.html_only else ""
    while not text or not md_safe(text):
        text = tg.sentence()
    if rng.random() < 0.5:
        text += f"（{source}）"
    return text


def _make_post(
    shape: Shape,
    *,
    id_raw: str,
    slug: str,
    tag: str,
    title: str,
    when: datetime,
    units: list[_Unit],
    source: str,
    tg: TextGen,
    rng: random.Random,
) -> Post:
    digits = id_raw.removeprefix("NW")
    url = _source_url(shape, id_raw, digits, rng)
    blocks: list[markup.Block] = []
    digest = None
    source_name = None
    if shape.kind == "emnews_old":
        for unit in units:
            if unit.kind == "p":
                text = unit.text if md_safe(unit.text) else tg.sentence()
                blocks.append(markup.MdPara(text))
    else:
        if shape.kind == "emnews":
            digest = _digest(units, tg, source, rng)
            blocks.append(markup.Digest(digest))
        items = _html_items(units, shape.spans, rng)
        items = _with_media(items, source, shape.split_source, rng)
        blocks.append(markup.HtmlRun(tuple(items), shape.sep))
        source_name = source
    if url is not None:
        blocks.append(markup.SourceLink(url))
    back = _backlinks(shape, slug, tag)
    if back is not None:
        blocks.append(back)
    body_md, body_html, expected = markup.assemble(blocks, leading_blank=shape.kind == "emnews_old")
    return Post(
        id_raw=id_raw,
        category=slug,
        tag=tag,
        title=title,
        published_at=when,
        date_has_offset=shape.offset,
        body_md=body_md,
        body_html=body_html,
        expected_text=expected,
        digest=digest,
        source_name=source_name,
        source_url=url or None,
    )


def generate_posts(
    n: int,
    *,
    seed: int = 0,
    n_categories: int = 20,
    now: datetime | None = None,
    window_days: float = 3.0,
) -> list[Post]:
    """``n`` posts (twins count as two) spread over the window ending at ``now``, oldest first.

    The same arguments always give the same posts. With ``n >= 60`` every shape occurs.
    """
    rng = random.Random(f"finews-replica:{seed}")
    end = (now or DEFAULT_NOW).astimezone(SHANGHAI).replace(microsecond=0)
    categories = pick_categories(rng, n_categories)
    outlets = categories[1:]
    uncovered = list(outlets)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(outlets))]
    rng.shuffle(weights)
    forced = FORCED if n >= 60 else ()
    used: set[str] = set()
    posts: list[Post] = []
    story = 0
    while len(posts) < n:
        shape = forced[story] if story < len(forced) else random_shape(rng)
        story += 1
        if not outlets and shape.kind == "media":
            shape = replace(shape, kind="emnews", source="finance", backlinks="abs_one")
        if shape.twin and n - len(posts) < 2:
            shape = replace(shape, twin=False)
        when = end - timedelta(seconds=int(rng.uniform(0, window_days * 86400)))
        counter = _news_counter(when, rng)
        digits = f"{when:%Y%m%d}{counter:010d}"
        while digits in used:
            counter += 1
            digits = f"{when:%Y%m%d}{counter:010d}"
        used.add(digits)
        tg = TextGen(rng, when)
        title = tg.title(odd=shape.odd_title)
        units = _story_units(shape, tg, rng)
        if shape.kind == "media":
            slug, tag = uncovered.pop(0) if uncovered else rng.choices(outlets, weights)[0]
            source = tag.removesuffix("新闻")
            common = dict(slug=slug, tag=tag, title=title, when=when, units=units, tg=tg, rng=rng)
            posts.append(_make_post(shape, id_raw="NW" + digits, source=source, **common))
            if shape.twin:
                twin_shape = replace(
                    shape, kind="emnews", spans=True, source="finance", backlinks="abs_one"
                )
                common.update(slug=vocab.EMNEWS_SLUG, tag=vocab.EMNEWS_TAG)
                posts.append(_make_post(twin_shape, id_raw=digits, source=source, **common))
        else:
            # The split source line seen on the site: （文章来源：上海<span…>证券</span>…报）
            source = tg.pick(
                vocab.SPLITTABLE_SOURCES if shape.split_source else vocab.EMNEWS_SOURCES
            )
            posts.append(
                _make_post(
                    shape,
                    id_raw=digits,
                    slug=vocab.EMNEWS_SLUG,
                    tag=vocab.EMNEWS_TAG,
                    title=title,
                    when=when,
                    units=units,
                    source=source,
                    tg=tg,
                    rng=rng,
                )
            )
    posts.sort(key=lambda p: (p.published_at, p.id_raw))
    return posts
