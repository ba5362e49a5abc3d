"""Hypothesis fuzzing of the source parsers (reliability.md T-45), seeded with the recorded fixtures.

The RSS and Atom announcement parsers (``parse_announcements``), the API Atom parser
(``parse_api_feed``) and the HF Daily Papers parser (``parse_daily_papers``) get the fixture bodies
mutated structurally (elements dropped, duplicated, reordered, renamed; text and attributes
replaced with hostile strings; JSON keys dropped or given the wrong type) and at the byte level
(truncated, bytes flipped or inserted). Each must either return papers or raise ``FeedFormatError``
/ ``SourceError``; every returned paper has a valid arXiv id, a non-blank title and a string abstract,
only aware datetimes and in-range integers, and can be stored (``Store.upsert_papers``) without error.

``PAPERBOY_FUZZ_EXAMPLES`` sets the examples per test (default 150; try 5000 for a long run).
"""

from __future__ import annotations

import copy
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import SourceError
from bot.models import Paper, is_arxiv_id
from bot.sources import parse_announcements, parse_daily_papers
from bot.sources.arxiv_api import parse_api_feed
from bot.store import Store
from tests.conftest import FIXTURES

EXAMPLES = int(os.environ.get("PAPERBOY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
INT32 = 2**31
DAY = date(2026, 6, 12)

# Strings that have broken feed parsers somewhere: ids with odd versions, naive dates, huge numbers,
# the API error marker, markup, control characters, lone surrogates, bidi overrides, CJK and emoji.
HOSTILE_TEXT = [
    "",
    " ",
    "\n\t",
    "Error",
    "http://arxiv.org/api/errors#incorrect_id_format_for_abc",
    "http://arxiv.org/abs/2508.13167v1",
    "https://arxiv.org/abs/2508.13167v99999999999999999999",
    "oai:arXiv.org:2508.13167v0",
    "oai:arXiv.org:math.GT/0309136v2",
    "arXiv:2508.99999v3 Announce Type: new \nAbstract: injected",
    "arXiv:2508.99999v3 Announce Type: bogus",
    "2025-08-20T00:00:00",
    "2025-08-20T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:00:00-23:59",
    "Wed, 20 Aug 2025 00:00:00 -0400",
    "Mon, 99 Foo 99999 99:99:99 +9999",
    "9" * 5000,
    "-1",
    "1e400",
    "NaN",
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfffy",
    "\u202e<!channel>",
    "<@U123> &amp; &lt;",
    "機械学習 🤖🔥",
    "cs.AI",
    "math.GT",
    "not a category!",
]


def text_values() -> st.SearchStrategy[str]:
    any_text = st.text(st.characters(blacklist_categories=()), max_size=60)
    return st.one_of(st.sampled_from(HOSTILE_TEXT), any_text)


def json_values() -> st.SearchStrategy[Any]:
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([10**30, -1, 0, 2**31, 2**63]),
        st.floats(allow_nan=False, allow_infinity=False),
        text_values(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text_values(), inner, max_size=3),
        max_leaves=6,
    )


# ------------------------------------------------------------------ seeds


def _trimmed(path: Path, keep: int) -> bytes:
    """A fixture feed with at most ``keep`` entries (the Atom fixture has hundreds)."""
    root = ET.fromstring(path.read_bytes())
    entries = [e for e in root if e.tag.endswith("entry")]
    for extra in entries[keep:]:
        root.remove(extra)
    return ET.tostring(root, encoding="utf-8")


def _seeds() -> dict[str, list[bytes]]:
    rss, api, hf = FIXTURES / "arxiv_rss", FIXTURES / "arxiv_api", FIXTURES / "hf_daily_papers"
    hf_items = json.loads((hf / "daily_papers_limit100_latest_2026-06-12.json").read_bytes())[:3]
    return {
        "announcements": [
            (rss / "reconstructed_rss_cs.AI_2025-08-20_all_announce_types.xml").read_bytes(),
            (rss / "reconstructed_rss_cs.AI_empty_no_announcement.xml").read_bytes(),
            _trimmed(rss / "reconstructed_atom_cs.AI_2025-08-20_wellformed.xml", 4),
            (rss / "reconstructed_atom_cs.AI_empty_no_announcement.xml").read_bytes(),
        ],
        "api": [
            (api / "idlist_1707.08567.xml").read_bytes(),
            (api / "idlist_0808.05394_1707.08567_partial.xml").read_bytes(),
            (api / "idlist_astro-ph_0601001.xml").read_bytes(),
            (api / "query_transformer_and_cat-cs.LG_submittedDate_desc_max5.xml").read_bytes(),
            (api / "error_idlist_abc_http400.xml").read_bytes(),
            (api / "idlist_0000.0000_empty.xml").read_bytes(),
        ],
        "hf": [
            json.dumps(hf_items).encode(),
            b"[" + (hf / "reconstructed_daily_papers_single_item_pretty.json").read_bytes() + b"]",
        ],
    }


SEEDS = _seeds()


# ------------------------------------------------------------------ mutations


KEY_FIELDS = frozenset(
    [
        "title",
        "id",
        "guid",
        "link",
        "summary",
        "description",
        "published",
        "updated",
        "pubDate",
        "announce_type",
        "creator",
        "category",
        "primary_category",
        "totalResults",
        "startIndex",
        "entry",
        "item",
    ]
)


@st.composite
def mutated_xml(draw: st.DrawFn, kind: str) -> bytes:
    """A fixture with a few structural edits, serialised back (invalid characters stay invalid)."""
    root = ET.fromstring(draw(st.sampled_from(SEEDS[kind])))
    for _ in range(draw(st.integers(1, 6))):
        elements = list(root.iter())
        fields = [e for e in elements if e.tag.rsplit("}", 1)[-1] in KEY_FIELDS]
        pool = fields if fields and draw(st.booleans()) else elements  # half the edits hit a field parsers read
        el = pool[draw(st.integers(0, len(pool) - 1))]
        parents = {child: parent for parent in root.iter() for child in parent}
        op = draw(st.sampled_from(["drop", "dup", "reorder", "text", "attr", "rename", "empty"]))
        parent = parents.get(el)
        if op == "drop" and parent is not None:
            parent.remove(el)
        elif op == "dup" and parent is not None:
            parent.insert(list(parent).index(el), copy.deepcopy(el))
        elif op == "reorder":
            children = list(el)
            order = draw(st.permutations(children)) if len(children) < 40 else list(reversed(children))
            for child in children:
                el.remove(child)
            el.extend(order)
        elif op == "text":
            el.text = draw(text_values())
        elif op == "attr":
            name = draw(st.sampled_from([*el.attrib, "term", "href", "rel"]))
            el.set(name, draw(text_values()))
        elif op == "rename":
            el.tag = draw(st.sampled_from(["item", "entry", "title", "{http://www.w3.org/2005/Atom}entry", "x"]))
        elif op == "empty":
            el.text = None
            for child in list(el):
                el.remove(child)
    text = ET.tostring(root, encoding="unicode")
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated_bytes(draw: st.DrawFn, kind: str) -> bytes:
    """A fixture truncated, with bytes flipped or inserted (byte-level damage)."""
    body = bytearray(draw(st.sampled_from(SEEDS[kind])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert"]))
        pos = draw(st.integers(0, max(0, len(body) - 1)))
        if op == "truncate":
            del body[pos:]
        elif op == "flip" and body:
            body[pos] = draw(st.integers(0, 255))
        else:
            body[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(body)


def _edit(node: Any, draw: st.DrawFn) -> Any:
    """Replace, drop or retype one value somewhere inside ``node`` (returns the new node)."""
    if isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        op = draw(st.sampled_from(["recurse", "drop", "retype", "null"]))
        if op == "recurse":
            node[key] = _edit(node[key], draw)
        elif op == "drop":
            del node[key]
        elif op == "null":
            node[key] = None
        else:
            node[key] = draw(json_values())
        return node
    if isinstance(node, list) and node and draw(st.booleans()):
        i = draw(st.integers(0, len(node) - 1))
        op = draw(st.sampled_from(["recurse", "drop", "dup", "retype"]))
        if op == "recurse":
            node[i] = _edit(node[i], draw)
        elif op == "drop":
            del node[i]
        elif op == "dup":
            node.insert(i, copy.deepcopy(node[i]))
        else:
            node[i] = draw(json_values())
        return node
    return draw(json_values()) if draw(st.integers(0, 9)) == 0 else node


HF_FIELDS = [
    "id",
    "title",
    "summary",
    "authors",
    "upvotes",
    "githubRepo",
    "ai_keywords",
    "publishedAt",
    "submittedOnDailyAt",
]


@st.composite
def mutated_json(draw: st.DrawFn) -> bytes:
    data = json.loads(draw(st.sampled_from(SEEDS["hf"])))
    for _ in range(draw(st.integers(1, 8))):
        first = data[0] if isinstance(data, list) and data else None
        paper = first.get("paper") if isinstance(first, dict) else None
        if isinstance(paper, dict) and draw(st.booleans()):  # half the edits hit a field the parser reads
            key = draw(st.sampled_from(HF_FIELDS))
            paper[key] = draw(st.one_of(text_values(), json_values()))
        else:
            data = _edit(data, draw)
    return json.dumps(data).encode()


# ------------------------------------------------------------------ invariants


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp:
        s = Store.open(f"sqlite:///{tmp}/fuzz.db")
        s.migrate()
        yield s
        s.close()


def check_papers(papers: tuple[Paper, ...], store: Store) -> None:
    for p in papers:
        assert is_arxiv_id(p.id), p.id
        assert isinstance(p.title, str) and p.title.strip(), p
        assert isinstance(p.abstract, str)
        assert all(isinstance(a, str) and a for a in p.authors)
        assert p.version is None or 0 <= p.version < INT32, p.version
        assert p.hf_upvotes is None or 0 <= p.hf_upvotes < INT32, p.hf_upvotes
        for when in (p.published, p.updated):
            assert when is None or (isinstance(when, datetime) and when.utcoffset() is not None), when
        for text in (p.title, p.abstract, *p.authors, p.comment, p.journal_ref, p.doi, p.hf_repo, *p.hf_keywords):
            if text is not None:
                assert "\x00" not in text
                text.encode("utf-8")  # no lone surrogates: every database must be able to store it
    if papers:
        store.upsert_papers(papers)


def run_parser(parse: Callable[[], Any], store: Store) -> None:
    try:
        result = parse()
    except SourceError:  # FeedFormatError is a SourceError
        return
    check_papers(result.papers, store)


# ------------------------------------------------------------------ tests


def test_every_seed_parses_or_is_a_clean_error(store: Store) -> None:
    """The seeds themselves: the fixtures parse (the error feed and nothing else raises)."""
    for body in SEEDS["announcements"]:
        check_papers(parse_announcements(body).papers, store)
    for body in SEEDS["api"]:
        if b"api/errors" in body:
            with pytest.raises(SourceError, match="API error"):
                parse_api_feed(body)
        else:
            check_papers(parse_api_feed(body).papers, store)
    for body in SEEDS["hf"]:
        assert parse_daily_papers(body, DAY).papers


@FUZZ
@given(body=st.one_of(mutated_xml("announcements"), mutated_bytes("announcements")))
def test_announcement_parser_survives_mutations(body: bytes, store: Store) -> None:
    run_parser(lambda: parse_announcements(body), store)


@FUZZ
@given(body=st.one_of(mutated_xml("api"), mutated_bytes("api")))
def test_api_parser_survives_mutations(body: bytes, store: Store) -> None:
    run_parser(lambda: parse_api_feed(body), store)


@FUZZ
@given(body=st.one_of(mutated_json(), mutated_bytes("hf")))
def test_hf_parser_survives_mutations(body: bytes, store: Store) -> None:
    run_parser(lambda: parse_daily_papers(body, DAY), store)


@FUZZ
@given(data=json_values())
def test_hf_parser_survives_any_json(data: Any, store: Store) -> None:
    run_parser(lambda: parse_daily_papers(json.dumps(data).encode(), DAY), store)


# ------------------------------------------------------------------ regressions, stored on both databases

HOSTILE_HF_ITEMS = [
    {"paper": {"id": "2606.00001", "title": "NUL\x00in title", "summary": "nul \x00 abstract", "upvotes": 10**30}},
    {
        "paper": {
            "id": "2606.00002",
            "title": "lone \ud800 surrogate",
            "summary": "x\udfff",
            "authors": [{"name": "\ud83d"}],
        }
    },
    {"paper": {"id": "2606.00003", "title": "naive date", "summary": "s", "publishedAt": "2026-06-12T00:00:00"}},
    {"paper": {"id": "2606.00004", "title": "edge date", "summary": "s", "publishedAt": "0001-01-01T00:00:00+14:00"}},
    {"paper": {"id": "2606.00005v99999999999999", "title": "huge version", "summary": "s", "upvotes": True}},
    {"paper": {"id": "2606.00006", "title": "\x00\x01 ", "summary": "only controls in the title: skipped"}},
    {"paper": {"id": "2606.00007", "title": "repo", "summary": "s", "githubRepo": "https://github.com/a/b\x00 x"}},
]


def test_hostile_hf_items_are_cleaned_or_skipped_and_stored_on_both_databases(db_url: str) -> None:
    body = json.dumps(HOSTILE_HF_ITEMS).encode()  # json escapes the lone surrogates as \\ud800
    result = parse_daily_papers(body, DAY)
    by_id = {p.id: p for p in result.papers}
    assert sorted(by_id) == ["2606.00001", "2606.00002", "2606.00003", "2606.00004", "2606.00005", "2606.00007"]
    assert result.skipped == 1  # the title made only of control characters
    assert by_id["2606.00001"].title == "NULin title" and by_id["2606.00001"].hf_upvotes is None
    assert by_id["2606.00002"].title == "lone \ufffd surrogate" and by_id["2606.00002"].authors == ("\ufffd",)
    assert by_id["2606.00003"].published is not None and by_id["2606.00003"].published.utcoffset() is not None
    assert by_id["2606.00004"].published is None
    assert by_id["2606.00005"].hf_upvotes is None  # a boolean is not a count
    assert by_id["2606.00007"].hf_repo is None  # not a clean URL
    s = Store.open(db_url)
    try:
        s.migrate()
        assert s.upsert_papers(result.papers).inserted == 6
        stored = s.get_papers(by_id)
        assert stored["2606.00002"].abstract == "x\ufffd"
        assert stored["2606.00003"].published == by_id["2606.00003"].published
    finally:
        s.close()


def test_api_entry_with_naive_dates_and_huge_version_is_stored_on_both_databases(db_url: str) -> None:
    body = (FIXTURES / "arxiv_api" / "idlist_1707.08567.xml").read_bytes()
    body = body.replace(b"v1</id>", b"v99999999999999</id>", 1)
    body = re.sub(rb"<published>([^<]+)Z</published>", rb"<published>\1</published>", body)  # no offset
    (paper,) = parse_api_feed(body).papers
    assert paper.id == "1707.08567" and paper.version is None
    assert paper.published is not None and paper.published.utcoffset() is not None
    s = Store.open(db_url)
    try:
        s.migrate()
        assert s.upsert_papers([paper]).inserted == 1
    finally:
        s.close()


def test_deeply_nested_json_is_a_format_error_not_a_crash() -> None:
    with pytest.raises(SourceError, match="invalid JSON"):
        parse_daily_papers(b"[" * 100_000 + b"]" * 100_000, DAY)
