"""Plain data shared by every stage: papers, fetch results, search hits and digest matches.

These are frozen dataclasses with no behaviour beyond derived properties, so each stage can be
tested with hand-built values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

# New-style ids (0704.0001 … 2606.12345) and old-style ids (astro-ph/0601001, math.GT/0309136).
ARXIV_ID_RE = re.compile(r"^(?:\d{4}\.\d{4,5}|[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})$")
_VERSION_RE = re.compile(r"^(?P<base>.+?)v(?P<version>\d+)$")


def split_arxiv_id(raw: str) -> tuple[str, int | None]:
    """Split ``2508.13426v2`` into ``("2508.13426", 2)``; accept URL and ``oai:arXiv.org:`` prefixes.

    Raises:
        ValueError: when the text is not an arXiv identifier.
    """
    text = raw.strip()
    for prefix in ("oai:arXiv.org:", "arXiv:", "arxiv:"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    text = re.sub(r"^https?://(?:export\.)?arxiv\.org/(?:abs|pdf)/", "", text)
    version: int | None = None
    m = _VERSION_RE.match(text)
    if m and ARXIV_ID_RE.fullmatch(m.group("base")):
        text, version = m.group("base"), int(m.group("version"))
    if not ARXIV_ID_RE.fullmatch(text):
        raise ValueError(f"not an arXiv id: {raw!r}")
    return text, version


def is_arxiv_id(paper_id: str) -> bool:
    return bool(ARXIV_ID_RE.fullmatch(paper_id))


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper, keyed by its version-less arXiv id or by ``"<source>:<id>"`` for other imports."""

    id: str
    title: str
    abstract: str
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()  # primary first
    version: int | None = None
    announced: date | None = None  # the arXiv announcement (or listing) day
    published: datetime | None = None  # v1
    updated: datetime | None = None  # latest version
    comment: str | None = None
    journal_ref: str | None = None
    doi: str | None = None
    announce_type: str | None = None  # new | cross | replace | replace-cross (RSS only)
    hf_upvotes: int | None = None
    hf_repo: str | None = None  # GitHub URL from Hugging Face
    hf_keywords: tuple[str, ...] = ()
    hf_date: date | None = None  # the Hugging Face Daily Papers day
    sources: tuple[str, ...] = ()  # e.g. ("arxiv", "huggingface")
    first_seen: datetime | None = None  # set by the store

    @property
    def primary_category(self) -> str | None:
        return self.categories[0] if self.categories else None

    @property
    def is_arxiv(self) -> bool:
        return is_arxiv_id(self.id)

    @property
    def url(self) -> str | None:
        """The abstract page, built only from a validated id (never from feed text)."""
        if self.is_arxiv:
            return f"https://arxiv.org/abs/{self.id}"
        return None

    @property
    def hf_url(self) -> str | None:
        if self.is_arxiv and "huggingface" in self.sources:
            return f"https://huggingface.co/papers/{self.id}"
        return None

    @property
    def date(self) -> date | None:
        """The most meaningful single date: announcement, else v1 publication, else first seen."""
        if self.announced:
            return self.announced
        if self.published:
            return self.published.date()
        return self.first_seen.date() if self.first_seen else None


class SourceState(StrEnum):
    """How one source's fetch ended. ``NO_ANNOUNCEMENT`` is not an error and not "0 new papers"."""

    OK = "ok"
    NO_ANNOUNCEMENT = "no_announcement"
    FAILED = "failed"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What one source returned: its state, the parsed papers, and a one-line reason on failure."""

    source: str
    state: SourceState
    papers: tuple[Paper, ...] = ()
    error: str | None = None
    announced: date | None = None  # the announcement day the feed declared, when known
    skipped: int = 0  # items dropped by policy (e.g. replacements) or as invalid


@dataclass(frozen=True, slots=True)
class Snippet:
    """A short excerpt of plain text plus the character spans of the matched terms in it."""

    text: str
    spans: tuple[tuple[int, int], ...] = ()

    def marked(self, before: str = "**", after: str = "**") -> str:
        out, pos = [], 0
        for start, end in self.spans:
            out += [self.text[pos:start], before, self.text[start:end], after]
            pos = end
        out.append(self.text[pos:])
        return "".join(out)


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One ranked search result."""

    paper: Paper
    score: float
    matched_terms: tuple[str, ...]
    snippet: Snippet


@dataclass(frozen=True, slots=True)
class SearchPage:
    """A page of results for one query; ``total`` counts every document that matched.

    ``estimated``: phrases or author names were checked on the best candidates only, and ``total``
    extrapolates from them.
    """

    query: str
    total: int
    hits: tuple[SearchHit, ...]
    offset: int = 0
    took_ms: float = 0.0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Match:
    """A new paper that matched a channel's keywords, as ranked for its digest."""

    paper: Paper
    score: float
    keywords: tuple[str, ...]  # the channel keywords it matched, as the user wrote them
    snippet: Snippet = field(default_factory=lambda: Snippet(""))


@dataclass(frozen=True, slots=True)
class Message:
    """A Slack message as plain data: fallback ``text`` (already escaped mrkdwn) plus Block Kit ``blocks``.

    ``paper_ids`` names the papers this message carries (digest chunks), so delivery can record them.
    """

    text: str
    blocks: tuple[dict, ...] = ()
    paper_ids: tuple[str, ...] = ()
