"""The tokenizer: hyphens and model names, LaTeX, Unicode, spans, snippets' fast term finder, hostile input."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import text
from bot.text import analyze, find_terms, name_tokens, normalize_whitespace, sequence, sequence_terms, tokenize

CORPUS = (
    Path(os.environ.get("PAPERBOY_SHARED", "/work/shared")) / "data/arxiv-cs-daily-2025-2026/arxiv_abstracts.jsonl.gz"
)

# Any code point, lone surrogates included (Hypothesis' text() never yields those).
any_text = st.one_of(
    st.text(max_size=300),
    st.lists(st.integers(0, sys.maxunicode), max_size=120).map(lambda cs: "".join(map(chr, cs))),
    st.lists(
        st.sampled_from(
            [
                "BERT-based",
                "GPT-4o",
                "Qwen2.5-7B",
                "\\'e",
                "\\H{o}",
                "$\\mathcal{O}(n^2)$",
                "{\\em x}",
                "\ud800",
                "\x00",
                "e.g.",
                "--",
                "2.5",
                "ﬁ",
                "ＢＥＲＴ",
                "naïve",
                " ",
                "\n",
                "-",
                ".",
                "\\",
                "'",
                '"',
                "`",
                "{",
                "\\c{c}",
                "x1",
                "a.",
            ]
        ),
        max_size=30,
    ).map("".join),
)


@pytest.fixture(scope="module")
def abstracts() -> list[str]:
    if not CORPUS.is_file():
        pytest.fail(f"shared corpus not found at {CORPUS}; set PAPERBOY_SHARED")
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line)["abstract"] for line in itertools.islice(f, 400)]


def test_lowercase_stopwords_and_stemming() -> None:
    assert tokenize("The Models are Running in the studies") == ["model", "run", "studi"]
    assert tokenize("the of and") == []


@pytest.mark.parametrize("query", ["bert", "BERT-based", "bert based", "Bert-Based"])
def test_bert_based_is_found_by_its_parts_and_whole(query: str) -> None:
    doc = set(tokenize("A BERT-based retriever."))
    assert set(tokenize(query)) <= doc


def test_model_names_share_tokens_between_spellings() -> None:
    assert tokenize("GPT-4o") == tokenize("gpt4o") == ["gpt", "4o", "gpt4o"]
    assert set(tokenize("Qwen2.5")) == {"qwen", "2.5", "qwen2.5"}
    assert set(tokenize("Qwen2.5")) < set(tokenize("Qwen2.5-7B"))
    assert "qwen2.57b" in tokenize("Qwen2.5-7B")
    assert set(tokenize("Llama-3.1-8B")) >= {"llama", "3.1", "8b"}
    assert "gpt4o" not in tokenize("GPT-4")  # the compound keeps GPT-4o docs apart from GPT-4 ones


def test_numbers_and_ranges_get_no_compound() -> None:
    assert tokenize("1-10 and 0.5") == ["1", "10", "0.5"]
    assert tokenize("e.g. the end.") == ["e", "g", "end"]


def test_stopword_compounds_keep_their_content_words() -> None:
    assert tokenize("state-of-the-art") == ["state", "art", "stateoftheart"]
    assert sequence_terms("state-of-the-art results") == ["state", "art", "result"]


def test_latex_commands_and_accents() -> None:
    assert tokenize("$\\mathcal{O}(n^2)$") == ["n", "2"]
    assert tokenize("{\\em robust} \\textbf{fast}") == ["robust", "fast"]
    assert tokenize("\\alpha-divergence") == ["alpha", "diverg"]
    assert tokenize("Poincar\\'e") == tokenize("Poincaré") == tokenize("Poincare") == ["poincar"]
    assert tokenize('Erd\\H{o}s and G\\"odel') == tokenize("Erdős and Gödel")


def test_unicode_is_folded() -> None:
    assert tokenize("ﬁne-tuning") == tokenize("fine-tuning")
    assert tokenize("ＢＥＲＴ") == ["bert"]
    assert tokenize("NAÏVE naïve naive") == ["naiv"] * 3
    assert tokenize("深度学习 🚀 model") == ["深度学习", "model"]


def test_analyze_spans_point_at_runs_of_the_original_text() -> None:
    source = "Über BERT-based (GPT-4o) models."
    spans = analyze(source)
    assert [t for t, _, _ in spans] == tokenize(source)
    assert {source[s:e] for t, s, e in spans} == {"Über", "BERT-based", "GPT-4o", "models"}
    assert [(t, source[s:e]) for t, s, e in sequence(source)] == [
        ("uber", "Über"), ("bert", "BERT-based"), ("base", "BERT-based"), ("gpt", "GPT-4o"), ("4o", "GPT-4o"),
        ("model", "models"),
    ]  # fmt: skip


def test_names_are_folded_but_not_stemmed() -> None:
    assert name_tokens("Moreno D'Incà") == ["moreno", "d", "inca"]
    assert name_tokens("Jean-Pierre Dupuis") == ["jean", "pierre", "dupuis"]
    assert name_tokens("") == []


def test_normalize_whitespace() -> None:
    assert normalize_whitespace("  a\nb\t\tc  ") == "a b c"
    assert normalize_whitespace("a\u2009b\ud800") == "a b\ufffd"
    assert normalize_whitespace("one\ntwo") == "one two"


def test_whitespace_table_matches_str_split() -> None:
    expected = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    assert sorted({*text._SPACES, 0x3000}) == expected


def test_snowball_stems_keep_all_but_two_letters_of_the_word(abstracts: list[str]) -> None:
    """What the fast path of find_terms relies on, checked on real vocabulary."""
    words = {w for a in abstracts for w in a.lower().split() if w.isascii() and w.isalpha()}
    words |= {"dying", "lying", "skies", "happily", "generalization", "sensibility", "news"}
    for word in words:
        stem = text._stem(word)
        assert word.startswith(stem[: max(1, min(3, len(stem) - 2))]), (word, stem)


def _reference_find(source: str, wanted: frozenset[str]) -> list[tuple[int, int, frozenset[str]]]:
    runs: dict[tuple[int, int], set[str]] = {}
    for term, start, end in analyze(source):
        if term in wanted:
            runs.setdefault((start, end), set()).add(term)
    return [(s, e, frozenset(t)) for (s, e), t in runs.items()]


def test_find_terms_equals_full_analysis_on_real_abstracts(abstracts: list[str]) -> None:
    vocabulary = sorted({t for a in abstracts[:100] for t in tokenize(a)})
    for i, abstract in enumerate(abstracts):
        own = tokenize(abstract)
        wanted = frozenset(own[i % 7 :: 11] + vocabulary[i::97])
        assert find_terms(abstract, wanted) == _reference_find(abstract, wanted)


@settings(max_examples=300, deadline=None)
@given(any_text, st.lists(st.sampled_from(["bert", "base", "bertbas", "gpt4o", "4o", "2.5", "model", "e", "x"])))
def test_find_terms_equals_full_analysis_on_any_text(source: str, terms: list[str]) -> None:
    wanted = frozenset(terms) | frozenset(tokenize(source)[::3])
    assert find_terms(source, wanted) == _reference_find(source, wanted)


@settings(max_examples=400, deadline=None)
@given(any_text)
def test_never_raises_and_views_agree(source: str) -> None:
    terms = tokenize(source)
    assert [t for t, _, _ in analyze(source)] == terms
    assert [t for t, _, _ in sequence(source)] == sequence_terms(source)
    assert set(sequence_terms(source)) <= set(terms)
    assert all(0 <= s < e <= len(source) for _, s, e in analyze(source))
    assert all(len(t) <= text.MAX_TERM_CHARS for t in terms)
    normalize_whitespace(source).encode("utf-8")  # no lone surrogate survives
    name_tokens(source)


def test_hostile_and_long_inputs() -> None:
    for source in ["\x00" * 50, "\\" * 5000, "-" * 5000, "a" * 10_000, "é" * 10_000, "\ud800a\udfff" * 1000]:
        assert tokenize(source) == [t for t, _, _ in analyze(source)]
    assert tokenize("a" * 10_000) == ["a" * text.MAX_TERM_CHARS]
