"""arXiv announcement feeds (``rss.arxiv.org/rss/<cats>`` and ``/atom/<cats>``): fetch and parse.

Both variants carry the same items: ``arXiv:<id>vN Announce Type: <t> \\nAbstract: …`` descriptions,
authors in one comma-separated ``dc:creator``, categories primary first, and an announce type
(new | cross | replace | replace-cross). A well-formed feed with zero items is a day without an
announcement (weekend, holiday): ``SourceState.NO_ANNOUNCEMENT``, never "0 new papers".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from xml.etree.ElementTree import Element

from bot.errors import ConfigError, FeedFormatError, SourceError
from bot.models import FetchResult, Paper, SourceState, split_arxiv_id
from bot.sources._xml import (
    ARXIV,
    ATOM,
    CATEGORY_RE,
    DC,
    categories,
    clean,
    iso_datetime,
    parse_feed,
    rfc822_date,
    sane_version,
)
from bot.sources.http import HttpClient

SOURCE = "arxiv"
DEFAULT_ARXIV_RSS_URL = "https://rss.arxiv.org/rss"
ANNOUNCE_TYPES = frozenset({"new", "cross", "replace", "replace-cross"})
_DESCRIPTION = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>\S+)[ \t]*(?:\r?\n\s*Abstract:[ \t]?(?P<abstract>.*))?$",
    re.S,
)


@dataclass(frozen=True, slots=True)
class AnnouncementFeed:
    """A parsed feed before policy: every valid item (deduplicated) plus counts of what was dropped."""

    announced: date | None
    papers: tuple[Paper, ...]
    items: int  # <item>/<entry> elements in the feed
    invalid: int  # items that could not be parsed, or repeated an id


def feed_url(rss_url: str, cats: Sequence[str]) -> str:
    """``<rss_url>/cs.AI+cs.LG``; categories are validated so they cannot alter the URL."""
    bad = [c for c in cats if not CATEGORY_RE.match(c)]
    if bad or not cats:
        raise ConfigError(f"invalid arXiv categories for the RSS feed: {bad or 'none given'}")
    return f"{rss_url.rstrip('/')}/{'+'.join(cats)}"


def _item_fields(item: Element, atom: bool) -> dict:
    if atom:
        return {
            "guid": item.findtext(f"{ATOM}id"),
            "link": next(
                (a.get("href") for a in item.findall(f"{ATOM}link") if a.get("rel", "alternate") == "alternate"), None
            ),
            "title": item.findtext(f"{ATOM}title"),
            "description": item.findtext(f"{ATOM}summary"),
            "categories": [c.get("term", "") for c in item.findall(f"{ATOM}category")],
            "day": (dt.date() if (dt := iso_datetime(item.findtext(f"{ATOM}published"))) else None),
        }
    return {
        "guid": item.findtext("guid"),
        "link": item.findtext("link"),
        "title": item.findtext("title"),
        "description": item.findtext("description"),
        "categories": [c.text or "" for c in item.findall("category")],
        "day": rfc822_date(item.findtext("pubDate")),
    }


def _split(raw: str | None) -> tuple[str, int | None] | None:
    try:
        return split_arxiv_id(raw or "")
    except ValueError:
        return None


def _paper(item: Element, atom: bool, feed_day: date | None) -> Paper | None:
    f = _item_fields(item, atom)
    desc = _DESCRIPTION.match(f["description"] or "")
    ids = [x for x in (_split(f["guid"]), _split(desc and desc.group("id")), _split(f["link"])) if x]
    kind = clean(item.findtext(f"{ARXIV}announce_type") or (desc and desc.group("type")) or "")
    if not ids or not clean(f["title"]) or kind not in ANNOUNCE_TYPES:
        return None
    paper_id = ids[0][0]
    version = next((v for base, v in ids if base == paper_id and v is not None), None)
    abstract = desc.group("abstract") if desc and desc.group("abstract") is not None else (f["description"] or "")
    authors = [clean(a) for c in item.findall(f"{DC}creator") for a in (c.text or "").split(",")]
    return Paper(
        id=paper_id,
        title=clean(f["title"]),
        abstract=clean(abstract),
        authors=tuple(a for a in authors if a),
        categories=categories(f["categories"]),
        version=sane_version(version),
        announced=f["day"] or feed_day,
        journal_ref=clean(item.findtext(f"{ARXIV}journal_reference")) or None,
        doi=clean(item.findtext(f"{ARXIV}DOI")) or None,
        announce_type=kind,
        sources=(SOURCE,),
    )


def parse_announcements(body: bytes, content_type: str = "") -> AnnouncementFeed:
    """Parse an RSS 2.0 or Atom announcement feed.

    Raises:
        FeedFormatError: not XML, HTML, not an RSS/Atom feed, or items present but none parseable.
    """
    root = parse_feed(SOURCE, body, content_type, what="RSS feed")
    if root.tag == "rss" and (channel := root.find("channel")) is not None:
        atom, items = False, channel.findall("item")
        feed_day = rfc822_date(channel.findtext("pubDate")) or rfc822_date(channel.findtext("lastBuildDate"))
    elif root.tag == f"{ATOM}feed":
        atom, items = True, root.findall(f"{ATOM}entry")
        first = iso_datetime(items[0].findtext(f"{ATOM}published")) if items else None
        updated = iso_datetime(root.findtext(f"{ATOM}updated"))
        stamp = first or updated
        feed_day = stamp.date() if stamp else None
    else:
        raise FeedFormatError(SOURCE, f"expected an RSS or Atom feed, got <{root.tag}>")
    papers: dict[str, Paper] = {}
    invalid = 0
    for item in items:
        paper = _paper(item, atom, feed_day)
        if paper is None or paper.id in papers:
            invalid += 1
        else:
            papers[paper.id] = paper
    if items and not papers:
        raise FeedFormatError(SOURCE, f"none of the {len(items)} feed items has an arXiv id, title and announce type")
    return AnnouncementFeed(feed_day, tuple(papers.values()), len(items), invalid)


def keep(paper: Paper, *, cross_lists: bool, replacements: bool) -> bool:
    """The announcement policy: ``new`` always; cross-lists and replacements when enabled."""
    kind = paper.announce_type or "new"
    if "cross" in kind and not cross_lists:
        return False
    return not (kind.startswith("replace") and not replacements)


def fetch_arxiv_rss(
    categories: Sequence[str],
    *,
    rss_url: str = DEFAULT_ARXIV_RSS_URL,
    cross_lists: bool = True,
    replacements: bool = False,
    client: HttpClient | None = None,
) -> FetchResult:
    """Today's announcement for ``categories`` as one feed request, with the policy applied.

    Raises:
        SourceError: HTTP failure, timeout, or (``FeedFormatError``) a bad body.
    """
    url = feed_url(rss_url, categories)
    http = client or HttpClient()
    try:
        resp = http.get(SOURCE, url)
    finally:
        if client is None:
            http.close()
    if resp.status != 200:
        raise SourceError(SOURCE, f"HTTP {resp.status} from {url}")
    feed = parse_announcements(resp.body, resp.content_type)
    if feed.items == 0:
        return FetchResult(SOURCE, SourceState.NO_ANNOUNCEMENT, announced=feed.announced)
    kept = [p for p in feed.papers if keep(p, cross_lists=cross_lists, replacements=replacements)]
    skipped = feed.invalid + len(feed.papers) - len(kept)
    return FetchResult(SOURCE, SourceState.OK, tuple(kept), announced=feed.announced, skipped=skipped)
