"""Settings: the one place that reads the YAML config file and the environment.

``load_settings()`` reads ``config/paperboy.yaml`` (or ``$PAPERBOY_CONFIG``), validates every key, and
returns a frozen ``Settings``. A bad file raises ``ConfigError`` naming the file, the line and the key;
all problems found are listed at once. Secrets never live in the YAML: Slack tokens and database URLs
come from the environment only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bot.errors import ConfigError
from bot.settings.validate import DAYS, DEFAULT_DB_PATH, WEEKDAYS, Validator, parse_channels, parse_sources

DEFAULT_CONFIG = Path("config/paperboy.yaml")
PAAS_MARKERS = ("DYNO", "RENDER", "RAILWAY_ENVIRONMENT", "FLY_APP_NAME")

DEFAULT_URLS = {
    "ARXIV_RSS_URL": "https://rss.arxiv.org/rss",
    "ARXIV_API_URL": "https://export.arxiv.org/api/query",
    "HF_API_URL": "https://huggingface.co/api/daily_papers",
    "SLACK_API_URL": "https://slack.com/api/",
}


@dataclass(frozen=True)
class ChannelConfig:
    """One channel's digest subscription."""

    channel: str
    time: time
    days: tuple[str, ...] = WEEKDAYS
    timezone: str = "UTC"
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_papers: int = 10

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(DAYS.index(d) for d in self.days)


@dataclass(frozen=True)
class Settings:
    """Everything the bot is configured with, validated."""

    timezone: str = "UTC"
    categories: tuple[str, ...] = ("cs.CL",)
    cross_lists: bool = True
    replacements: bool = False
    huggingface: bool = True
    channels: tuple[ChannelConfig, ...] = ()
    database_path: str = DEFAULT_DB_PATH
    database_url: str = f"sqlite:///{DEFAULT_DB_PATH}"
    database_from_env: bool = False
    fetch_retry_minutes: int = 120
    urls: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_URLS))
    source_path: Path | None = None

    def channel(self, channel_id: str) -> ChannelConfig | None:
        return next((c for c in self.channels if c.channel == channel_id), None)

    @property
    def arxiv_rss_url(self) -> str:
        return self.urls["ARXIV_RSS_URL"]

    @property
    def arxiv_api_url(self) -> str:
        return self.urls["ARXIV_API_URL"]

    @property
    def hf_api_url(self) -> str:
        return self.urls["HF_API_URL"]

    @property
    def slack_api_url(self) -> str:
        url = self.urls["SLACK_API_URL"]
        return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class SlackTokens:
    bot_token: str
    app_token: str


def config_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get("PAPERBOY_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load and validate the config file; environment values override URLs and the database.

    Raises:
        ConfigError: listing every problem as ``file:line: key: what is wrong``.
    """
    env = os.environ if env is None else env
    cfg_path = Path(path) if path is not None else config_path(env)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{cfg_path}: config file not found (set PAPERBOY_CONFIG or create it)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: cannot read config file: {exc}") from None
    return parse_settings(text, source=str(cfg_path), env=env)


def parse_settings(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(f"{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    v = Validator(source)
    root = v.mapping(node, "", required=False) if node is not None else {}
    settings = _build(v, root, env)
    if v.problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(v.problems))
    assert settings is not None
    return settings


def load_slack_tokens(env: Mapping[str, str] | None = None) -> SlackTokens:
    """Read the Slack tokens from the environment, checking their kind by prefix."""
    env = os.environ if env is None else env
    bot, app = env.get("SLACK_BOT_TOKEN", "").strip(), env.get("SLACK_APP_TOKEN", "").strip()
    problems = []
    if not bot.startswith("xoxb-"):
        problems.append(
            "SLACK_BOT_TOKEN must be set to the bot token (xoxb-…)"
            if not bot
            else "SLACK_BOT_TOKEN is not a bot token (it must start with xoxb-)"
        )
    if not app.startswith("xapp-"):
        problems.append(
            "SLACK_APP_TOKEN must be set to the app-level token (xapp-…)"
            if not app
            else "SLACK_APP_TOKEN is not an app-level token (it must start with xapp-)"
        )
    if problems:
        raise ConfigError("; ".join(problems))
    return SlackTokens(bot_token=bot, app_token=app)


def paas_name(env: Mapping[str, str] | None = None) -> str | None:
    """The PaaS marker variable that is set, if any (these hosts have ephemeral disks)."""
    env = os.environ if env is None else env
    return next((name for name in PAAS_MARKERS if env.get(name)), None)


def _build(self: Validator, root: dict[str, tuple[yaml.Node, yaml.Node]], env: Mapping[str, str]) -> Settings:
    self.unknown(root, "", {"timezone", "sources", "channels", "database", "fetch_retry_minutes"})
    tz = "UTC"
    if "timezone" in root:
        tz = self.zone(root["timezone"][1], "timezone") or "UTC"
    sources = parse_sources(self, root.get("sources"))
    channels = parse_channels(self, root.get("channels"), tz)
    db_path = DEFAULT_DB_PATH
    if "database" in root:
        db = self.mapping(root["database"][1], "database")
        self.unknown(db, "database", {"path"})
        if "path" in db:
            db_path = str(self.scalar(db["path"][1], "database.path") or DEFAULT_DB_PATH)
    retry = 120
    if "fetch_retry_minutes" in root:
        n = self.scalar(root["fetch_retry_minutes"][1], "fetch_retry_minutes")
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 720:
            self.fail(root["fetch_retry_minutes"][1], "fetch_retry_minutes", "must be a whole number from 0 to 720")
        else:
            retry = n
    env_db = env.get("DATABASE_URL", "").strip()
    urls = {name: (env.get(name) or default).strip() for name, default in DEFAULT_URLS.items()}
    return Settings(
        timezone=tz,
        categories=sources.categories,
        cross_lists=sources.cross_lists,
        replacements=sources.replacements,
        huggingface=sources.huggingface,
        channels=tuple(channels),
        database_path=db_path,
        database_url=env_db or f"sqlite:///{db_path}",
        database_from_env=bool(env_db),
        fetch_retry_minutes=retry,
        urls=urls,
        source_path=Path(self.source),
    )
