"""Keyword matching for digests: which new papers match a channel's keywords, ranked by BM25.

A keyword is a query (:mod:`bot.query`) matched precisely: a paper matches it when every plain
term and every phrase of the keyword occurs in its title or abstract (a hyphenated or multi-part
term such as ``GPT-4o`` counts as a phrase), its filters (``cat:``, ``author:``, ``since:`` ...)
pass, and none of its ``-exclusions`` occurs. A channel exclude is matched the same way and
removes every paper it matches. The score is BM25 of the union of the matched keywords' terms
against the paper with the archive's statistics (:class:`bot.search.CorpusStats`), so digests
and search rank alike; a term the archive has never seen counts as seen once.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.errors import QueryError
from bot.models import Match, Paper
from bot.query import PaperText, Query, filters_pass, parse_query, text_passes
from bot.search import CorpusStats
from bot.snippet import make_snippet

__all__ = ["match_papers", "matches", "validate_keyword"]


def validate_keyword(text: str) -> str:
    """The keyword as it will be stored (whitespace collapsed); QueryError says why it cannot be one."""
    return parse_query(text).raw


def _parse(kind: str, text: str) -> Query:
    try:
        return parse_query(text)
    except QueryError as exc:
        raise QueryError(f"{kind} “{' '.join(text.split())[:100]}”: {exc}") from None


def matches(query: Query, paper: Paper, text: PaperText | None = None) -> bool:
    """Whether ``paper`` matches ``query`` as a keyword (all terms and phrases, filters, no exclusion)."""
    return filters_pass(query, paper) and text_passes(query, text or PaperText.of(paper), all_terms=True)


def match_papers(
    papers: Sequence[Paper], keywords: Sequence[str], excludes: Sequence[str], stats: CorpusStats
) -> list[Match]:
    """The papers matching any keyword and no exclude, best first (ties by id).

    Raises:
        QueryError: a keyword or exclude is invalid; the message names it.
    """
    wanted = [(k, _parse("keyword", k)) for k in dict.fromkeys(keywords)]
    unwanted = [_parse("exclude", e) for e in dict.fromkeys(excludes)]
    found: list[Match] = []
    for paper in dict((p.id, p) for p in papers).values():
        text = PaperText.of(paper)
        hits = [(k, q) for k, q in wanted if matches(q, paper, text)]
        if not hits or any(matches(q, paper, text) for q in unwanted):
            continue
        terms = list(dict.fromkeys(t for _, q in hits for t in q.tokens))
        score = stats.score(terms, text.counts, text.length, min_df=1)
        snippet = make_snippet(paper.abstract, frozenset(terms))
        found.append(Match(paper, score, tuple(k for k, _ in hits), snippet))
    found.sort(key=lambda m: (-m.score, m.paper.id))
    return found
