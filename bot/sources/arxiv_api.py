"""The arXiv API (``export.arxiv.org/api/query``): paged backfill by category and date, id lookups.

Parses the 2026 Atom format and the older one (namespace + local name, no reliance on attribute
order or ``rel="self"``). Errors come as an Atom entry titled ``Error`` whose id is under
``/api/errors`` (HTTP 400 now, HTTP 200 before late 2025); such a feed raises ``FeedFormatError``
and is never turned into a paper. Entries whose id is not an arXiv abstract URL are rejected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

from bot.errors import ConfigError, FeedFormatError, SourceError
from bot.models import Paper, split_arxiv_id
from bot.sources._xml import (
    ARXIV,
    ATOM,
    CATEGORY_RE,
    OPENSEARCH,
    categories,
    clean,
    iso_datetime,
    parse_feed,
    sane_version,
)
from bot.sources.http import HttpClient

SOURCE = "arxiv"
DEFAULT_ARXIV_API_URL = "https://export.arxiv.org/api/query"
API_RESULTS_CAP = 30000  # the API refuses to page beyond this
ID_BATCH = 100
_ABS_URL = re.compile(r"^https?://(?:export\.)?arxiv\.org/abs/(?P<id>\S+)$")


@dataclass(frozen=True, slots=True)
class ApiPage:
    """One page of results.

    ``total`` is how many results the whole iteration can yield (``totalResults`` capped by the
    caller's limit), so a progress bar can use it; ``entries`` counts every entry in the body.
    """

    papers: tuple[Paper, ...]
    start: int
    total: int
    entries: int
    skipped: int = 0


def _entry_paper(entry: Element) -> Paper | None:
    m = _ABS_URL.match(clean(entry.findtext(f"{ATOM}id")))
    title = clean(entry.findtext(f"{ATOM}title"))
    if m is None or not title:
        return None
    try:
        paper_id, version = split_arxiv_id(m.group("id"))
    except ValueError:
        return None
    primary = entry.find(f"{ARXIV}primary_category")
    terms = ([primary.get("term", "")] if primary is not None else []) + [
        c.get("term", "") for c in entry.findall(f"{ATOM}category")
    ]
    authors = (clean(a.findtext(f"{ATOM}name")) for a in entry.findall(f"{ATOM}author"))
    return Paper(
        id=paper_id,
        title=title,
        abstract=clean(entry.findtext(f"{ATOM}summary")),
        authors=tuple(a for a in authors if a),
        categories=categories(terms),
        version=sane_version(version),
        published=iso_datetime(entry.findtext(f"{ATOM}published")),
        updated=iso_datetime(entry.findtext(f"{ATOM}updated")),
        comment=clean(entry.findtext(f"{ARXIV}comment")) or None,
        journal_ref=clean(entry.findtext(f"{ARXIV}journal_ref")) or None,
        doi=clean(entry.findtext(f"{ARXIV}doi")) or None,
        sources=(SOURCE,),
    )


def _is_error_entry(entry: Element) -> bool:
    entry_id = clean(entry.findtext(f"{ATOM}id"))
    return "/api/errors" in entry_id or (
        clean(entry.findtext(f"{ATOM}title")) == "Error" and not _ABS_URL.match(entry_id)
    )


def parse_api_feed(body: bytes, content_type: str = "") -> ApiPage:
    """Parse one API response body (any status) into a page.

    Raises:
        FeedFormatError: not an arXiv API Atom feed, an API error entry, or no valid entry at all.
    """
    root = parse_feed(SOURCE, body, content_type, what="API feed")
    if root.tag != f"{ATOM}feed":
        raise FeedFormatError(SOURCE, f"expected an Atom feed from the API, got <{root.tag}>")
    entries = root.findall(f"{ATOM}entry")
    for entry in entries:
        if _is_error_entry(entry):
            raise FeedFormatError(SOURCE, f"API error: {clean(entry.findtext(f'{ATOM}summary')) or 'no details'}")
    try:
        total = int(clean(root.findtext(f"{OPENSEARCH}totalResults")))
        start = int(clean(root.findtext(f"{OPENSEARCH}startIndex")) or 0)
    except ValueError:
        raise FeedFormatError(SOURCE, "API feed lacks a numeric opensearch:totalResults") from None
    papers = [p for p in map(_entry_paper, entries) if p is not None]
    if entries and not papers:
        raise FeedFormatError(SOURCE, f"none of the {len(entries)} API entries has an arXiv abstract id and a title")
    return ApiPage(tuple(papers), start, total, len(entries), len(entries) - len(papers))


def fetch_page(params: Mapping[str, str | int], *, api_url: str = DEFAULT_ARXIV_API_URL, client: HttpClient) -> ApiPage:
    """One API request. Raises ``FeedFormatError`` on an error feed (HTTP 400), ``SourceError`` otherwise."""
    url = f"{api_url}?{urlencode(params)}"
    resp = client.get(SOURCE, url)
    if resp.status == 400:
        page = parse_api_feed(resp.body, resp.content_type)  # raises with the API's own message
        raise FeedFormatError(SOURCE, f"HTTP 400 from {url} without an error entry ({page.entries} entries)")
    if resp.status != 200:
        raise SourceError(SOURCE, f"HTTP {resp.status} from {url}")
    return parse_api_feed(resp.body, resp.content_type)


def iter_query(
    params: Mapping[str, str],
    *,
    api_url: str = DEFAULT_ARXIV_API_URL,
    page_size: int = 100,
    limit: int | None = None,
    client: HttpClient | None = None,
) -> Iterator[ApiPage]:
    """Yield pages for ``params`` (``search_query``/``id_list``/``sortBy``…), de-duplicated by id.

    Advances by the number of entries received; stops at ``totalResults``, an empty page or ``limit``.
    """
    cap = min(limit if limit is not None else API_RESULTS_CAP, API_RESULTS_CAP)
    http = client or HttpClient()
    seen: set[str] = set()
    start = 0
    try:
        while start < cap:
            page = fetch_page(
                {**params, "start": start, "max_results": min(page_size, cap - start)}, api_url=api_url, client=http
            )
            fresh = tuple(p for p in page.papers if p.id not in seen)
            seen.update(p.id for p in fresh)
            skipped = page.skipped + len(page.papers) - len(fresh)
            yield ApiPage(fresh, start, min(page.total, cap), page.entries, skipped)
            start += page.entries
            if page.entries == 0 or start >= page.total:
                return
    finally:
        if client is None:
            http.close()


def backfill_query(cats: Sequence[str], since: date, until: date) -> str:
    """``(cat:a OR cat:b) AND submittedDate:[YYYYMMDD0000 TO YYYYMMDD2359]`` (GMT, inclusive)."""
    bad = [c for c in cats if not CATEGORY_RE.match(c)]
    if bad or not cats:
        raise ConfigError(f"invalid arXiv categories for a backfill: {bad or 'none given'}")
    if since > until:
        raise ConfigError(f"backfill range is empty: {since} is after {until}")
    cat = " OR ".join(f"cat:{c}" for c in cats)
    cat = f"({cat})" if len(cats) > 1 else cat
    return f"{cat} AND submittedDate:[{since:%Y%m%d}0000 TO {until:%Y%m%d}2359]"


def iter_backfill(
    cats: Sequence[str],
    since: date,
    until: date,
    *,
    api_url: str = DEFAULT_ARXIV_API_URL,
    page_size: int = 100,
    limit: int | None = None,
    sort_order: str = "ascending",
    client: HttpClient | None = None,
) -> Iterator[ApiPage]:
    """Pages of papers submitted in ``cats`` between ``since`` and ``until`` (both inclusive)."""
    params = {"search_query": backfill_query(cats, since, until), "sortBy": "submittedDate", "sortOrder": sort_order}
    return iter_query(params, api_url=api_url, page_size=page_size, limit=limit, client=client)


def fetch_ids(
    ids: Iterable[str], api_url: str = DEFAULT_ARXIV_API_URL, *, client: HttpClient | None = None
) -> list[Paper]:
    """Look papers up by id (``vN`` kept when given), in batches of at most 100; unknown ids are absent.

    Raises:
        ValueError: an id is not an arXiv identifier (checked before any request).
    """
    wanted: dict[str, str] = {}
    for raw in ids:
        base, version = split_arxiv_id(raw)
        wanted.setdefault(base, f"{base}v{version}" if version else base)
    found: dict[str, Paper] = {}
    http = client or HttpClient()
    try:
        todo = list(wanted.values())
        for i in range(0, len(todo), ID_BATCH):
            batch = todo[i : i + ID_BATCH]
            page = fetch_page(
                {"id_list": ",".join(batch), "start": 0, "max_results": len(batch)}, api_url=api_url, client=http
            )
            for paper in page.papers:
                found.setdefault(paper.id, paper)
    finally:
        if client is None:
            http.close()
    return list(found.values())


def enrich(
    papers: Sequence[Paper], *, api_url: str = DEFAULT_ARXIV_API_URL, client: HttpClient | None = None
) -> list[Paper]:
    """Cross-check announced papers against the API and add what the feed lacks (dates, comment, DOI).

    Papers the API does not return are kept unchanged; announcement fields are never overwritten.

    Raises:
        SourceError: the API returned none of the announced papers. The feed showed a normal
            announcement, so an empty answer is an API glitch to retry, not "no papers"
            (reliability.md F-SRC3); the daily digest itself does not call this.
    """
    wanted = [p.id for p in papers if p.is_arxiv]
    api = {p.id: p for p in fetch_ids(wanted, api_url, client=client)}
    if wanted and not api:
        raise SourceError(SOURCE, f"the API returned none of the {len(wanted)} announced papers; retry later")
    out = []
    for p in papers:
        a = api.get(p.id)
        if a is not None:
            p = replace(
                p,
                authors=p.authors or a.authors,
                categories=p.categories or a.categories,
                version=p.version or a.version,
                published=p.published or a.published,
                updated=p.updated or a.updated,
                comment=p.comment or a.comment,
                journal_ref=p.journal_ref or a.journal_ref,
                doi=p.doi or a.doi,
            )
        out.append(p)
    return out
