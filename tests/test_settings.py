"""Config loading: the shipped example is valid, and bad files name the file, the line and the key."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.errors import ConfigError
from bot.settings import load_settings, load_slack_tokens, paas_name, parse_settings

REPO = Path(__file__).resolve().parent.parent


def test_shipped_example_is_valid() -> None:
    s = load_settings(REPO / "config" / "paperboy.yaml", env={})
    assert s.categories == ("cs.CL", "cs.IR", "cs.LG")
    assert s.cross_lists is True and s.replacements is False and s.huggingface is True
    (ch,) = s.channels
    assert ch.channel == "C0123456789" and ch.time == time(8, 30) and ch.max_papers == 10
    assert ch.days == ("mon", "tue", "wed", "thu", "fri")
    assert s.database_url == "sqlite:///data/paperboy.db" and not s.database_from_env


def test_env_overrides_database_and_urls() -> None:
    env = {
        "DATABASE_URL": "postgres://u@h/db",
        "ARXIV_RSS_URL": "http://127.0.0.1:1/rss",
        "SLACK_API_URL": "http://x/api",
    }
    s = parse_settings("timezone: UTC\n", env=env)
    assert s.database_url == "postgres://u@h/db" and s.database_from_env
    assert s.arxiv_rss_url == "http://127.0.0.1:1/rss"
    assert s.slack_api_url == "http://x/api/"
    assert s.hf_api_url == "https://huggingface.co/api/daily_papers"


def test_env_var_selects_config_file(tmp_path: Path) -> None:
    path = tmp_path / "other.yaml"
    path.write_text("timezone: America/Los_Angeles\n")
    assert load_settings(env={"PAPERBOY_CONFIG": str(path)}).timezone == "America/Los_Angeles"


def test_defaults_for_channel_fields() -> None:
    s = parse_settings("timezone: Asia/Tokyo\nchannels:\n  - channel: C1ABC\n    time: '7:05'\n", env={})
    (ch,) = s.channels
    assert ch.timezone == "Asia/Tokyo" and ch.days == ("mon", "tue", "wed", "thu", "fri")
    assert ch.time == time(7, 5) and ch.keywords == () and ch.max_papers == 10


def test_unquoted_time_is_understood() -> None:
    # YAML 1.1 reads an unquoted 08:30 as the sexagesimal number 510.
    s = parse_settings("channels:\n  - channel: C1ABC\n    time: 08:30\n", env={})
    assert s.channels[0].time == time(8, 30)


@pytest.mark.parametrize(
    ("text", "line", "key", "words"),
    [
        ("timezone: Mars/Olympus\n", 1, "timezone", "unknown time zone"),
        ("channels:\n  - channel: general\n    time: '08:00'\n", 2, "channels[0].channel", "not a Slack channel id"),
        ("channels:\n  - channel: C1ABC\n    time: '25:00'\n", 3, "channels[0].time", "not a time"),
        ("channels:\n  - channel: C1ABC\n", 2, "channels[0].time", "is required"),
        (
            "channels:\n  - channel: C1ABC\n    time: '08:00'\n    days: [mon, fun]\n",
            4,
            "channels[0].days",
            "not a day",
        ),
        (
            "channels:\n  - channel: C1ABC\n    time: '08:00'\n    max_papers: 0\n",
            4,
            "channels[0].max_papers",
            "1 to 40",
        ),
        (
            "channels:\n  - channel: C1ABC\n    time: '08:00'\n    keyword: [x]\n",
            4,
            "channels[0].keyword",
            "unknown key",
        ),
        (
            "sources:\n  arxiv:\n    categories: [cs.CL, 'not a cat']\n",
            3,
            "sources.arxiv.categories",
            "not an arXiv category",
        ),
        ("sources:\n  arxiv:\n    cross_lists: maybe\n", 3, "sources.arxiv.cross_lists", "true or false"),
        ("slack_bot_token: xoxb-1\n", 1, "slack_bot_token", "secrets do not belong"),
        ("timezone: UTC\ntimezone: UTC\n", 2, "timezone", "given twice"),
    ],
)
def test_bad_config_names_file_line_and_key(tmp_path: Path, text: str, line: int, key: str, words: str) -> None:
    path = tmp_path / "paperboy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(path, env={})
    message = str(err.value)
    assert f"{path}:{line}: {key}: " in message
    assert words in message


def test_all_problems_reported_at_once() -> None:
    text = "timezone: Nowhere/X\nchannels:\n  - channel: bad\n    time: noon\n"
    with pytest.raises(ConfigError) as err:
        parse_settings(text, source="c.yaml", env={})
    assert "c.yaml:1: timezone" in str(err.value)
    assert "c.yaml:3: channels[0].channel" in str(err.value)
    assert "c.yaml:4: channels[0].time" in str(err.value)


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c.yaml:2: invalid YAML"):
        parse_settings("x: 1\ny: a: b\n", source="c.yaml", env={})
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.yaml", env={})


def test_slack_tokens_checked_by_prefix() -> None:
    assert load_slack_tokens({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-2"}).app_token == "xapp-2"
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN must be set"):
        load_slack_tokens({"SLACK_APP_TOKEN": "xapp-2"})
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN is not an app-level token"):
        load_slack_tokens({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"})


def test_paas_detection() -> None:
    assert paas_name({}) is None
    assert paas_name({"DYNO": "worker.1"}) == "DYNO"
    assert paas_name({"FLY_APP_NAME": "pb"}) == "FLY_APP_NAME"
