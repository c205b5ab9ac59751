"""Scoring helpers shared by the tests and the quality benchmark."""

from __future__ import annotations

from collections import Counter

BOILERPLATE = ("返回首页", "tags:", "金融消息", "(GMT+8", "http://", "https://", '">', "&copy;")


def bigram_f1(got: str, expected: str) -> float:
    """Character-bigram F1 over non-whitespace characters."""
    a = "".join(got.split())
    b = "".join(expected.split())
    grams_a = Counter(a[i : i + 2] for i in range(len(a) - 1))
    grams_b = Counter(b[i : i + 2] for i in range(len(b) - 1))
    if not grams_a and not grams_b:
        return 1.0
    overlap = sum((grams_a & grams_b).values())
    if overlap == 0:
        return 0.0
    precision = overlap / sum(grams_a.values())
    recall = overlap / sum(grams_b.values())
    return 2 * precision * recall / (precision + recall)


def boilerplate_in(body: str, expected: str) -> list[str]:
    """Site chrome found in a body (ignoring snippets the article text itself contains)."""
    return [snippet for snippet in BOILERPLATE if snippet in body and snippet not in expected]
