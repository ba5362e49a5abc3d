"""Politeness and resilience of the source HTTP client: pacing, one connection, back-off, timeouts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from bot.errors import RateLimitedError, SourceError
from bot.sources import ARXIV_PACER, fetch_arxiv_rss, fetch_ids
from bot.sources.http import HttpClient, Pacer, RetryPolicy, SourceProfile, Timeouts, retry_after
from tests.fakes.sources import FakeClock, FakeSources, Reply, fast_client


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as server:
        yield server


def _gaps(fake: FakeSources) -> list[float]:
    times = [r.t for r in fake.requests]
    return [b - a for a, b in zip(times, times[1:], strict=False)]


@pytest.mark.slow
def test_default_pacer_spaces_real_arxiv_requests_by_three_seconds(fake: FakeSources) -> None:
    with HttpClient() as client:
        assert client.profiles["arxiv"].pacer is ARXIV_PACER
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)
        fetch_ids(["2104.12255v1"], fake.api_url, client=client)
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)

    assert [r.route for r in fake.requests] == ["rss", "api", "atom"]
    assert all(gap >= 3.0 for gap in _gaps(fake)), _gaps(fake)


def test_every_client_shares_the_process_wide_arxiv_pacer() -> None:
    with HttpClient() as one, HttpClient() as two:
        assert one.profiles["arxiv"].pacer is two.profiles["arxiv"].pacer is ARXIV_PACER
        assert one.profiles["huggingface"].pacer is not ARXIV_PACER


def test_threads_with_separate_clients_never_overlap_on_a_shared_pacer(fake: FakeSources) -> None:
    fake.delay = 0.15
    profile = SourceProfile(Pacer(0.1), RetryPolicy(0))
    errors: list[BaseException] = []

    def work(kind: str) -> None:
        try:
            with HttpClient(profiles={"arxiv": profile}) as client:
                for _ in range(2):
                    if kind == "rss":
                        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)
                    else:
                        fetch_ids(["2104.12255v1"], fake.api_url, client=client)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(kind,)) for kind in ("rss", "api", "rss")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == [] and len(fake.requests) == 6
    assert fake.max_concurrent == 1
    assert all(gap >= 0.1 + 0.15 for gap in _gaps(fake)), _gaps(fake)


def test_the_fake_does_see_overlapping_requests_without_a_shared_pacer(fake: FakeSources) -> None:
    fake.delay = 0.3

    def work() -> None:
        with HttpClient(profiles={"arxiv": SourceProfile(Pacer(0.0), RetryPolicy(0))}) as client:
            fetch_ids(["2104.12255v1"], fake.api_url, client=client)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert fake.max_concurrent > 1


def test_paced_client_never_trips_the_fakes_rate_limit_but_an_unpaced_one_does(fake: FakeSources) -> None:
    fake.enforce_interval = 0.3
    paced = SourceProfile(Pacer(0.3), RetryPolicy(0))
    with HttpClient(profiles={"arxiv": paced}) as client:
        for _ in range(3):
            fetch_ids(["2104.12255"], fake.api_url, client=client)

    unpaced = SourceProfile(Pacer(0.0), RetryPolicy(0))
    with HttpClient(profiles={"arxiv": unpaced}) as client, pytest.raises(RateLimitedError, match="HTTP 429"):
        fetch_ids(["2104.12255"], fake.api_url, client=client)


def test_429_then_503_then_success_honours_retry_after(fake: FakeSources) -> None:
    clock = FakeClock()
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    fake.queue("rss", Reply.limited(429, retry_after="7"), Reply.limited(503, retry_after=soon))

    with fast_client(clock) as client:
        result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    assert len(result.papers) == 3 and len(fake.requests) == 3
    assert clock.sleeps[0] == 7.0
    assert 17.0 <= clock.sleeps[1] <= 21.0


def test_retry_after_is_honoured_in_real_time(fake: FakeSources) -> None:
    fake.queue("api", Reply.limited(429, retry_after="1"))
    profile = SourceProfile(Pacer(0.05), RetryPolicy(2, (3.0,), 10.0))

    with HttpClient(profiles={"arxiv": profile}) as client:
        assert [p.id for p in fetch_ids(["2104.12255"], fake.api_url, client=client)] == ["2104.12255"]

    assert len(fake.requests) == 2 and _gaps(fake)[0] >= 1.0


def test_without_retry_after_back_off_is_exponential_then_rate_limited(fake: FakeSources) -> None:
    clock = FakeClock()
    fake.queue("api", *[Reply.limited(429)] * 5)

    with fast_client(clock) as client, pytest.raises(RateLimitedError, match="HTTP 429 .* gave up after 4 attempts"):
        fetch_ids(["2104.12255"], fake.api_url, client=client)

    assert len(fake.requests) == 4
    assert clock.sleeps == [3.0, 10.0, 30.0]


def test_persistent_503_is_rate_limited_and_500_is_a_source_error(fake: FakeSources) -> None:
    fake.queue("rss", *[Reply.limited(503)] * 4)
    with fast_client() as client, pytest.raises(RateLimitedError, match="HTTP 503"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    fake.queue("rss", *[Reply(500, "boom", content_type="text/plain")] * 2)
    with fast_client(retries=1) as client, pytest.raises(SourceError, match="HTTP 500") as info:
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)
    assert not isinstance(info.value, RateLimitedError)


def test_one_5xx_is_retried_and_then_succeeds(fake: FakeSources) -> None:
    fake.queue("rss", Reply(502, "bad gateway", content_type="text/plain"))

    with fast_client() as client:
        assert len(fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client).papers) == 3


@pytest.mark.timeout(20)
def test_hanging_server_fails_within_the_read_timeout_without_retrying(fake: FakeSources) -> None:
    fake.queue("rss", Reply.hang())

    with fast_client(read=0.5) as client, pytest.raises(SourceError, match="timed out fetching"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    assert len(fake.requests) == 1


def test_connection_reset_is_retried_then_reported(fake: FakeSources) -> None:
    fake.queue("api", Reply.reset())
    with fast_client() as client:
        assert fetch_ids(["2104.12255"], fake.api_url, client=client)[0].title == "0"

    fake.queue("api", *[Reply.reset()] * 2)
    with fast_client(retries=1) as client, pytest.raises(SourceError, match="connection failed"):
        fetch_ids(["2104.12255"], fake.api_url, client=client)


def test_connection_refused_is_a_source_error() -> None:
    with fast_client(retries=0) as client, pytest.raises(SourceError, match="connection failed"):
        fetch_ids(["2104.12255"], "http://127.0.0.1:9/api/query", client=client)


def test_requests_carry_a_descriptive_user_agent_and_no_keep_alive(fake: FakeSources) -> None:
    with fast_client() as client:
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    headers = {k.lower(): v for k, v in fake.requests[0].headers.items()}
    assert headers["user-agent"].startswith("Paperboy/") and "digest" in headers["user-agent"]
    assert headers["connection"] == "close"


def test_oversized_body_is_refused(fake: FakeSources) -> None:
    client = HttpClient(profiles={"arxiv": SourceProfile(Pacer(0.0), RetryPolicy(0))}, max_body_bytes=1000)
    with client, pytest.raises(SourceError, match="larger than 1000 bytes"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)


def test_pacer_waits_for_interval_and_for_deferred_back_off() -> None:
    clock = FakeClock()
    pacer = Pacer(3.0, clock=clock.clock, sleep=clock.sleep)
    with pacer.slot():
        pass
    clock.now += 1.0
    with pacer.slot():
        pacer.defer(10.0)
    with pacer.slot():
        pass

    assert clock.sleeps == [2.0, 10.0]


def test_retry_after_header_forms() -> None:
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    date_header = format_datetime(now + timedelta(seconds=30), usegmt=True)

    assert retry_after({"retry-after": "12"}, now.timestamp()) == 12.0
    assert retry_after({"retry-after": date_header}, now.timestamp()) == 30.0
    assert retry_after({"ratelimit": '"api";r=0;t=55'}, now.timestamp()) == 55.0
    assert retry_after({"ratelimit": "limit=500, remaining=0, reset=20"}, now.timestamp()) == 20.0
    assert retry_after({"retry-after": "soon"}, now.timestamp()) is None
    assert retry_after({}, now.timestamp()) is None


def test_timeouts_default_to_ten_seconds_connect_and_sixty_read() -> None:
    assert (Timeouts().connect, Timeouts().read) == (10.0, 60.0)
