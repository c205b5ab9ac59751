import pytest

from tasks.identity import (
    canonical_info_code,
    preference,
    raw_id_from_post_url,
    raw_id_from_source_url,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NW202205262391921712", "202205262391921712"),
        ("202205262391921712", "202205262391921712"),
        (" NW202202182281047556 ", "202202182281047556"),
        ("NWabc", None),
        ("", None),
        ("../../etc", None),
        (None, None),
    ],
    ids=["media", "emnews", "spaces", "letters", "empty", "traversal", "none"],
)
def test_canonical_info_code(raw: str | None, expected: str | None) -> None:
    assert canonical_info_code(raw) == expected


def test_both_forms_are_one_article() -> None:
    assert canonical_info_code("NW202205312398034850") == canonical_info_code("202205312398034850")


def test_ids_from_urls() -> None:
    assert raw_id_from_post_url("http://h/emnews/2022/05/31/202205312398034850.html") == (
        "202205312398034850"
    )
    assert raw_id_from_post_url("http://h/a/2022/05/31/NW202205312398034850.html") == (
        "NW202205312398034850"
    )
    assert raw_id_from_post_url("http://h/category/emnews.html") is None
    assert (
        raw_id_from_source_url(
            "http://finews.zning.xyz/html_News/NewsShare.html?infoCode=NW202202182281047556"
        )
        == "NW202202182281047556"
    )
    assert (
        raw_id_from_source_url("http://finance.eastmoney.com/news/1353,202205312398034850.html")
        == "202205312398034850"
    )
    assert raw_id_from_source_url("") is None


def test_the_outlet_form_is_preferred() -> None:
    assert sorted(["202201010000000001", "NW202201010000000001"], key=preference)[0].startswith(
        "NW"
    )
