"""The one declared settings model: TOML file < FINEWS_* environment < command-line options.

Settings are loaded once by the command line (or a flow) and passed explicitly to every step,
so a test can build them without touching files or the environment.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from common.links import NETLOC

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "finews.toml"
SLUG_RE = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_CONCURRENCY = 64


class SettingsError(ValueError):
    """A bad setting, already phrased as the one line a user should read."""


class Settings(BaseSettings):
    """Everything a run needs to know; validated before any request is made."""

    model_config = SettingsConfigDict(
        env_prefix="FINEWS_", extra="forbid", frozen=True, validate_default=True
    )

    site: str = "https://finews.withounder.com"
    categories: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["all"])
    rps: float = Field(1.0, ge=0, le=100)
    concurrency: int = Field(4, ge=1, le=MAX_CONCURRENCY)
    batch_size: int = Field(200, ge=1, le=10_000)
    connect_timeout: float = Field(5.0, gt=0, le=300)
    read_timeout: float = Field(20.0, gt=0, le=600)
    max_response_bytes: int = Field(5_000_000, ge=1024, le=1_000_000_000)
    retries: int = Field(3, ge=0, le=10)
    backoff_base: float = Field(0.5, ge=0, le=60)
    backoff_max: float = Field(30.0, ge=0, le=3600)
    extract_workers: int = Field(0, ge=0, le=64)
    sweep_fraction: float = Field(0.05, ge=0, le=1)
    user_agent: str = "finews/0.1 (+https://github.com/finews/finews; news archiving)"
    warehouse: Path = Path("./data/warehouse")
    retention: float = Field(7.0, ge=0, le=3650)  # days of snapshots kept for time travel

    @field_validator("site")
    @classmethod
    def _check_site(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://finews.withounder.com")
        if "@" in parts.netloc:
            raise ValueError("must not carry a user name or password")
        try:
            parts.port  # noqa: B018  (raises on a port out of range)
        except ValueError:
            raise ValueError("has an invalid port") from None
        if not NETLOC.fullmatch(parts.netloc.lower()):
            raise ValueError("has a malformed host (write an internationalised name as xn--…)")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("must be the site's root, such as https://finews.withounder.com")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @field_validator("user_agent")
    @classmethod
    def _check_user_agent(cls, value: str) -> str:
        if not value.strip() or _CONTROL.search(value):
            raise ValueError("must be one line of printable text")
        return value

    @field_validator("categories", mode="before")
    @classmethod
    def _split_categories(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.split(",")]
        return value

    @field_validator("categories")
    @classmethod
    def _check_categories(cls, value: list[str]) -> list[str]:
        cleaned = list(dict.fromkeys(item.strip() for item in value if item.strip()))
        if not cleaned:
            raise ValueError("must name at least one category slug, or 'all'")
        if "all" in cleaned and len(cleaned) > 1:
            raise ValueError("'all' cannot be combined with other slugs")
        for slug in cleaned:
            if not SLUG_RE.match(slug) or slug in (".", ".."):
                raise ValueError(f"{slug!r} is not a category slug")
        return cleaned

    @field_validator("warehouse")
    @classmethod
    def _check_warehouse(cls, value: Path) -> Path:
        try:
            path = value.expanduser()
        except RuntimeError:  # "~someone" with no such user
            raise ValueError("names the home folder of an unknown user") from None
        if path.exists() and not path.is_dir():
            raise ValueError(f"{path} exists and is not a directory")
        return path.resolve()

    @property
    def all_categories(self) -> bool:
        return self.categories == ["all"]

    @property
    def site_netloc(self) -> str:
        return urlsplit(self.site).netloc

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"config file {path} is not UTF-8 text: save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"config file {path} cannot be read: {exc.strerror}") from None


def describe_error(exc: ValidationError) -> str:
    """Turn pydantic's report into one line that names the setting and the fix."""
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    if first["type"] == "extra_forbidden":
        return f"unknown setting {name!r}: remove it or check the spelling"
    got = first.get("input")
    message = first["msg"].removeprefix("Value error, ")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"setting {name!r}: {message}{shown}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the config file, FINEWS_* variables and explicit overrides.

    The file is FINEWS_CONFIG or ``config/finews.toml`` of this checkout when none is given.
    Overrides whose value is None are ignored so callers can pass unset CLI options through.
    """
    if config_file is None and os.environ.get("FINEWS_CONFIG"):
        config_file = Path(os.environ["FINEWS_CONFIG"])
    if config_file is None and DEFAULT_CONFIG.exists():
        config_file = DEFAULT_CONFIG
    file_values = _read_toml(config_file) if config_file is not None else {}
    explicit = {key: value for key, value in overrides.items() if value is not None}
    environment = {name.upper() for name in os.environ}  # read case-insensitively, as pydantic does
    env_names = {name for name in Settings.model_fields if f"FINEWS_{name.upper()}" in environment}
    from_file = {k: v for k, v in file_values.items() if k not in explicit and k not in env_names}
    try:
        return Settings(**from_file, **explicit)
    except ValidationError as exc:
        raise SettingsError(describe_error(exc)) from None
