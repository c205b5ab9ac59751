"""Which quirks a synthetic post carries. Drawn at random, except that the first stories of a
large enough run are forced through every shape so small sites still exercise all of them."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Shape:
    kind: str = "media"  # media | emnews (digest + HTML) | emnews_old (plain Markdown)
    sep: str = ""  # between <p> blocks in the source: "", "\n " or "\r\n "
    length: str = "normal"  # one | normal | long
    kline: bool = False
    spacer: bool = False
    spans: bool = False
    split_source: bool = False
    subheads: bool = False
    images: bool = False
    english: bool = False
    entities: bool = False
    raw_lt: bool = False
    br: bool = False
    source: str = "zning"  # zning | choice | finance | stock | hk | empty | none
    # none | rel | dot | zning_me | abs_one | abs_two | category | category_two
    backlinks: str = "category"
    twin: bool = False
    odd_title: bool = False
    offset: bool = True


def _choose(rng: random.Random, weights: dict[str, float]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def random_shape(rng: random.Random) -> Shape:
    kind = _choose(rng, {"media": 0.6, "emnews": 0.26, "emnews_old": 0.14})
    roll = rng.random()
    length = "long" if roll < 0.02 else "one" if roll < 0.1 else "normal"
    if kind == "media":
        source = _choose(rng, {"zning": 0.7, "choice": 0.2, "empty": 0.05, "none": 0.05})
        backlinks = _choose(
            rng, {"category": 0.7, "category_two": 0.08, "zning_me": 0.1, "none": 0.12}
        )
    elif kind == "emnews":
        source = _choose(rng, {"finance": 0.7, "stock": 0.15, "hk": 0.07, "empty": 0.08})
        backlinks = _choose(
            rng,
            {
                "abs_one": 0.6,
                "abs_two": 0.08,
                "category": 0.07,
                "zning_me": 0.08,
                "dot": 0.07,
                "none": 0.1,
            },
        )
    else:
        source = _choose(rng, {"finance": 0.6, "stock": 0.25, "hk": 0.15})
        backlinks = _choose(rng, {"rel": 0.6, "dot": 0.15, "none": 0.25})
    html = kind != "emnews_old"
    return Shape(
        kind=kind,
        sep=_choose(rng, {"": 0.5, "\n ": 0.2, "\r\n ": 0.3}) if html else "",
        length=length,
        kline=html and rng.random() < 0.2,
        spacer=html and rng.random() < 0.25,
        spans=rng.random() < {"emnews": 0.6, "media": 0.1}.get(kind, 0.0),
        split_source=html and rng.random() < 0.05,
        subheads=html and rng.random() < 0.25,
        images=html and rng.random() < 0.2,
        english=rng.random() < 0.15,
        entities=html and rng.random() < 0.05,
        raw_lt=not html and rng.random() < 0.2,
        br=html and rng.random() < 0.1,
        source=source,
        backlinks=backlinks,
        twin=kind == "media" and rng.random() < 0.1,
        odd_title=rng.random() < 0.06,
        offset=html and rng.random() < 0.58,
    )


_M = Shape()
_E = Shape(kind="emnews", source="finance", backlinks="abs_one")
_O = Shape(kind="emnews_old", source="finance", backlinks="rel", offset=False)

FORCED: tuple[Shape, ...] = (
    replace(_M, sep="\r\n ", subheads=True, images=True, english=True),
    replace(
        _M,
        sep="\n ",
        source="choice",
        spans=True,
        split_source=True,
        kline=True,
        spacer=True,
        br=True,
    ),
    replace(_M, source="empty", backlinks="zning_me", offset=False),
    replace(_M, source="none", backlinks="none", length="one"),
    replace(_M, length="long", entities=True, english=True, subheads=True, sep="\r\n "),
    replace(_M, twin=True, kline=True, spacer=True),
    replace(_E, spans=True, kline=True, spacer=True, images=True, subheads=True, split_source=True),
    replace(_E, source="stock", backlinks="abs_two", offset=False, sep="\r\n "),
    replace(_E, source="hk", backlinks="category", english=True),
    replace(_O, raw_lt=True),
    replace(_O, backlinks="dot", length="one", source="hk"),
    replace(_O, backlinks="none", source="stock"),
    replace(_E, source="empty", backlinks="zning_me", entities=True),
    replace(_M, odd_title=True, twin=True, offset=False),
    replace(_E, backlinks="dot"),
    replace(_M, backlinks="category_two", sep="\n "),
    replace(_E, backlinks="none", odd_title=True),
    replace(_M, twin=True, source="choice"),
)
