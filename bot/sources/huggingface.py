"""Hugging Face Daily Papers (``/api/daily_papers?date=YYYY-MM-DD``): fetch and parse.

A day's list is keyed by the day a paper was added to the Daily page (``paper.submittedOnDailyAt``),
a calendar of its own. We fetch today and yesterday and merge by arXiv id. Optional keys are absent
rather than null in practice, but every field is read defensively: an item without a valid arXiv
id, a title or a summary is skipped and counted, never fatal. A body that is not a JSON array is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from bot.errors import FeedFormatError, SourceError
from bot.models import FetchResult, Paper, SourceState, split_arxiv_id
from bot.sources._xml import MAX_INT, clean, iso_datetime, looks_like_html
from bot.sources.http import HttpClient

SOURCE = "huggingface"
DEFAULT_HF_API_URL = "https://huggingface.co/api/daily_papers"


@dataclass(frozen=True, slots=True)
class DailyPapers:
    papers: tuple[Paper, ...]
    items: int
    skipped: int


def _text(*values: Any) -> str | None:
    """The first value that is a non-blank string (``"0"`` counts: never test truthiness of text)."""
    return next((v for v in values if isinstance(v, str) and v.strip()), None)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _item_paper(item: Any, day: date) -> Paper | None:
    if not isinstance(item, dict) or not isinstance(paper := item.get("paper"), dict):
        return None
    try:
        paper_id = split_arxiv_id(paper["id"])[0] if isinstance(paper.get("id"), str) else ""
    except ValueError:
        return None
    title = clean(_text(paper.get("title"), item.get("title")))
    summary = _text(paper.get("summary"), item.get("summary"))
    if not paper_id or not title or summary is None:
        return None
    authors = _list(paper.get("authors"))
    names = (a.get("name") for a in authors if isinstance(a, dict))
    upvotes = paper.get("upvotes")
    repo = clean(paper.get("githubRepo")) if isinstance(paper.get("githubRepo"), str) else ""
    keywords = _list(paper.get("ai_keywords"))
    daily = iso_datetime(_text(paper.get("submittedOnDailyAt")))
    return Paper(
        id=paper_id,
        title=title,
        abstract=clean(summary),
        authors=tuple(a for a in (clean(n) for n in names if isinstance(n, str)) if a),
        published=iso_datetime(_text(paper.get("publishedAt"))),
        hf_upvotes=upvotes if type(upvotes) is int and 0 <= upvotes <= MAX_INT else None,
        hf_repo=repo if repo.startswith("https://") and " " not in repo else None,
        hf_keywords=tuple(k for k in (clean(k) for k in keywords if isinstance(k, str)) if k),
        hf_date=daily.date() if daily else day,
        sources=(SOURCE,),
    )


def parse_daily_papers(body: bytes, day: date, content_type: str = "") -> DailyPapers:
    """Parse one day's JSON array.

    Raises:
        FeedFormatError: HTML, bad encoding, invalid JSON, or JSON that is not an array.
    """
    if looks_like_html(body, content_type):
        raise FeedFormatError(SOURCE, f"got an HTML page instead of JSON for {day}")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise FeedFormatError(SOURCE, f"invalid JSON for {day}: {type(exc).__name__}: {exc}"[:300]) from exc
    if not isinstance(data, list):
        raise FeedFormatError(SOURCE, f"expected a JSON array of papers for {day}, got {type(data).__name__}")
    papers: dict[str, Paper] = {}
    for item in data:
        paper = _item_paper(item, day)
        if paper is not None:
            papers.setdefault(paper.id, paper)
    return DailyPapers(tuple(papers.values()), len(data), len(data) - len(papers))


def fetch_day(day: date, *, hf_url: str = DEFAULT_HF_API_URL, client: HttpClient) -> DailyPapers:
    url = f"{hf_url}?{urlencode({'date': day.isoformat()})}"
    resp = client.get(SOURCE, url)
    if resp.status != 200:
        raise SourceError(SOURCE, f"HTTP {resp.status} from {url}")
    return parse_daily_papers(resp.body, day, resp.content_type)


def _merge(old: Paper, new: Paper) -> Paper:
    """The later Daily-Papers day wins; upvotes keep the highest count seen."""
    first, last = sorted((old, new), key=lambda p: p.hf_date or date.min)
    votes = [v for v in (old.hf_upvotes, new.hf_upvotes) if v is not None]
    return replace(last, hf_upvotes=max(votes) if votes else None, hf_repo=last.hf_repo or first.hf_repo)


def fetch_daily(today: date, *, hf_url: str = DEFAULT_HF_API_URL, client: HttpClient | None = None) -> FetchResult:
    """Today's and yesterday's Daily Papers merged by id; NO_ANNOUNCEMENT when both days are empty.

    Raises:
        SourceError: either request failed (nothing partial is returned).
    """
    http = client or HttpClient()
    try:
        days = [fetch_day(d, hf_url=hf_url, client=http) for d in (today, today - timedelta(days=1))]
    finally:
        if client is None:
            http.close()
    merged: dict[str, Paper] = {}
    for result in days:
        for paper in result.papers:
            merged[paper.id] = _merge(merged[paper.id], paper) if paper.id in merged else paper
    if not any(d.items for d in days):
        return FetchResult(SOURCE, SourceState.NO_ANNOUNCEMENT, announced=today)
    skipped = sum(d.skipped for d in days)
    return FetchResult(SOURCE, SourceState.OK, tuple(merged.values()), announced=today, skipped=skipped)
