"""Hugging Face Daily Papers over real sockets to the fake: fixture, merge, bad items and bad bodies."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.errors import FeedFormatError, RateLimitedError, SourceError
from bot.models import Paper, SourceState
from bot.sources import fetch_daily
from bot.sources.http import HttpClient
from tests.fakes.sources import FakeClock, FakeSources, Reply, fast_client, render_hf_daily

DAY = date(2026, 6, 12)


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(clock: FakeClock) -> Iterator[HttpClient]:
    with fast_client(clock) as http:
        yield http


def test_fixture_day_yields_30_papers_with_hf_fields(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_daily(date(2026, 6, 13), hf_url=fake.hf_url, client=client)

    assert result.state is SourceState.OK and result.skipped == 0
    assert len(result.papers) == 30
    paper = next(p for p in result.papers if p.id == "2606.06113")
    assert paper.title == "Where, What, Why, and Importance: Structured Defect Grounding for Text-to-Image Feedback"
    assert paper.abstract.startswith("Despite generating increasingly photorealistic images")
    assert paper.authors[:2] == ("Huaisong Zhang", "Hao Yu") and len(paper.authors) == 10
    assert paper.hf_upvotes == 13 and paper.hf_repo == "https://github.com/nianbai006/SDG"
    assert "defect grounding" in paper.hf_keywords
    assert paper.hf_date == DAY
    assert paper.published == datetime(2026, 6, 4, tzinfo=UTC)
    assert paper.sources == ("huggingface",) and paper.hf_url == "https://huggingface.co/papers/2606.06113"
    assert [r.query["date"] for r in fake.requests] == ["2026-06-13", "2026-06-12"]


def test_today_and_yesterday_are_merged_by_id(fake: FakeSources, client: HttpClient) -> None:
    older = Paper(id="2606.06113", title="Old", abstract="A", hf_upvotes=50, hf_date=date(2026, 6, 11))
    extra = Paper(id="2606.00001", title="Extra", abstract="B", hf_upvotes=1)
    fake.hf_days["2026-06-11"] = render_hf_daily([older, extra], day=date(2026, 6, 11))

    result = fetch_daily(DAY, hf_url=fake.hf_url, client=client)

    assert len(result.papers) == 31
    merged = next(p for p in result.papers if p.id == "2606.06113")
    assert merged.hf_date == DAY and merged.title.startswith("Where, What, Why")
    assert merged.hf_upvotes == 50
    assert next(p for p in result.papers if p.id == "2606.00001").hf_date == date(2026, 6, 11)


def test_two_empty_days_are_no_announcement(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_daily(date(2026, 7, 1), hf_url=fake.hf_url, client=client)

    assert result.state is SourceState.NO_ANNOUNCEMENT and result.papers == ()


def test_items_with_missing_or_null_fields_are_skipped_and_counted(fake: FakeSources, client: HttpClient) -> None:
    def item(**paper: object) -> dict:
        return {"paper": {"id": "2606.00001", "title": "T", "summary": "S", **paper}}

    items = [
        item(id="2606.00001", title=None, authors=None, upvotes="12", githubRepo=None, ai_keywords=None)
        | {"title": "Top-level title"},
        item(id="2606.00002", title="0", summary=None) | {"summary": "Top-level summary"},
        item(id="2606.00003", authors=[None, {"name": None}, {"name": "Grace Hopper"}], upvotes=True),
        item(id="not-an-id"),
        item(id=None),
        item(id="2606.00004", summary=None),
        item(id="2606.00005", title="   "),
        {"paper": None},
        "just a string",
        7,
    ]
    fake.hf_days[DAY.isoformat()] = json.dumps(items).encode()

    result = fetch_daily(DAY, hf_url=fake.hf_url, client=client)

    assert result.state is SourceState.OK
    by_id = {p.id: p for p in result.papers}
    assert sorted(by_id) == ["2606.00001", "2606.00002", "2606.00003"]
    assert result.skipped == 7
    assert by_id["2606.00001"].title == "Top-level title" and by_id["2606.00001"].authors == ()
    assert by_id["2606.00001"].hf_upvotes is None and by_id["2606.00001"].hf_keywords == ()
    assert by_id["2606.00001"].hf_date == DAY  # no submittedOnDailyAt: the requested day
    assert by_id["2606.00002"].title == "0" and by_id["2606.00002"].abstract == "Top-level summary"
    assert by_id["2606.00003"].authors == ("Grace Hopper",) and by_id["2606.00003"].hf_upvotes is None


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (Reply(body=b'{"error": "Invalid date"}'), "expected a JSON array of papers"),
        (Reply(body=b'[{"paper": '), "invalid JSON"),
        (Reply(body=b'[{"paper": {"title": "\xff\xfe"}}]'), "invalid JSON"),
        (Reply.html(200), "got an HTML page instead of JSON for 2026-06-11"),
    ],
    ids=["wrong-shape", "truncated", "bad-encoding", "html"],
)
def test_bad_bodies_fail_the_source_with_nothing_partial(
    fake: FakeSources, client: HttpClient, reply: Reply, message: str
) -> None:
    fake.queue("hf", Reply(body=render_hf_daily([Paper(id="2606.00001", title="T", abstract="A")], day=DAY)), reply)

    with pytest.raises(FeedFormatError, match=f"^huggingface: {message}"):
        fetch_daily(DAY, hf_url=fake.hf_url, client=client)


def test_429_with_ratelimit_header_waits_t_seconds_then_retries(
    fake: FakeSources, client: HttpClient, clock: FakeClock
) -> None:
    fake.queue("hf", Reply.limited(429, ratelimit='"api";r=0;t=55'))

    result = fetch_daily(date(2026, 6, 13), hf_url=fake.hf_url, client=client)

    assert len(result.papers) == 30
    assert [r.query["date"] for r in fake.requests] == ["2026-06-13", "2026-06-13", "2026-06-12"]
    assert 55.0 in clock.sleeps


def test_hf_wait_beyond_the_cap_gives_up(fake: FakeSources, client: HttpClient, clock: FakeClock) -> None:
    fake.queue("hf", Reply.limited(429, retry_after="3600"))

    with pytest.raises(RateLimitedError, match="asks to wait 3600 s"):
        fetch_daily(DAY, hf_url=fake.hf_url, client=client)
    assert len(fake.requests) == 1 and max(clock.sleeps, default=0) < 60


def test_invalid_date_answer_is_a_source_error(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("hf", Reply(400, '{"error":"Invalid date"}'))

    with pytest.raises(SourceError, match="HTTP 400"):
        fetch_daily(DAY, hf_url=fake.hf_url, client=client)
