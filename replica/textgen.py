"""Deterministic Chinese financial-news text from the templates in ``replica.vocab``."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from replica import vocab

T = TypeVar("T")

_SLOT = re.compile(r"\{(\w+)\}")
_QUARTERS = ("一季度", "上半年", "前三季度", "全年")
_PERIODS = ("2021年度", "一季度", "上半年", "前三季度")


class TextGen:
    """Fills templates with values drawn from one ``random.Random`` so a seed fixes the text."""

    def __init__(self, rng: random.Random, when: datetime) -> None:
        self.rng = rng
        self.when = when
        self._slots: dict[str, Callable[[], str]] = {
            "date": self._date,
            "index": lambda: self.pick(vocab.INDICES)[0],
            "pct": self._pct,
            "amount": self._amount,
            "more_less": lambda: self.pick(("增加", "减少")),
            "sector": lambda: self.pick(vocab.SECTORS),
            "stock": lambda: self.pick(vocab.STOCKS)[0],
            "org": lambda: self.pick(vocab.ORGS),
            "month": lambda: f"{self.rng.randint(1, 12)}月",
            "indicator": lambda: self.pick(vocab.INDICATORS),
            "up_down": lambda: self.pick(("上升", "下降")),
            "pp": lambda: f"{self.rng.randint(1, 30) / 10:.1f}",
            "period": lambda: self.pick(_PERIODS),
            "buy_sell": lambda: self.pick(("买入", "卖出")),
            "region": lambda: self.pick(vocab.REGIONS),
            "policy": lambda: self.pick(vocab.POLICIES),
            "year": lambda: str(self.when.year + self.rng.randint(0, 3)),
            "goal": lambda: self.pick(vocab.GOALS),
            "factor": lambda: self.pick(vocab.FACTORS),
            "foreign": self._foreign,
            "media": lambda: self.pick(vocab.OUTLETS)[1],
            "project": lambda: self.pick(vocab.PROJECTS),
            "price": lambda: f"{self.rng.uniform(3, 2000):.2f}",
            "person": lambda: self.pick(vocab.PEOPLE),
            "view": lambda: self.pick(vocab.VIEWS),
            "rate": lambda: f"{self.rng.uniform(1.5, 4.5):.2f}",
            "count": lambda: str(self.rng.randint(3, 600)),
            "english_stock": self._english_stock,
            "quarter": lambda: self.pick(_QUARTERS),
            "tech": lambda: self.pick(vocab.TECHS),
            "commodity": lambda: self.pick(vocab.COMMODITIES),
            "fund_house": lambda: self.pick(vocab.FUND_HOUSES),
            "fx": lambda: f"{self.rng.uniform(6.3, 7.3):.4f}",
            "pips": lambda: str(self.rng.randint(5, 400)),
            "policy_goal": lambda: self.pick(vocab.POLICY_GOALS),
            "usd": lambda: f"{self.rng.randint(2, 900)}亿美元",
            "half": lambda: f"{self.rng.randint(2, 9)}成",
            "forum": lambda: self.pick(vocab.FORUMS),
            "dividend": lambda: f"{self.rng.randint(1, 80) / 10:.1f}",
            "title_event": lambda: self.pick(vocab.TITLE_EVENTS),
            "broker": lambda: self.pick(vocab.BROKERS),
        }

    def pick(self, items: tuple[T, ...]) -> T:
        return items[self.rng.randrange(len(items))]

    def fill(self, template: str) -> str:
        return _SLOT.sub(lambda m: self._slots[m.group(1)](), template)

    def sentence(self) -> str:
        return self.fill(self.pick(vocab.SENTENCES))

    def paragraph(self, n_sentences: int) -> str:
        return "".join(self.sentence() for _ in range(n_sentences))

    def title(self, odd: bool = False) -> str:
        return self.fill(self.pick(vocab.ODD_TITLES if odd else vocab.TITLES))

    def subhead(self) -> str:
        return self.pick(vocab.SUBHEADS)

    def one_liner(self) -> str:
        """A flash item under 60 characters, like the shortest real emnews posts."""
        name, ticker = self._english_pair()
        currency = "港元" if ticker.endswith(".HK") else "美元"
        return self.pick(
            (
                f"{name}({ticker})涨超{self._pct()}，现报{self.rng.uniform(5, 500):.2f}"
                f"{currency}。",
                f"{self.pick(vocab.STOCKS)[0]}盘中涨停，成交额{self._amount()}。",
                f"{self.pick(vocab.INDICES)[0]}午间收涨{self._pct()}。",
            )
        )

    def _date(self) -> str:
        return f"{self.when.month}月{self.when.day}日"

    def _pct(self) -> str:
        value = self.rng.uniform(0.1, 15)
        return f"{value:.2f}%" if self.rng.random() < 0.7 else f"{value:.1f}%"

    def _amount(self) -> str:
        if self.rng.random() < 0.8:
            return f"{math.exp(self.rng.uniform(-0.7, 8.5)):.2f}亿元"
        return f"{self.rng.randint(100, 9999)}万元"

    def _foreign(self) -> str:
        cn, en = self.pick(vocab.FOREIGN_FIRMS)
        return f"{cn}（{en}）"

    def _english_pair(self) -> tuple[str, str]:
        return self.pick(vocab.ENGLISH_STOCKS)

    def _english_stock(self) -> str:
        name, ticker = self._english_pair()
        return f"{name}({ticker})"
