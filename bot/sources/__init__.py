"""Paper sources: arXiv announcement feeds, the arXiv API and Hugging Face Daily Papers.

This package owns every network call to a paper source (and is the only user of httpx). The
functions take base URLs as parameters; ``bot/settings.py`` reads ``ARXIV_RSS_URL``,
``ARXIV_API_URL`` and ``HF_API_URL`` and falls back to the ``DEFAULT_*`` constants here.
``fetch_announcements`` returns one ``FetchResult`` per source so one failing source never stops
the other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date

from bot.errors import ConfigError, SourceError
from bot.models import FetchResult, SourceState
from bot.sources.arxiv_api import DEFAULT_ARXIV_API_URL, ApiPage, enrich, fetch_ids, iter_backfill, iter_query
from bot.sources.arxiv_rss import DEFAULT_ARXIV_RSS_URL, fetch_arxiv_rss, parse_announcements
from bot.sources.http import ARXIV_PACER, HF_PACER, HttpClient, Pacer, RetryPolicy, SourceProfile, Timeouts
from bot.sources.huggingface import DEFAULT_HF_API_URL, fetch_daily, parse_daily_papers

__all__ = [
    "ARXIV_PACER",
    "DEFAULT_ARXIV_API_URL",
    "DEFAULT_ARXIV_RSS_URL",
    "DEFAULT_HF_API_URL",
    "HF_PACER",
    "ApiPage",
    "HttpClient",
    "Pacer",
    "RetryPolicy",
    "SourceProfile",
    "Timeouts",
    "enrich",
    "fetch_announcements",
    "fetch_arxiv_rss",
    "fetch_daily",
    "fetch_ids",
    "iter_backfill",
    "iter_query",
    "parse_announcements",
    "parse_daily_papers",
]

log = logging.getLogger(__name__)


def _guarded(source: str, fetch: Callable[[], FetchResult]) -> FetchResult:
    try:
        return fetch()
    except (SourceError, ConfigError) as exc:
        log.warning("%s fetch failed: %s", source, exc)
        return FetchResult(source, SourceState.FAILED, error=str(exc))
    except Exception as exc:  # a bug in one source must not sink the other
        log.exception("%s fetch crashed", source)
        return FetchResult(source, SourceState.FAILED, error=f"{source}: unexpected {type(exc).__name__}: {exc}")


def fetch_announcements(
    *,
    categories: Sequence[str],
    cross_lists: bool = True,
    replacements: bool = False,
    huggingface: bool = True,
    today: date,
    rss_url: str = DEFAULT_ARXIV_RSS_URL,
    hf_url: str = DEFAULT_HF_API_URL,
    client: HttpClient | None = None,
) -> list[FetchResult]:
    """Fetch today's arXiv announcement and HF Daily Papers: ``[arxiv_result, huggingface_result]``.

    A source with nothing configured is ``DISABLED``; a failure becomes ``FAILED`` with the reason.
    """
    http = client or HttpClient()
    try:
        arxiv = (
            _guarded(
                "arxiv",
                lambda: fetch_arxiv_rss(
                    categories, rss_url=rss_url, cross_lists=cross_lists, replacements=replacements, client=http
                ),
            )
            if categories
            else FetchResult("arxiv", SourceState.DISABLED)
        )
        hf = (
            _guarded("huggingface", lambda: fetch_daily(today, hf_url=hf_url, client=http))
            if huggingface
            else FetchResult("huggingface", SourceState.DISABLED)
        )
    finally:
        if client is None:
            http.close()
    return [arxiv, hf]
