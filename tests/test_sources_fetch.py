"""``fetch_announcements``: one result per source, and one failing source never stops the other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bot.models import FetchResult, SourceState
from bot.sources import fetch_announcements
from bot.sources.http import HttpClient
from tests.fakes.sources import FakeSources, Reply, fast_client

TODAY = date(2026, 6, 13)


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as server:
        yield server


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with fast_client(retries=1) as http:
        yield http


def _fetch(fake: FakeSources, client: HttpClient, **overrides: object) -> dict[str, FetchResult]:
    args: dict = {"categories": ["cs.AI"], "huggingface": True, "today": TODAY}
    args.update(overrides)
    results = fetch_announcements(rss_url=fake.rss_url, hf_url=fake.hf_url, client=client, **args)
    assert [r.source for r in results] == ["arxiv", "huggingface"]
    return {r.source: r for r in results}


def test_both_sources_ok(fake: FakeSources, client: HttpClient) -> None:
    results = _fetch(fake, client)

    arxiv, hf = results["arxiv"], results["huggingface"]
    assert arxiv.state is SourceState.OK and len(arxiv.papers) == 3 and arxiv.skipped == 2
    assert hf.state is SourceState.OK and len(hf.papers) == 30
    assert all(p.sources == ("arxiv",) for p in arxiv.papers)
    assert all(p.sources == ("huggingface",) for p in hf.papers)


def test_policy_flags_reach_the_rss_fetch(fake: FakeSources, client: HttpClient) -> None:
    results = _fetch(fake, client, cross_lists=False, replacements=True)

    assert {p.announce_type for p in results["arxiv"].papers} == {"new", "replace"}


@pytest.mark.parametrize("fault", [Reply.html(200), Reply.truncated(), Reply(400, "bad", content_type="text/plain")])
def test_failing_arxiv_does_not_stop_huggingface(fake: FakeSources, client: HttpClient, fault: Reply) -> None:
    fake.queue("rss", fault, fault)

    results = _fetch(fake, client)

    assert results["arxiv"].state is SourceState.FAILED and results["arxiv"].papers == ()
    assert str(results["arxiv"].error).startswith("arxiv: ")
    assert results["huggingface"].state is SourceState.OK and len(results["huggingface"].papers) == 30


def test_failing_huggingface_does_not_stop_arxiv(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("hf", *[Reply.limited(503)] * 2)

    results = _fetch(fake, client)

    assert results["huggingface"].state is SourceState.FAILED
    assert "HTTP 503" in str(results["huggingface"].error)
    assert results["arxiv"].state is SourceState.OK and len(results["arxiv"].papers) == 3


def test_hanging_arxiv_fails_and_huggingface_still_answers(fake: FakeSources) -> None:
    fake.queue("rss", Reply.hang())

    with fast_client(read=0.5) as client:
        results = _fetch(fake, client)

    assert results["arxiv"].state is SourceState.FAILED and "timed out" in str(results["arxiv"].error)
    assert results["huggingface"].state is SourceState.OK


def test_empty_announcement_is_reported_next_to_huggingface(
    fake: FakeSources, client: HttpClient, fixtures_dir: Path
) -> None:
    fake.rss["cs.AI"] = (fixtures_dir / "arxiv_rss" / "reconstructed_rss_cs.AI_empty_no_announcement.xml").read_bytes()

    results = _fetch(fake, client)

    assert results["arxiv"].state is SourceState.NO_ANNOUNCEMENT and results["arxiv"].error is None
    assert results["huggingface"].state is SourceState.OK


def test_unconfigured_sources_are_disabled_and_not_contacted(fake: FakeSources, client: HttpClient) -> None:
    results = _fetch(fake, client, categories=[], huggingface=False)

    assert results["arxiv"].state is SourceState.DISABLED
    assert results["huggingface"].state is SourceState.DISABLED
    assert fake.requests == []


def test_invalid_category_fails_only_arxiv(fake: FakeSources, client: HttpClient) -> None:
    results = _fetch(fake, client, categories=["cs AI"])

    assert results["arxiv"].state is SourceState.FAILED and "invalid arXiv categories" in str(results["arxiv"].error)
    assert results["huggingface"].state is SourceState.OK
