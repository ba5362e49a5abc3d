"""Digest keyword matching: precise AND semantics, exclusions, filters, scores consistent with search."""

from __future__ import annotations

from datetime import date

import pytest

from bot.errors import QueryError
from bot.matching import match_papers, validate_keyword
from bot.models import Paper
from bot.search import SearchIndex


def doc(pid: str, title: str, abstract: str = "", **kw: object) -> Paper:
    return Paper(id=pid, title=title, abstract=abstract, **kw)  # type: ignore[arg-type]


PAPERS = [
    doc("2501.00001", "Diffusion models for images", "We distill diffusion models into one step.", categories=("cs.CV",)),
    doc("2501.00002", "A survey of diffusion", "Diffusion models, surveyed.", categories=("cs.CV",)),
    doc("2501.00003", "Language models", "Large language models and diffusion.", categories=("cs.CL",),
        authors=("Yann LeCun",), announced=date(2025, 6, 2)),
    doc("2501.00004", "BERT-based retrieval", "A BERT-based dense retriever.", categories=("cs.IR",)),
    doc("2501.00005", "Models of images", "Image models, not about that word.", categories=("cs.CV",)),
]  # fmt: skip


@pytest.fixture(scope="module")
def index() -> SearchIndex:
    return SearchIndex.build(PAPERS)


def found(matches: list) -> list[tuple[str, tuple[str, ...]]]:
    return [(m.paper.id, m.keywords) for m in matches]


def test_every_term_of_a_keyword_must_occur(index: SearchIndex) -> None:
    got = match_papers(PAPERS, ["diffusion models"], [], index.stats())
    assert {m.paper.id for m in got} == {"2501.00001", "2501.00002", "2501.00003"}


def test_phrases_hyphenated_terms_and_exclusions(index: SearchIndex) -> None:
    stats = index.stats()
    assert {m.paper.id for m in match_papers(PAPERS, ['"diffusion models"'], [], stats)} == {"2501.00001", "2501.00002"}
    assert found(match_papers(PAPERS, ["bert based"], [], stats)) == [("2501.00004", ("bert based",))]
    assert found(match_papers(PAPERS, ["BERT-based"], [], stats)) == [("2501.00004", ("BERT-based",))]
    assert {m.paper.id for m in match_papers(PAPERS, ["diffusion -survey"], [], stats)} == {"2501.00001", "2501.00003"}


def test_filters_and_channel_excludes(index: SearchIndex) -> None:
    stats = index.stats()
    assert found(match_papers(PAPERS, ["models cat:cs.CL"], [], stats)) == [("2501.00003", ("models cat:cs.CL",))]
    assert [m.paper.id for m in match_papers(PAPERS, ["author:lecun"], [], stats)] == ["2501.00003"]
    assert [m.paper.id for m in match_papers(PAPERS, ["models since:2025-06-01"], [], stats)] == ["2501.00003"]
    kept = match_papers(PAPERS, ["diffusion"], ["survey", "large language", "cat:cs.IR"], stats)
    assert {m.paper.id for m in kept} == {"2501.00001"}


def test_keywords_as_written_and_ranking(index: SearchIndex) -> None:
    got = match_papers(PAPERS, ["diffusion", "one step", "diffusion", "images"], [], index.stats())
    assert got[0].paper.id == "2501.00001" and got[0].keywords == ("diffusion", "one step", "images")
    assert [m.score for m in got] == sorted((m.score for m in got), reverse=True)
    same = match_papers([PAPERS[4], PAPERS[0], PAPERS[4]], ["zzz-unknown", "cat:cs.CV"], [], index.stats())
    assert [m.paper.id for m in same] == ["2501.00001", "2501.00005"]  # equal scores: by id; duplicates once
    assert all(m.score == 0.0 for m in same)


def test_score_equals_search_score_for_the_same_terms(index: SearchIndex) -> None:
    for keyword in ["diffusion models", "language", "BERT-based retrieval"]:
        searched = {h.paper.id: h.score for h in index.search(keyword, limit=10).hits}
        for m in match_papers(PAPERS, [keyword], [], index.stats()):
            assert abs(m.score - searched[m.paper.id]) <= 1e-12


def test_new_terms_count_as_seen_once(index: SearchIndex) -> None:
    fresh = doc("2502.00001", "Quokka detection", "Detecting quokkas.")
    (m,) = match_papers([fresh], ["quokka"], [], index.stats())
    assert m.score > 0
    assert m.snippet.text == "Detecting quokkas." and m.snippet.spans == ((10, 17),)


def test_invalid_keywords_are_named(index: SearchIndex) -> None:
    with pytest.raises(QueryError, match="keyword “the of”: nothing to search for"):
        match_papers(PAPERS, ["diffusion", "the of"], [], index.stats())
    with pytest.raises(QueryError, match='exclude “"open”: unbalanced quote'):
        match_papers(PAPERS, ["diffusion"], ['"open'], index.stats())


def test_validate_keyword() -> None:
    assert validate_keyword("  diffusion\tmodels ") == "diffusion models"
    assert validate_keyword('"vision transformer" -survey') == '"vision transformer" -survey'
    with pytest.raises(QueryError, match="empty query"):
        validate_keyword("   ")
    with pytest.raises(QueryError, match="query too long"):
        validate_keyword("x" * 2000)
