"""Snippets: a ~300-character window of an abstract around the matched terms, with their spans.

Used by search hits and digest matches. Terms are index terms (see :mod:`bot.text`); a whole run
such as ``BERT-based`` is marked when any of its terms matched.
"""

from __future__ import annotations

from collections.abc import Collection

from bot.models import Snippet
from bot.text import find_terms, normalize_whitespace

SNIPPET_CHARS = 300
_LEAD = 40  # characters of context kept before the first marked term


def make_snippet(text: str, terms: Collection[str], width: int = SNIPPET_CHARS) -> Snippet:
    """The window of ``text`` (whitespace collapsed) with the most distinct ``terms``, marked."""
    return _snippet(normalize_whitespace(text), terms, width)[0]


def paper_snippet(title: str, abstract: str, terms: Collection[str]) -> tuple[Snippet, set[str]]:
    """The abstract's snippet, and which of ``terms`` occur in the title or the abstract."""
    snippet, found = _snippet(normalize_whitespace(abstract), terms, SNIPPET_CHARS)
    for _, _, have in find_terms(title, terms) if len(found) < len(terms) else ():
        found |= have
    return snippet, found


def _snippet(text: str, terms: Collection[str], width: int) -> tuple[Snippet, set[str]]:
    marks = {(start, end): have for start, end, have in find_terms(text, terms)}
    found: set[str] = set().union(*marks.values())
    spans = sorted(marks)
    if len(text) <= width:
        return Snippet(text, tuple(spans)), found
    start = _best_start(spans, marks, width, len(text))
    end = min(len(text), start + width)
    if end < len(text):  # cut at a word boundary
        cut = text.rfind(" ", start + width // 2, end)
        end = cut if cut > 0 else end
    if start > 0:
        cut = text.find(" ", start, start + _LEAD)
        start = cut + 1 if cut >= 0 else start
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    inside = tuple((s + shift, e + shift) for s, e in spans if s >= start and e <= end)
    return Snippet(prefix + text[start:end] + suffix, inside), found


def _best_start(
    spans: list[tuple[int, int]], marks: dict[tuple[int, int], frozenset[str]], width: int, size: int
) -> int:
    best, best_count = 0, -1
    for i, (first, _) in enumerate(spans):
        start = max(0, min(first - _LEAD, size - width))
        seen: set[str] = set()
        for span in spans[i:]:
            if span[1] > start + width:
                break
            seen |= marks[span]
        if len(seen) > best_count:
            best, best_count = start, len(seen)
    return best
