"""Source faults at the level of the whole bot (reliability.md T-27 … T-34).

Each test drives the real fetch code over sockets to the fake arXiv/HF server and, where a digest is
involved, the real jobs code (``bot.jobs``) with a real store and the fake Slack, like
``tests/test_jobs.py``. Covered: arXiv 429/503 storms under the real process-wide pacer while a
digest and a backfill run at once; hanging servers; bad bodies (truncated, HTML with status 200, API
``Error`` entries, bad encodings, entity-expansion payloads); the ambiguous "empty" cases (a stale
feed on a weekday versus a real holiday); late papers; and Hugging Face rate limits, schema drift and
failures.

Digest days are pinned to fixed 2026 dates with a fixed clock, so the weekday rules of
``bot.jobs._arxiv_not_out_yet`` do not depend on the day the suite runs.
"""

from __future__ import annotations

import io
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot import cli, jobs
from bot.delivery import SlackDelivery
from bot.errors import SourceError
from bot.jobs import Core, run_due_digests
from bot.models import FetchResult, Paper, SourceState
from bot.search import SearchIndex
from bot.settings import ChannelConfig, Settings
from bot.sources import enrich, fetch_announcements
from bot.sources.http import ARXIV_PACER, HttpClient, Timeouts
from bot.store import Store
from bot.store import digests as dg
from tests.botproc import CHANNEL, news, posted_paper_ids, serve_announcement, serve_hf
from tests.fakes.slack import FakeSlack
from tests.fakes.sources import (
    FakeClock,
    FakeSources,
    Reply,
    api_error_feed,
    fast_client,
    render_api_feed,
    render_hf_daily,
    render_rss_feed,
)

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TUESDAY, WEDNESDAY, HOLIDAY = date(2026, 6, 16), date(2026, 6, 17), date(2026, 6, 19)  # 06-19: arXiv holiday


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.add_channel(CHANNEL, "papers")
        yield fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'paperboy.db'}")
    s.migrate()
    yield s
    s.close()


def channel(at: time = time(0, 0)) -> ChannelConfig:
    return ChannelConfig(
        channel=CHANNEL, time=at, days=EVERY_DAY, timezone="UTC", keywords=("graph neural network",), max_papers=5
    )


def make_core(
    store: Store,
    slack: FakeSlack,
    sources: FakeSources,
    *,
    client: Callable[[], HttpClient] = fast_client,
    retry_minutes: int = 60,
    at: time = time(0, 0),
    huggingface: bool = True,
) -> Core:
    settings = Settings(
        categories=("cs.LG",), channels=(channel(at),), fetch_retry_minutes=retry_minutes, huggingface=huggingface
    )

    def fetcher(today: date) -> list[FetchResult]:
        return fetch_announcements(
            categories=settings.categories,
            huggingface=huggingface,
            today=today,
            rss_url=sources.rss_url,
            hf_url=sources.hf_url,
            client=client(),
        )

    delivery = SlackDelivery(slack.bot_token, base_url=slack.api_url, min_interval=0.0)
    return Core(
        settings=settings,
        store=store,
        index=SearchIndex.from_store(store),
        delivery=delivery,
        fetcher=fetcher,
    )


def at_time(core: Core, when: datetime) -> datetime:
    """Move the core's clock to ``when`` and forget its fetch cache (a new wake-up)."""
    core.clock = lambda: when
    core._fetched = None
    return when


def digests(slack: FakeSlack) -> list[dict]:
    return [m for m in slack.top_level(CHANNEL) if (m.get("metadata") or {}).get("event_type") == jobs.EVENT_TYPE]


def text_of(message: dict) -> str:
    return message["text"] + str(message["blocks"])


def titles(store: Store) -> list[str]:
    return [p.title for p in store.iter_papers()]


# ------------------------------------------------------------------ 1. arXiv 429/503 under the real pacer


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_arxiv_error_burst_keeps_3s_spacing_and_one_connection_across_digest_and_backfill(
    tmp_path: Path, store: Store, slack: FakeSlack, sources: FakeSources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """T-27: 429 x3 (Retry-After 1, then 4, then 1), 503 x2 (Retry-After 1), then success, on the digest's
    RSS fetch, while a CLI backfill pages the API in another thread. Both use the real ``ARXIV_PACER``."""
    announced = news(3)
    serve_announcement(sources, announced)
    backfilled = [
        Paper(
            id=f"2610.{i:05d}",
            title=f"Backfilled {i}",
            abstract="Older paper.",
            categories=("cs.LG",),
            published=datetime(2026, 10, 2, 12, i, tzinfo=UTC),
        )  # fmt: skip
        for i in range(1, 5)
    ]
    sources.api_papers = backfilled
    sources.api_page_cap = 2  # two API pages
    ra = ["1", "4", "1"]
    sources.queue("rss", *[Reply.limited(429, retry_after=s) for s in ra], *[Reply.limited(503, retry_after="1")] * 2)

    core = make_core(store, slack, sources, client=HttpClient, huggingface=False)  # default profiles: ARXIV_PACER
    config = tmp_path / "paperboy.yaml"
    config.write_text("sources:\n  arxiv:\n    categories: [cs.LG]\n  huggingface: false\nchannels: []\n")
    monkeypatch.setenv("PAPERBOY_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", str(store.engine.url))
    monkeypatch.setenv("ARXIV_API_URL", sources.api_url)
    out = io.StringIO()
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def digest() -> None:
        barrier.wait()
        outcomes.append(run_due_digests(core))

    def backfill() -> None:
        barrier.wait()
        outcomes.append(cli.main(["backfill", "--since", "2026-10-01", "--until", "2026-10-03", "--quiet"], out=out))

    threads = [threading.Thread(target=digest), threading.Thread(target=backfill)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(100)
    assert not any(t.is_alive() for t in threads)

    assert 0 in outcomes, out.getvalue()  # the backfill exited 0
    (digest_outcomes,) = [o for o in outcomes if isinstance(o, list)]
    assert [o.state for o in digest_outcomes] == [dg.POSTED]
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in announced)
    assert set(store.get_papers([p.id for p in backfilled])) == {p.id for p in backfilled}

    arxiv = sorted((r for r in sources.requests if r.route in ("rss", "api")), key=lambda r: r.t)
    assert [r.route for r in arxiv].count("rss") == 6 and [r.route for r in arxiv].count("api") == 2
    gaps = [b.t - a.t for a, b in zip(arxiv, arxiv[1:], strict=False)]
    assert min(gaps) >= ARXIV_PACER.min_interval == 3.0, gaps
    assert sources.max_concurrent == 1
    rss = [r for r in arxiv if r.route == "rss"]
    assert rss[2].t - rss[1].t >= 4.0  # Retry-After: 4 is longer than the pacer's interval and is honoured


# ------------------------------------------------------------------ 2. hangs


@pytest.mark.timeout(60)
def test_hanging_arxiv_fails_within_its_timeout_and_the_next_day_is_not_blocked(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    assert Timeouts().connect <= 10 and Timeouts().read <= 60 and Timeouts().total <= 180  # production bounds
    serve_announcement(sources, news(2))
    sources.queue("rss", Reply.hang())
    core = make_core(store, slack, sources, client=lambda: fast_client(read=1.0), retry_minutes=0)
    today = datetime.now(UTC).replace(microsecond=0)
    at_time(core, today)
    done: list[list[jobs.DigestOutcome]] = []
    worker = threading.Thread(target=lambda: done.append(run_due_digests(core, now=today)))
    worker.start()
    worker.join(30)  # bounded: the read timeout (1 s) ends the hang
    assert not worker.is_alive(), "the hanging fetch was not cut by its timeout"
    assert [o.state for o in done[0]] == [dg.SOURCE_FAILED]
    (parent,) = digests(slack)
    assert "arXiv could not be fetched" in text_of(parent) and "timed out" in text_of(parent)
    assert "No new papers match" not in text_of(parent)

    tomorrow = at_time(core, today + timedelta(days=1))
    (outcome,) = run_due_digests(core, now=tomorrow)
    assert outcome.state == dg.POSTED and outcome.posted == 2
    assert len(digests(slack)) == 2


@pytest.mark.timeout(60)
def test_hanging_hf_still_posts_arxiv_and_names_hf(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    serve_announcement(sources, news(3))
    sources.queue("hf", Reply.hang())
    core = make_core(store, slack, sources, client=lambda: fast_client(read=1.0))
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED and outcome.posted == 3
    (parent,) = digests(slack)
    assert "Hugging Face could not be fetched" in text_of(parent) and "timed out" in text_of(parent)


# ------------------------------------------------------------------ 3. bad bodies

_GOOD = render_rss_feed(news(3), announced=WEDNESDAY, cats="cs.LG")
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>&lol3;</title>
<guid>oai:arXiv.org:2611.00001v1</guid><description>arXiv:2611.00001v1 Announce Type: new
Abstract: &lol3;</description></item></channel></rss>
"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><item><title>&xxe;</title><guid>oai:arXiv.org:2611.00001v1</guid>
<description>arXiv:2611.00001v1 Announce Type: new
Abstract: x</description></item></channel></rss>
"""
BAD_RSS = {
    "truncated XML": Reply(body=_GOOD[: len(_GOOD) // 2]),
    "connection cut mid-body": Reply.truncated(_GOOD),
    "HTML page with status 200": Reply.html(200),
    "invalid UTF-8": Reply(body=_GOOD.replace(b"A study 1 ", b"A study \xff\xfe ")),
    "unknown declared encoding": Reply(body=_GOOD.replace(b"encoding='UTF-8'", b"encoding='U-F-8'")),
    "billion laughs": Reply(body=BILLION_LAUGHS),
    "external entity": Reply(body=XXE),
}


@pytest.mark.parametrize("fault", list(BAD_RSS))
def test_bad_rss_body_stores_nothing_and_the_digest_says_arxiv_failed(
    fault: str, store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    store.upsert_papers(news(2, start=900))  # something already stored: the count must not move
    before = store.count_papers()
    sources.rss["cs.LG"] = _GOOD
    sources.queue("rss", *[BAD_RSS[fault]] * 6)  # every retry sees the same fault
    core = make_core(store, slack, sources, retry_minutes=0)
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.SOURCE_FAILED
    assert store.count_papers() == before
    assert not any("lol" in t or "root:" in t for t in titles(store))  # no entity was ever expanded
    (parent,) = digests(slack)
    assert "arXiv could not be fetched" in text_of(parent) and "No new papers match" not in text_of(parent)


def test_bom_before_the_xml_declaration_is_accepted(store: Store, slack: FakeSlack, sources: FakeSources) -> None:
    sources.rss["cs.LG"] = b"\xef\xbb\xbf" + render_rss_feed(news(2), announced=WEDNESDAY, cats="cs.LG")
    results = jobs.refresh(make_core(store, slack, sources))
    assert results[0].state is SourceState.OK and store.count_papers() == 2


API_FAULTS = {
    "Error entry, HTTP 400": Reply(400, api_error_feed("incorrect id format for abc")),
    "Error entry, HTTP 200 (pre-2026 API)": Reply(200, api_error_feed("start must be an integer")),
    "HTML page with status 200": Reply.html(200),
    "truncated Atom": Reply(body=render_api_feed(news(2))[:300]),
    "billion laughs": Reply(body=BILLION_LAUGHS.replace(b"rss", b"feed")),
}


@pytest.mark.parametrize("fault", list(API_FAULTS))
def test_bad_api_page_fails_the_backfill_in_one_line_and_stores_nothing_from_it(
    fault: str, tmp_path: Path, store: Store, sources: FakeSources, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sources.api_papers = [
        Paper(id=f"2610.{i:05d}", title=f"Good {i}", abstract="a", categories=("cs.LG",),
              published=datetime(2026, 10, 2, 12, i, tzinfo=UTC))
        for i in range(1, 5)
    ]  # fmt: skip
    sources.api_page_cap = 2
    sources.queue("api", Reply(body=None))  # the first page is fine ...
    sources.queue("api", *[API_FAULTS[fault]] * 6)  # ... the second is broken, on every retry
    config = tmp_path / "paperboy.yaml"
    config.write_text("sources:\n  arxiv:\n    categories: [cs.LG]\nchannels: []\n")
    monkeypatch.setenv("PAPERBOY_CONFIG", str(config))
    monkeypatch.setenv("DATABASE_URL", str(store.engine.url))
    monkeypatch.setenv("ARXIV_API_URL", sources.api_url)
    monkeypatch.setattr("bot.sources.arxiv_api.HttpClient", fast_client)  # no real 3 s waits
    code = cli.main(["backfill", "--since", "2026-10-01", "--until", "2026-10-03", "--quiet"], out=io.StringIO())
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and err.startswith("error: arxiv:"), err
    assert sorted(p.id for p in store.iter_papers()) == ["2610.00001", "2610.00002"]  # page 1 only
    assert "Error" not in titles(store) and not any("lol" in t for t in titles(store))


# ------------------------------------------------------------------ 4. ambiguous "empty": stale feed vs holiday


def test_stale_feed_on_a_weekday_is_retried_then_reported_never_no_new_papers(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    """F-SRC3 for the RSS path (the daily digest never calls the API, so ``enrich`` is not involved):
    on Wednesday the feed still carries Tuesday's announcement, already posted on Tuesday. The run
    waits and retries within ``fetch_retry_minutes``; after that it ends as ``source_failed`` saying
    arXiv's announcement is not out, and never says "No new papers match"."""
    papers = news(3, day=TUESDAY)
    sources.rss["cs.LG"] = render_rss_feed(papers, announced=TUESDAY, cats="cs.LG")
    core = make_core(store, slack, sources, at=time(13, 30), retry_minutes=60)
    tuesday = at_time(core, datetime.combine(TUESDAY, time(14, 0), UTC))
    assert [o.state for o in run_due_digests(core, now=tuesday)] == [dg.POSTED]

    wednesday = at_time(core, datetime.combine(WEDNESDAY, time(14, 0), UTC))  # 10:00 in New York
    (waiting,) = run_due_digests(core, now=wednesday)
    assert waiting.state == dg.WAITING and "not out yet" in (waiting.note or "")
    later = at_time(core, wednesday + timedelta(minutes=10))
    assert [o.state for o in run_due_digests(core, now=later)] == [dg.WAITING]  # retried, still stale
    assert len(sources.requests_for("rss")) == 3

    past_window = at_time(core, wednesday + timedelta(minutes=31))  # slot 13:30 + 60 min has passed
    (final,) = run_due_digests(core, now=past_window)
    assert final.state == dg.SOURCE_FAILED
    parent = digests(slack)[-1]
    assert len(digests(slack)) == 2
    assert "arXiv could not be fetched" in text_of(parent) and "not out yet" in text_of(parent)
    assert "No new papers match" not in text_of(parent)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in papers)  # nothing reposted


def test_empty_feed_on_a_weekday_holiday_is_no_announcement_at_once(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    """The pair of the test above: a well-formed feed with zero items on a weekday (Fri 2026-06-19, an
    arXiv holiday) is a day without announcement (wire-formats.md: "a zero-item feed is a normal state,
    not an error; do not retry-storm"), said in one line, without waiting for the retry window."""
    sources.rss["cs.LG"] = render_rss_feed([], announced=HOLIDAY, cats="cs.LG")
    core = make_core(store, slack, sources, at=time(13, 30), retry_minutes=60)
    friday = at_time(core, datetime.combine(HOLIDAY, time(14, 0), UTC))
    (outcome,) = run_due_digests(core, now=friday)
    assert outcome.state == dg.NO_ANNOUNCEMENT
    (parent,) = digests(slack)
    assert "No arXiv announcement today" in text_of(parent) and "could not be fetched" not in text_of(parent)
    assert len(sources.requests_for("rss")) == 1


# ------------------------------------------------------------------ 5. late papers


def test_late_paper_is_posted_once_the_next_day_and_never_on_day_three(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    """tests/test_jobs.py covers day 2; this adds day 3 (T-34: "never reposted on day 3") on fixed days."""
    first, late = news(3, day=TUESDAY), news(1, start=50, day=TUESDAY)
    sources.rss["cs.LG"] = render_rss_feed(first, announced=TUESDAY, cats="cs.LG")
    core = make_core(store, slack, sources)
    run_due_digests(core, now=at_time(core, datetime.combine(TUESDAY, time(14, 0), UTC)))
    sources.rss["cs.LG"] = render_rss_feed(first + late + news(1, start=60, day=WEDNESDAY), announced=WEDNESDAY)
    run_due_digests(core, now=at_time(core, datetime.combine(WEDNESDAY, time(14, 0), UTC)))
    assert "2611.00050" in posted_paper_ids(slack, CHANNEL)  # posted the day after its announcement
    thursday = date(2026, 6, 18)
    sources.rss["cs.LG"] = render_rss_feed(first + late + news(1, start=70, day=thursday), announced=thursday)
    run_due_digests(core, now=at_time(core, datetime.combine(thursday, time(14, 0), UTC)))
    ids = posted_paper_ids(slack, CHANNEL)
    assert Counter(ids) == Counter(p.id for p in first + late) + Counter(["2611.00060", "2611.00070"])
    assert len(digests(slack)) == 3


# ------------------------------------------------------------------ 6. Hugging Face faults


def test_hf_429_with_ratelimit_header_waits_t_then_posts_hf_papers(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(2))
    hf_only = news(2, start=300)
    serve_hf(sources, hf_only)
    sources.queue("hf", Reply.limited(429, ratelimit='"api";r=0;t=20'))
    clock = FakeClock()
    core = make_core(store, slack, sources, client=lambda: fast_client(clock))
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED
    assert 20.0 in clock.sleeps  # waited exactly what RateLimit's t= asked for (on the fake clock)
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(2) + hf_only)
    assert "Hugging Face could not be fetched" not in text_of(digests(slack)[0])


HF_FAILURES = {
    "429 RateLimit for ever": Reply.limited(429, ratelimit='"api";r=0;t=1'),
    "HTTP 500": Reply(500, '{"error":"Internal Error"}', content_type="application/json"),
    "HTML page with status 200": Reply.html(200),
}


@pytest.mark.parametrize("fault", list(HF_FAILURES))
def test_hf_failure_alone_still_posts_arxiv_and_names_hf(
    fault: str, store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(3))
    serve_hf(sources, news(2, start=300))
    sources.queue("hf", *[HF_FAILURES[fault]] * 6)
    core = make_core(store, slack, sources)
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED and outcome.posted == 3
    (parent,) = digests(slack)
    assert "Hugging Face could not be fetched" in text_of(parent)
    assert "arXiv could not be fetched" not in text_of(parent)
    assert sorted(posted_paper_ids(slack, CHANNEL)) == sorted(p.id for p in news(3))


def test_hf_items_with_missing_fields_and_nulls_are_skipped_and_the_rest_posted(
    store: Store, slack: FakeSlack, sources: FakeSources
) -> None:
    serve_announcement(sources, news(1))
    good = news(2, start=300)
    today = datetime.now(UTC).date()
    items = json.loads(render_hf_daily(good, day=today))
    broken = json.loads(render_hf_daily(news(4, start=400), day=today))
    del broken[0]["paper"]["summary"], broken[0]["summary"]  # no abstract anywhere
    broken[1]["paper"]["title"] = None
    broken[1]["title"] = None
    broken[2]["paper"]["id"] = None
    broken[3]["paper"] = None
    items[0]["paper"]["authors"] = None  # optional fields null: still a paper
    items[0]["paper"]["upvotes"] = None
    items[1]["paper"]["ai_keywords"] = [None, 3, "graphs"]
    sources.hf_days[today.isoformat()] = json.dumps(items + broken).encode()
    core = make_core(store, slack, sources)
    results = jobs.refresh(core)
    hf = next(r for r in results if r.source == "huggingface")
    assert hf.state is SourceState.OK and hf.skipped == 4 and {p.id for p in hf.papers} == {p.id for p in good}
    core._fetched = None
    (outcome,) = run_due_digests(core)
    assert outcome.state == dg.POSTED
    assert Counter(posted_paper_ids(slack, CHANNEL)) == Counter(p.id for p in news(1) + good)
    assert store.get_papers([good[1].id])[good[1].id].hf_keywords == ("graphs",)


def test_enrich_treats_an_api_that_returns_none_of_the_announced_papers_as_a_failure(
    sources: FakeSources,
) -> None:
    """F-SRC3 where the API is used to cross-check an announcement: an empty answer is not "no papers"."""
    announced = news(3)
    sources.api_papers = []  # the API answers with an empty feed (totalResults 0)
    with fast_client() as client, pytest.raises(SourceError, match="returned none of the 3 announced papers"):
        enrich(announced, api_url=sources.api_url, client=client)
    sources.api_papers = announced[:1]  # a partial answer is normal (the others stay as announced)
    with fast_client() as client:
        assert [p.id for p in enrich(announced, api_url=sources.api_url, client=client)] == [p.id for p in announced]
