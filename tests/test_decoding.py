"""decode_html picks the right charset once and never guesses into mojibake."""

from __future__ import annotations

import codecs

from hypothesis import given
from hypothesis import strategies as st

from tasks.decoding import declared_charsets, decode_html

TEXT = (
    "<html><head><title>新闻</title></head><body><p>沪深两市收盘：上证指数涨0.5%</p></body></html>"
)


def test_utf8_with_header() -> None:
    assert decode_html(TEXT.encode("utf-8"), "text/html; charset=utf-8") == TEXT


def test_utf8_without_header() -> None:
    assert decode_html(TEXT.encode("utf-8")) == TEXT
    assert decode_html(TEXT.encode("utf-8"), "text/html") == TEXT


def test_header_lying_latin1_on_utf8_bytes() -> None:
    result = decode_html(TEXT.encode("utf-8"), "text/html; charset=ISO-8859-1")
    assert result == TEXT
    assert "æ" not in result


def test_gbk_with_meta_charset() -> None:
    page = '<html><head><meta charset="gbk"></head><body>中文新闻：股市</body></html>'
    assert decode_html(page.encode("gbk")) == page


def test_gbk_with_http_equiv_meta() -> None:
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=gb2312">'
        "</head><body>中文新闻：股市</body></html>"
    )
    assert decode_html(page.encode("gb2312")) == page


def test_gbk_with_header() -> None:
    assert decode_html(TEXT.encode("gbk"), 'text/html; charset="GBK"') == TEXT


def test_gbk_with_gb2312_header_and_characters_beyond_gb2312() -> None:
    # 镕 is in GBK but not in GB2312: servers that say gb2312 usually mean GBK.
    text = "朱镕基讲话"
    assert decode_html(text.encode("gbk"), "text/html; charset=gb2312") == text


def test_gbk_without_declaration_falls_back_to_gb18030() -> None:
    assert decode_html(TEXT.encode("gbk")) == TEXT


def test_gbk_with_lying_latin1_header() -> None:
    result = decode_html(TEXT.encode("gbk"), "text/html; charset=iso-8859-1")
    assert result == TEXT


def test_gb18030_four_byte_characters() -> None:
    text = "吉祥的𠮷字与€符号"
    assert decode_html(text.encode("gb18030")) == text
    assert decode_html(text.encode("gb18030"), "text/html; charset=gb18030") == text


def test_header_beats_meta() -> None:
    page = '<meta charset="big5"><p>中文新闻</p>'
    assert decode_html(page.encode("gbk"), "text/html; charset=gbk") == page


def test_unknown_charset_is_ignored() -> None:
    assert decode_html(TEXT.encode("gbk"), "text/html; charset=no-such-thing") == TEXT
    assert decode_html(TEXT.encode("gbk"), "text/html; charset=base64") == TEXT


def test_bom_utf8() -> None:
    assert decode_html(codecs.BOM_UTF8 + TEXT.encode("utf-8"), "text/html; charset=gbk") == TEXT


def test_bom_utf16() -> None:
    assert decode_html(codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le")) == TEXT
    assert decode_html(codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be")) == TEXT


def test_invalid_bytes_do_not_raise() -> None:
    assert isinstance(decode_html(b"\xfe\xfd" + "新闻".encode() + b"\x80\x81\xff"), str)
    assert decode_html(b"abc\x80", "text/html; charset=utf-8").startswith("abc")


def test_hopeless_bytes_fall_back_to_replacement() -> None:
    result = decode_html(b"ok \xff\xff\xff ok")
    assert result.startswith("ok ")
    assert "\ufffd" in result


def test_control_characters_are_stripped() -> None:
    raw = b"a\x00b\x01c\td\ne\rf\x1fg\x0bh"
    assert decode_html(raw) == "abc\td\ne\rfgh"


def test_empty() -> None:
    assert decode_html(b"") == ""
    assert decode_html(b"", "text/html; charset=gbk") == ""


def test_declared_charsets_order_and_normalisation() -> None:
    html = b'<meta http-equiv="content-type" content="text/html;charset=GB2312">'
    assert declared_charsets(html, "text/html; charset=utf-8") == ["utf-8", "gb18030"]
    assert declared_charsets(b'<meta charset="utf-16">') == []
    assert declared_charsets(b"<p>no meta</p>", None) == []


@given(st.text())
def test_any_utf8_text_roundtrips(text: str) -> None:
    # A leading U+FEFF is a UTF-8 BOM once encoded, and a BOM is consumed, not kept.
    unmarked = text.removeprefix("\ufeff")
    expected = "".join(c for c in unmarked if c in "\t\n\r" or not ("\x00" <= c < "\x20"))
    result = decode_html(text.encode("utf-8"), "text/html; charset=iso-8859-1")
    assert result == expected


@given(st.binary(), st.sampled_from([None, "text/html", "text/html; charset=gbk", "x; charset="]))
def test_arbitrary_bytes_never_raise(raw: bytes, content_type: str | None) -> None:
    result = decode_html(raw, content_type)
    assert isinstance(result, str)
    assert not any("\x00" <= c < "\x20" and c not in "\t\n\r" for c in result)
