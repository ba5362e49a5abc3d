"""The arXiv API client (paging, backfill, id lookups, error feeds) over real sockets to the fake."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.errors import ConfigError, FeedFormatError, SourceError
from bot.models import Paper
from bot.sources import enrich, fetch_ids, iter_backfill, iter_query
from bot.sources.arxiv_api import backfill_query, fetch_page
from bot.sources.http import HttpClient
from tests.fakes.sources import FakeSources, Reply, api_feed, fast_client, render_api_feed

# The pre-2025 format, reconstructed after the example in the arXiv API user manual: per-element xmlns,
# title type="html", rel="self", -04:00 offsets, hard-wrapped title/summary, primary_category with scheme.
# (Long tags are wrapped between attributes to fit the line length; the XML is unchanged.)
OLD_FORMAT = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:openSearch="http://a9.com/-/spec/opensearch/1.1/">
  <link xmlns="http://www.w3.org/2005/Atom"
    href="http://arxiv.org/api/query?search_query=all:electron&amp;id_list=&amp;start=0&amp;max_results=1"
    rel="self" type="application/atom+xml"/>
  <title xmlns="http://www.w3.org/2005/Atom" type="html"
    >ArXiv Query: search_query=all:electron&amp;id_list=&amp;start=0&amp;max_results=1</title>
  <id xmlns="http://www.w3.org/2005/Atom">http://arxiv.org/api/cHxbiOdZaP56ODnBPIenZhzg5f8</id>
  <updated xmlns="http://www.w3.org/2005/Atom">2007-10-08T00:00:00-04:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1000</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:itemsPerPage>
  <entry xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom">
    <id xmlns="http://www.w3.org/2005/Atom">http://arxiv.org/abs/hep-ex/0307015v1</id>
    <published xmlns="http://www.w3.org/2005/Atom">2003-07-07T13:46:39-04:00</published>
    <updated xmlns="http://www.w3.org/2005/Atom">2003-07-07T13:46:39-04:00</updated>
    <title xmlns="http://www.w3.org/2005/Atom">Multi-Electron Production at High Transverse Momenta in ep Collisions at
  HERA</title>
    <summary xmlns="http://www.w3.org/2005/Atom">  Multi-electron production is studied at high electron
transverse momentum in positron- and electron-proton collisions using the H1 detector at HERA.
</summary>
    <author xmlns="http://www.w3.org/2005/Atom">
      <name xmlns="http://www.w3.org/2005/Atom">H1 Collaboration</name>
    </author>
    <arxiv:comment xmlns:arxiv="http://arxiv.org/schemas/atom">23 pages, 8 figures and 4 tables</arxiv:comment>
    <arxiv:journal_ref xmlns:arxiv="http://arxiv.org/schemas/atom">Eur.Phys.J. C31 (2003) 17-29</arxiv:journal_ref>
    <link xmlns="http://www.w3.org/2005/Atom" href="http://arxiv.org/abs/hep-ex/0307015v1" rel="alternate"
      type="text/html"/>
    <link xmlns="http://www.w3.org/2005/Atom" title="doi" href="http://dx.doi.org/10.1140/epjc/s2003-01326-x"
      rel="related"/>
    <category xmlns="http://www.w3.org/2005/Atom" term="hep-ex" scheme="http://arxiv.org/schemas/atom"/>
    <arxiv:primary_category xmlns:arxiv="http://arxiv.org/schemas/atom" term="hep-ex"
      scheme="http://arxiv.org/schemas/atom"/>
  </entry>
</feed>
"""
TESTING_PAGE_1 = ["2202.12139", "2405.13786", "2005.14124", "2204.08348", "2302.03287"]


@pytest.fixture
def fake(fixtures_dir: Path) -> Iterator[FakeSources]:
    with FakeSources(fixtures_dir) as server:
        yield server


@pytest.fixture
def client() -> Iterator[HttpClient]:
    with fast_client() as http:
        yield http


def test_paging_over_the_three_recorded_pages(fake: FakeSources, client: HttpClient) -> None:
    params = {"search_query": "all:testing", "sortBy": "relevance", "sortOrder": "descending"}

    pages = list(iter_query(params, api_url=fake.api_url, page_size=10, limit=30, client=client))

    assert [(p.start, p.total, len(p.papers)) for p in pages] == [(0, 30, 10), (10, 30, 10), (20, 30, 10)]
    assert [p.id for p in pages[0].papers][:5] == TESTING_PAGE_1
    assert pages[2].papers[-1].id == "2602.15552"
    assert [r.query["start"] for r in fake.requests] == ["0", "10", "20"]
    assert all(r.query["max_results"] == "10" for r in fake.requests)


def test_api_entry_fields_in_the_2026_format(fake: FakeSources, client: HttpClient) -> None:
    page = next(iter_query({"search_query": "testing"}, api_url=fake.api_url, page_size=10, limit=10, client=client))
    first = page.papers[0]

    assert first.id == "2202.12139" and first.version == 1
    assert first.title == "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    assert first.authors == ("Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker")
    assert first.categories == ("cs.SE", "cs.LG")
    assert first.published == datetime(2022, 2, 24, 15, 5, 19, tzinfo=UTC)
    assert first.comment == "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022"
    assert first.doi == "10.1109/ICSTW55395.2022.00035"
    assert str(first.journal_ref).startswith("Artificial Intelligence in Software Testing @ 2022 IEEE")
    assert first.sources == ("arxiv",) and first.announce_type is None


def test_old_api_format_is_tolerated(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("api", Reply(body=OLD_FORMAT))

    (paper,) = fetch_ids(["hep-ex/0307015"], fake.api_url, client=client)

    assert (paper.id, paper.version) == ("hep-ex/0307015", 1)
    assert paper.title == "Multi-Electron Production at High Transverse Momenta in ep Collisions at HERA"
    assert paper.abstract.startswith("Multi-electron production is studied") and "\n" not in paper.abstract
    assert paper.categories == ("hep-ex",) and paper.authors == ("H1 Collaboration",)
    assert paper.published == datetime(2003, 7, 7, 17, 46, 39, tzinfo=UTC)
    assert (paper.comment, paper.journal_ref) == ("23 pages, 8 figures and 4 tables", "Eur.Phys.J. C31 (2003) 17-29")


def test_paging_stops_at_total_results_without_an_extra_request(fake: FakeSources, client: HttpClient) -> None:
    fake.api_papers = [_paper(f"2501.{i:05d}", day=1 + i % 3) for i in range(25)]

    pages = list(
        iter_backfill(["cs.AI"], date(2025, 1, 1), date(2025, 1, 3), api_url=fake.api_url, page_size=10, client=client)
    )

    assert [len(p.papers) for p in pages] == [10, 10, 5]
    assert pages[0].total == 25
    assert len({p.id for page in pages for p in page.papers}) == 25
    assert len(fake.requests) == 3


def test_backfill_query_and_sort_parameters(fake: FakeSources, client: HttpClient) -> None:
    fake.api_papers = [
        _paper("2501.00001", day=1, cats=("cs.AI",)),
        _paper("2501.00002", day=2, cats=("cs.CL", "cs.LG")),
        _paper("2501.00003", day=2, cats=("math.AP",)),
        _paper("2501.00004", day=9, cats=("cs.AI",)),
    ]

    pages = list(
        iter_backfill(["cs.AI", "cs.LG"], date(2025, 1, 1), date(2025, 1, 2), api_url=fake.api_url, client=client)
    )

    assert [p.id for page in pages for p in page.papers] == ["2501.00001", "2501.00002"]
    sent = fake.requests[0].query
    assert sent["search_query"] == "(cat:cs.AI OR cat:cs.LG) AND submittedDate:[202501010000 TO 202501022359]"
    assert (sent["sortBy"], sent["sortOrder"], sent["start"], sent["max_results"]) == (
        "submittedDate",
        "ascending",
        "0",
        "100",
    )
    assert backfill_query(["cs.AI"], date(2025, 1, 1), date(2025, 1, 1)) == (
        "cat:cs.AI AND submittedDate:[202501010000 TO 202501012359]"
    )


def test_short_pages_advance_by_items_received_and_duplicates_are_dropped(
    fake: FakeSources, client: HttpClient
) -> None:
    papers = [_paper(f"2501.{i:05d}") for i in range(12)]
    fake.queue(
        "api",
        Reply(body=render_api_feed(papers[:7], total=12, start=0)),  # short page: 7 of the 10 asked for
        Reply(body=render_api_feed([papers[6], *papers[7:12]], total=12, start=7)),  # repeats the 7th paper
    )

    pages = list(iter_query({"search_query": "cat:cs.AI"}, api_url=fake.api_url, page_size=10, client=client))

    assert [r.query["start"] for r in fake.requests] == ["0", "7"]
    assert [p.id for page in pages for p in page.papers] == [p.id for p in papers[:12]]
    assert pages[1].skipped == 1


def test_empty_page_before_total_ends_the_iteration(fake: FakeSources, client: HttpClient) -> None:
    fake.queue("api", Reply(body=render_api_feed([_paper("2501.00001")], total=50)), Reply(body=api_feed([], total=50)))

    pages = list(iter_query({"search_query": "cat:cs.AI"}, api_url=fake.api_url, page_size=1, client=client))

    assert [len(p.papers) for p in pages] == [1, 0]
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        (["2104.12255v1"], [("2104.12255", 1, "0")]),
        (["astro-ph/0601001"], [("astro-ph/0601001", 1, "Frequency of Hot Jupiters")]),
        (["quant-ph/0201082v1"], [("quant-ph/0201082", 1, "Quantum Computers and Quantum Computer Languages")]),
        (["1605.08386"], [("1605.08386", 1, "Heat-bath random walks with Markov bases")]),
        (["0808.05394", "1707.08567"], [("1707.08567", 1, "Proceedings of Workshop AEW10")]),
        (["0000.0000"], []),
    ],
)
def test_id_list_fixtures(
    fake: FakeSources, client: HttpClient, ids: list[str], expected: list[tuple[str, int, str]]
) -> None:
    papers = fetch_ids(ids, fake.api_url, client=client)

    assert [(p.id, p.version, p.title[: len(t)]) for p, (_, _, t) in zip(papers, expected, strict=True)] == expected


def test_old_style_ids_keep_their_category_and_text(fake: FakeSources, client: HttpClient) -> None:
    (paper,) = fetch_ids(["astro-ph/0601001"], fake.api_url, client=client)

    assert paper.categories == ("astro-ph",)
    assert paper.journal_ref == "ActaAstron.56:1-50,2006"
    assert paper.abstract.startswith("We derive the frequencies") and "V_max<17.5" in paper.abstract
    assert fake.requests[0].query["id_list"] == "astro-ph/0601001"


def test_ids_are_looked_up_in_batches_of_100(fake: FakeSources, client: HttpClient) -> None:
    fake.api_papers = [_paper(f"2501.{i:05d}") for i in range(150)]

    papers = fetch_ids([p.id for p in fake.api_papers] + ["2501.00000v1"], fake.api_url, client=client)

    assert len(papers) == 150
    assert [len(r.query["id_list"].split(",")) for r in fake.requests] == [100, 50]


def test_invalid_id_is_refused_before_any_request(fake: FakeSources, client: HttpClient) -> None:
    with pytest.raises(ValueError, match="not an arXiv id"):
        fetch_ids(["2501.00001", "abc"], fake.api_url, client=client)
    assert fake.requests == []


def test_http_400_error_feed_raises_and_never_becomes_a_paper(fake: FakeSources, client: HttpClient) -> None:
    with pytest.raises(FeedFormatError, match="arxiv: API error: incorrect id format for abc"):
        fetch_page({"id_list": "abc", "start": 0, "max_results": 100}, api_url=fake.api_url, client=client)
    assert fake.requests[0].query["id_list"] == "abc"


def test_old_style_error_feed_with_status_200_raises(fake: FakeSources, client: HttpClient, fixtures_dir: Path) -> None:
    body = (fixtures_dir / "arxiv_api" / "error_idlist_abc_http400.xml").read_bytes()
    fake.queue("api", Reply(200, body))

    with pytest.raises(FeedFormatError, match="API error"):
        fetch_ids(["2501.00001"], fake.api_url, client=client)


def test_unbracketed_date_range_gets_the_400_error_feed(fake: FakeSources, client: HttpClient) -> None:
    with pytest.raises(FeedFormatError, match="unsupported search_query"):
        list(iter_query({"search_query": "cat:cs.AI AND submittedDate:20250101"}, api_url=fake.api_url, client=client))


def test_entries_without_an_abs_url_id_are_rejected(fake: FakeSources, client: HttpClient) -> None:
    good = render_api_feed([_paper("2501.00001")], total=2).decode()
    entry = good[good.index("  <entry>") : good.index("</feed>")]
    bogus = entry.replace("http://arxiv.org/abs/2501.00001v1", "https://evil.example/abs/2501.00002v1")
    fake.queue("api", Reply(body=good.replace("</feed>", bogus + "</feed>").encode()))

    (page,) = iter_query({"search_query": "cat:cs.AI"}, api_url=fake.api_url, client=client)

    assert [p.id for p in page.papers] == ["2501.00001"]
    assert (page.entries, page.skipped) == (2, 1)


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply.html(200), FeedFormatError, "HTML page"),
        (Reply(500, "oops", content_type="text/plain"), SourceError, "HTTP 500"),
        (Reply(body=b"<feed xmlns='http://www.w3.org/2005/Atom'><entry>"), FeedFormatError, "malformed"),
        (Reply(body=b"<feed xmlns='http://www.w3.org/2005/Atom'/>"), FeedFormatError, "totalResults"),
    ],
    ids=["html", "http-500", "truncated", "no-opensearch"],
)
def test_bad_api_responses(fake: FakeSources, reply: Reply, error: type[Exception], message: str) -> None:
    fake.queue("api", *[reply] * 2)

    with fast_client(retries=1) as client, pytest.raises(error, match=message):
        fetch_ids(["2501.00001"], fake.api_url, client=client)


def test_enrich_adds_api_metadata_to_announced_papers(fake: FakeSources, client: HttpClient) -> None:
    api = _paper("2501.00001", day=2)
    fake.api_papers = [Paper(**{**_fields(api), "comment": "12 pages", "doi": "10.1/abc"})]
    announced = [
        Paper(id="2501.00001", title="T", abstract="A", announce_type="new", announced=date(2025, 1, 3)),
        Paper(id="2501.00009", title="Missing", abstract="A", announce_type="cross"),
    ]

    out = enrich(announced, api_url=fake.api_url, client=client)

    assert out[0].comment == "12 pages" and out[0].doi == "10.1/abc"
    assert out[0].published == api.published and out[0].announced == date(2025, 1, 3)
    assert out[0].announce_type == "new" and out[0].title == "T"
    assert out[1] == announced[1]


def test_backfill_rejects_bad_ranges_and_categories() -> None:
    with pytest.raises(ConfigError, match="is after"):
        backfill_query(["cs.AI"], date(2025, 1, 2), date(2025, 1, 1))
    with pytest.raises(ConfigError, match="invalid arXiv categories"):
        backfill_query(["cs.AI OR all:x"], date(2025, 1, 1), date(2025, 1, 1))


def _paper(paper_id: str, *, day: int = 1, cats: tuple[str, ...] = ("cs.AI",)) -> Paper:
    published = datetime(2025, 1, 1, 12, tzinfo=UTC) + timedelta(days=day - 1, minutes=int(paper_id[-3:]))
    return Paper(
        id=paper_id,
        title=f"Paper {paper_id}",
        abstract="Abstract text.",
        authors=("Ada Lovelace",),
        categories=cats,
        version=1,
        published=published,
        updated=published,
        sources=("arxiv",),
    )


def _fields(p: Paper) -> dict:
    return {name: getattr(p, name) for name in Paper.__dataclass_fields__}
