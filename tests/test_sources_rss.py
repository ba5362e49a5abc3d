"""arXiv announcement feeds (RSS 2.0 and Atom) fetched over real sockets from the fake server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from bot.errors import ConfigError, FeedFormatError, SourceError
from bot.models import Paper, SourceState
from bot.sources import fetch_arxiv_rss
from bot.sources.http import HttpClient
from tests.fakes.sources import FakeSources, Reply, fast_client, render_atom_feed, render_rss_feed

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>&lol3;</title></item></channel></rss>
"""


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as server:
        yield server


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with fast_client() as http:
        yield http


def test_rss_fixture_parses_every_field_of_a_new_item(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    assert result.state is SourceState.OK
    assert result.announced == date(2025, 8, 20)
    first = result.papers[0]
    assert first.id == "2508.13167" and first.version == 1
    assert first.title.startswith("Chain-of-Agents: End-to-End Agent Foundation Models")
    assert first.abstract.startswith("Recent advances in large language models")
    assert "Announce Type" not in first.abstract and "Abstract:" not in first.abstract
    assert first.authors[:2] == ("Weizhen Li", "Jianbo Lin") and len(first.authors) == 30
    assert first.categories == ("cs.AI", "cs.CL")
    assert first.announced == date(2025, 8, 20)
    assert first.announce_type == "new" and first.sources == ("arxiv",)
    assert fake.requests_for("rss")[0].path == "/rss/cs.AI"


def test_default_policy_keeps_new_and_cross_and_counts_replacements(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)

    assert [(p.id, p.announce_type) for p in result.papers] == [
        ("2508.13167", "new"),
        ("2508.13426", "cross"),
        ("2508.00875", "cross"),
    ]
    assert result.skipped == 2
    assert result.papers[2].doi == "10.7249/PEA3971-1"


@pytest.mark.parametrize(
    ("cross_lists", "replacements", "kept"),
    [
        (False, False, {"new"}),
        (True, True, {"new", "cross", "replace", "replace-cross"}),
        (False, True, {"new", "replace"}),
    ],
)
def test_policy_switches(
    fake: FakeSources, client: HttpClient, cross_lists: bool, replacements: bool, kept: set[str]
) -> None:
    result = fetch_arxiv_rss(
        ["cs.AI"], rss_url=fake.rss_url, cross_lists=cross_lists, replacements=replacements, client=client
    )

    assert {p.announce_type for p in result.papers} == kept
    assert len(result.papers) + result.skipped == 5


def test_replacement_items_carry_version_journal_ref_and_tex(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, replacements=True, client=client)
    by_id = {p.id: p for p in result.papers}

    assert by_id["2204.08348"].version == 3
    assert str(by_id["2204.08348"].journal_ref).startswith("InProceedings of the 31st ACM SIGSOFT")
    assert by_id["2203.01250"].categories == ("math.AP", "math.OC")
    assert str(by_id["2203.01250"].journal_ref).startswith("Journal de l'\\'Ecole polytechnique")
    assert "$\\min \\int_{\\mathbb{R}^N}f(u,\\nabla u)$" in by_id["2203.01250"].abstract


def test_atom_fixture_gives_86_items_and_the_same_fields(fake: FakeSources, client: HttpClient) -> None:
    result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)

    assert result.state is SourceState.OK and result.announced == date(2025, 8, 20)
    assert len(result.papers) == 86 and result.skipped == 0
    assert sum(p.announce_type == "cross" for p in result.papers) == 45
    cross = next(p for p in result.papers if p.id == "2508.13426")
    assert cross.authors == ("Chunhua Liu", "Kabir Manandhar Shrestha", "Sukai Huang")
    assert cross.categories == ("cs.CL", "cs.AI") and cross.version == 1
    assert fake.requests_for("atom")[0].path == "/atom/cs.AI"


def test_several_categories_make_one_request_joined_with_plus(fake: FakeSources, client: HttpClient) -> None:
    fake.rss["cs.AI+cs.LG"] = render_rss_feed([_paper("2601.00001")], announced=date(2026, 1, 6), cats="cs.AI+cs.LG")

    result = fetch_arxiv_rss(["cs.AI", "cs.LG"], rss_url=fake.rss_url, client=client)

    assert [p.id for p in result.papers] == ["2601.00001"]
    assert [r.path for r in fake.requests] == ["/rss/cs.AI+cs.LG"]


def test_duplicate_ids_in_a_feed_are_kept_once(fake: FakeSources, client: HttpClient) -> None:
    papers = [_paper("2601.00001"), _paper("2601.00002"), _paper("2601.00001", version=2)]
    fake.atom["cs.AI"] = render_atom_feed(papers, announced=date(2026, 1, 6))

    result = fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)

    assert [p.id for p in result.papers] == ["2601.00001", "2601.00002"]
    assert result.skipped == 1


@pytest.mark.parametrize("variant", ["rss", "atom"])
def test_empty_feed_is_no_announcement_not_zero_papers(
    fake: FakeSources, client: HttpClient, fixtures_dir: Path, variant: str
) -> None:
    body = (fixtures_dir / "arxiv_rss" / f"reconstructed_{variant}_cs.AI_empty_no_announcement.xml").read_bytes()
    (fake.rss if variant == "rss" else fake.atom)["cs.AI"] = body

    result = fetch_arxiv_rss(["cs.AI"], rss_url=f"{fake.base_url}/{variant}", client=client)

    assert result.state is SourceState.NO_ANNOUNCEMENT
    assert result.papers == () and result.error is None
    assert result.announced == (date(2025, 9, 20) if variant == "rss" else date(2025, 8, 23))


def test_verbatim_truncated_atom_feed_fails_with_nothing_returned(
    fake: FakeSources, client: HttpClient, fixtures_dir: Path
) -> None:
    fake.atom["cs.AI"] = (fixtures_dir / "arxiv_rss" / "atom_cs.AI_2025-08-20_truncated.xml").read_bytes()

    with pytest.raises(FeedFormatError, match="arxiv: malformed or truncated XML"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)


def test_body_cut_off_by_the_connection_fails(fake: FakeSources) -> None:
    fake.queue("rss", *[Reply.truncated()] * 4)

    with fast_client(retries=1) as client, pytest.raises(SourceError, match="connection failed"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)
    assert len(fake.requests) == 2  # one retry, then give up


def test_html_page_with_status_200_is_a_format_error(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("rss", Reply.html(200))

    with pytest.raises(FeedFormatError, match="HTML page instead of an XML"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)


def test_well_formed_xhtml_without_html_content_type_is_still_refused(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("rss", Reply(body=b"<?xml version='1.0'?><page><p>maintenance</p></page>", content_type="text/xml"))

    with pytest.raises(FeedFormatError, match="expected an RSS or Atom feed, got <page>"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)


@pytest.mark.parametrize(
    "body",
    [
        b'{"items": []}',
        b"",
        b"<?xml version='1.0' encoding='UTF-8'?><rss version='2.0'><channel><item><title>\xff\xfe</title>",
    ],
    ids=["json", "empty", "bad-encoding"],
)
def test_wrong_content_is_a_format_error(fake: FakeSources, client: HttpClient, body: bytes) -> None:
    fake.queue("rss", Reply(body=body))

    with pytest.raises(FeedFormatError, match="^arxiv: "):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)


def test_api_feed_served_as_announcements_is_rejected(
    fake: FakeSources, client: HttpClient, fixtures_dir: Path
) -> None:
    fake.atom["cs.AI"] = (fixtures_dir / "arxiv_api" / "query_testing_start0_max10.xml").read_bytes()

    with pytest.raises(FeedFormatError, match="none of the 10 feed items"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)


def test_entity_expansion_payload_is_refused(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("rss", Reply(body=BILLION_LAUGHS))

    with pytest.raises(FeedFormatError, match="declares a DTD or entities"):
        fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)


def test_http_404_is_a_source_error(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("rss", Reply(404, "Not Found", content_type="text/plain"))

    with pytest.raises(SourceError, match="HTTP 404"):
        fetch_arxiv_rss(["cs.XX"], rss_url=fake.rss_url, client=client)


def test_category_that_would_change_the_url_is_refused_before_any_request(fake: FakeSources) -> None:
    with pytest.raises(ConfigError, match="invalid arXiv categories"):
        fetch_arxiv_rss(["cs.AI/../../x"], rss_url=fake.rss_url)
    assert fake.requests == []


def test_rendered_feeds_round_trip_through_both_parsers(fake: FakeSources, client: HttpClient) -> None:
    papers = [
        _paper("2601.00001", title="0", kind="new"),
        _paper("astro-ph/0601001", kind="cross", doi="10.1/x", authors=("A & B", "C <D>")),
    ]
    fake.rss["cs.AI"] = render_rss_feed(papers, announced=date(2026, 1, 6))
    fake.atom["cs.AI"] = render_atom_feed(papers, announced=date(2026, 1, 6))

    from_rss = fetch_arxiv_rss(["cs.AI"], rss_url=fake.rss_url, client=client)
    from_atom = fetch_arxiv_rss(["cs.AI"], rss_url=fake.atom_url, client=client)

    assert from_rss.papers == from_atom.papers
    assert from_rss.papers[0].title == "0"
    assert from_rss.papers[1].authors == ("A & B", "C <D>") and from_rss.papers[1].doi == "10.1/x"
    assert all(p.announced == date(2026, 1, 6) for p in from_rss.papers)


def _paper(
    paper_id: str,
    *,
    version: int = 1,
    title: str = "A title",
    kind: str = "new",
    doi: str | None = None,
    authors: tuple[str, ...] = ("Ada Lovelace",),
) -> Paper:
    return Paper(
        id=paper_id,
        title=title,
        abstract="An abstract.",
        authors=authors,
        categories=("cs.AI",),
        version=version,
        announce_type=kind,
        doi=doi,
    )
