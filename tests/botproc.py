"""Run the real ``python -m bot`` as a subprocess against the local fakes (end-to-end tests).

``BotProcess`` writes a config file, points every base URL at the fakes (``SLACK_API_URL``,
``ARXIV_RSS_URL``, ``ARXIV_API_URL``, ``HF_API_URL``), starts the worker, and keeps its log so a
failing test shows what the bot said. Helpers build news papers and the RSS/HF bodies to serve.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from bot.models import Paper
from tests.fakes.slack import FakeSlack
from tests.fakes.sources import FakeSources, render_hf_daily, render_rss_feed

REPO = Path(__file__).resolve().parent.parent
ET = ZoneInfo("America/New_York")
CHANNEL = "C0DIGEST1"


def announcement_day() -> date:
    return datetime.now(ET).date()


def news(n: int, *, topic: str = "graph neural network", start: int = 1, day: date | None = None) -> list[Paper]:
    """``n`` papers announced today whose titles contain ``topic`` (so a keyword on it matches them all)."""
    day = day or announcement_day()
    return [
        Paper(
            id=f"2611.{start + i:05d}",
            title=f"A study {start + i} of {topic} methods",
            abstract=f"We propose a new {topic} approach number {start + i} and evaluate it on benchmarks.",
            authors=(f"Author {start + i}", "Second Author"),
            categories=("cs.LG", "cs.AI"),
            version=1,
            announced=day,
            announce_type="new",
            sources=("arxiv",),
        )
        for i in range(n)
    ]


def serve_announcement(sources: FakeSources, papers: Iterable[Paper], cats: str = "cs.LG") -> None:
    sources.rss[cats] = render_rss_feed(list(papers), announced=announcement_day(), cats=cats)


def serve_hf(sources: FakeSources, papers: Iterable[Paper]) -> None:
    today = datetime.now(UTC).date()
    sources.hf_days[today.isoformat()] = render_hf_daily(list(papers), day=today)


def channel_config(
    *,
    channel: str = CHANNEL,
    at: datetime | None = None,
    tz: str = "UTC",
    keywords: Sequence[str] = ("graph neural network",),
    max_papers: int = 5,
) -> dict:
    """A channel entry; ``at`` defaults to one minute ago (so the digest is due at start-up)."""
    local = (at or datetime.now(UTC) - timedelta(minutes=1)).astimezone(ZoneInfo(tz))
    return {
        "channel": channel,
        "time": f"{local:%H:%M}",
        "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        "timezone": tz,
        "keywords": list(keywords),
        "max_papers": max_papers,
    }


class BotProcess:
    """One ``python -m bot`` worker."""

    def __init__(
        self,
        tmp: Path,
        slack: FakeSlack,
        sources: FakeSources,
        *,
        channels: Sequence[dict] = (),
        database_url: str | None = None,
        huggingface: bool = True,
        extra_env: dict[str, str] | None = None,
        name: str = "bot",
    ) -> None:
        self.tmp, self.name = tmp, name
        self.config = tmp / "paperboy.yaml"
        if not self.config.exists() or channels:
            cfg = {
                "timezone": "UTC",
                "sources": {"arxiv": {"categories": ["cs.LG"]}, "huggingface": huggingface},
                "fetch_retry_minutes": 0,
                "channels": list(channels),
            }
            self.config.write_text(yaml.safe_dump(cfg))
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp),
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "PAPERBOY_CONFIG": str(self.config),
            "DATABASE_URL": database_url or f"sqlite:///{tmp / 'paperboy.db'}",
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_APP_TOKEN": slack.app_token,
            "SLACK_API_URL": slack.api_url,
            "ARXIV_RSS_URL": sources.rss_url,
            "ARXIV_API_URL": sources.api_url,
            "HF_API_URL": sources.hf_url,
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }
        self.log_path = tmp / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BotProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot"], cwd=self.tmp, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        wait_for(lambda: text in self.log, timeout, f"{self.name} to log {text!r}", self)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def wait_for(cond: Callable[[], object], timeout: float, what: str, bot: BotProcess | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if bot is not None and bot.proc is not None and bot.proc.poll() is not None:
            raise AssertionError(f"{bot.name} exited ({bot.proc.returncode}) while waiting for {what}:\n{bot.log}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n--- {bot.name} log ---\n{bot.log}" if bot else ""))


def posted_paper_ids(slack: FakeSlack, channel: str) -> list[str]:
    """Every arXiv id linked in the bot's messages of ``channel`` (parents and thread replies), in order."""
    import re

    ids: list[str] = []
    for m in slack.messages(channel):
        text = str(m.get("blocks") or m.get("text"))
        ids += re.findall(r"https://arxiv\.org/abs/(\d{4}\.\d{4,5})\|", text)
    return ids
