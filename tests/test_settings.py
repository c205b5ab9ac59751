from pathlib import Path

import pytest

from tasks.settings import DEFAULT_CONFIG, SettingsError, load_settings


def test_committed_config_loads() -> None:
    settings = load_settings(DEFAULT_CONFIG)
    assert settings.site == "https://finews.withounder.com"
    assert settings.categories == ["all"]
    assert settings.rps == 1.0


def test_precedence_file_env_option(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "f.toml"
    config.write_text('rps = 2.0\ncategories = ["a"]\nconcurrency = 3\n')
    assert load_settings(config).rps == 2.0
    monkeypatch.setenv("FINEWS_RPS", "5")
    monkeypatch.setenv("FINEWS_CATEGORIES", "b,c")
    settings = load_settings(config)
    assert (settings.rps, settings.categories, settings.concurrency) == (5.0, ["b", "c"], 3)
    assert load_settings(config, rps=0.5).rps == 0.5


def test_a_lower_case_variable_beats_the_file_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Variables are matched case-insensitively (pydantic's reading): ``finews_rps`` is read,
    and wins over the file as ``FINEWS_RPS`` would, not half-read and overruled."""
    config = tmp_path / "f.toml"
    config.write_text("rps = 2.0\n")
    monkeypatch.setenv("finews_rps", "3")
    assert load_settings(config).rps == 3.0
    assert load_settings(config, site="HTTP://Example.COM/").site == "http://example.com"


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"rps": -1}, "'rps'"),
        ({"site": "ftp://x"}, "'site'"),
        ({"categories": ["all", "x"]}, "'categories'"),
        ({"categories": ["../etc"]}, "'categories'"),
        ({"concurrency": 0}, "'concurrency'"),
        ({"bogus": 1}, "unknown setting 'bogus'"),
        ({"site": "https://u:p@127.0.0.1:9"}, "user name or password"),
        ({"site": "https://127.0.0.1:abc"}, "invalid port"),
        ({"site": "https://127.0.0.1:99999"}, "invalid port"),
        ({"site": "https://例子.测试"}, "xn--"),
        ({"site": "https://a%20b.com"}, "malformed host"),
        ({"site": "https://finews.withounder.com/news"}, "site's root"),
        ({"warehouse": "~no-such-user-here/x"}, "unknown user"),
        ({"user_agent": "a\nb"}, "'user_agent'"),
    ],
    ids=[
        "negative-rps",
        "bad-scheme",
        "all-plus-slug",
        "slash-in-slug",
        "zero-workers",
        "unknown",
        "site-credentials",
        "site-port-letters",
        "site-port-range",
        "site-unicode-host",
        "site-escaped-host",
        "site-path",
        "warehouse-unknown-user",
        "user-agent-newline",
    ],
)
def test_bad_values_name_the_setting(overrides: dict[str, object], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(DEFAULT_CONFIG, **overrides)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "f.toml"
    config.write_text("rsp = 1\n")
    with pytest.raises(SettingsError, match="unknown setting 'rsp'"):
        load_settings(config)


def test_warehouse_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SettingsError, match="'warehouse'"):
        load_settings(DEFAULT_CONFIG, warehouse=target)


def test_missing_and_broken_config(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "b.toml"
    broken.write_text("rps = [")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(broken)
    latin = tmp_path / "latin.toml"
    latin.write_bytes('user_agent = "café"\n'.encode("latin-1"))
    with pytest.raises(SettingsError, match="not UTF-8"):
        load_settings(latin)
