"""The one tokenizer of Paperboy: search, keyword matching and snippets all analyse text here.

Pipeline, per *run* (a maximal stretch of word characters joined by hyphens, or by a period between
two digits, e.g. ``BERT-based``, ``Qwen2.5-7B``, ``Poincar\\'e``):

1. fold: TeX accents (``\\'e``) become plain letters, then NFKC, case folding and removal of
   diacritics (``Poincaré`` == ``poincare``);
2. split on hyphens into pieces; a piece of two or more letters followed by a digit is also split
   there (``gpt4o`` -> ``gpt`` + ``4o``, ``qwen2.5`` -> ``qwen`` + ``2.5``);
3. drop English stopwords, stem with Snowball English (PyStemmer).

Index terms of a run: every non-stopword part, every piece that was split at a letter/digit
boundary, and the concatenated compound of a hyphenated run (``gpt-4o`` -> ``gpt4o``, ``gpt``,
``4o``; ``gpt4o`` gives the very same three), so ``GPT-4o`` and ``gpt4o`` find each other and rank
above plain ``gpt`` documents. The *sequence* of a text (parts only, in order) is what phrases are
checked against. TeX commands are kept as words (``\\alpha`` -> ``alpha``) except formatting ones
(``\\mathcal``, ``\\em`` ...), which are dropped. Any ``str`` is accepted; nothing here raises.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import unicodedata
from collections.abc import Collection, Iterator
from itertools import chain

import numpy as np
import Stemmer

__all__ = [
    "analyze",
    "chunk_terms",
    "bulk_memo",
    "chunks",
    "clear_caches",
    "document_text",
    "find_terms",
    "name_tokens",
    "normalize_whitespace",
    "sequence",
    "sequence_terms",
    "tokenize",
]

MAX_TERM_CHARS = 64
_CACHE_LIMIT = 20_000  # chunks per memo (~6 MB); cleared when full
_BULK_CACHE_LIMIT = 100_000  # inside ``bulk_memo()``: ~30 MB, ~20% faster index builds

_STOPWORD_TEXT = """
    a about above after again against ain all am an and any are aren as at be because been before being below
    between both but by can couldn d did didn do does doesn doing don down during each few for from further had
    hadn has hasn have haven having he her here hers herself him himself his how i if in into is isn it its itself
    just ll m ma me mightn more most mustn my myself needn no nor not now o of off on once only or other our ours
    ourselves out over own re s same shan she should shouldn so some such t than that the their theirs them
    themselves then there these they this those through to too under until up ve very was wasn we were weren what
    when where which while who whom why will with won wouldn y you your yours yourself yourselves"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# TeX formatting commands that carry no meaning of their own.
_TEX_DROP_TEXT = """
    mathcal mathbf mathrm mathit mathbb mathsf mathtt mathfrak mathscr boldsymbol bm textbf textit textrm texttt
    textsc textsf textsuperscript textsubscript text emph em bf it rm tt sc sf sl mbox hbox operatorname frac dfrac
    tfrac sqrt left right big bigl bigr bigg biggl biggr cdot cdots ldots dots vdots times quad qquad cite citep
    citet ref eqref label url href footnote hat tilde bar vec widehat widetilde overline underline mathop limits
    displaystyle scriptstyle textstyle begin end item newline small large huge normalsize"""
_TEX_DROP = frozenset(_TEX_DROP_TEXT.split())

_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_HYPHENS = "\\-\u2010\u2011\u2012\u2013"
_TEX_ACCENT = r"\\(?:['\"`^~=.]|[HhCcVvUuKkRrDdBb](?=\{))\{?[A-Za-z]\}?"
_CHUNK = rf"(?:[^\W_]+|[{_MARKS}]+|{_TEX_ACCENT})"
_JOIN = rf"(?:[{_HYPHENS}]|(?<=\d)\.(?=\d))"
_TOKEN_RE = re.compile(rf"{_CHUNK}+(?:{_JOIN}{_CHUNK}+)*|\\[A-Za-z]+")
_TEX_ACCENT_RE = re.compile(_TEX_ACCENT)
_TEX_ACCENT_SUB = re.compile(r"\\(?:['\"`^~=.]|[HhCcVvUuKkRrDdBb](?=\{))\{?([A-Za-z])\}?")
_FOLDED_RUN_RE = re.compile(rf"[^\W_]+(?:{_JOIN}[^\W_]+)*")
_HYPHEN_SPLIT = re.compile(rf"[{_HYPHENS}]")
_ALNUM_SPLIT = re.compile(r"([^\W\d_]{2,})(\d.*)")
_NAME_RE = re.compile(r"[^\W_]+")
_ASCII_SPACES = {c: " " for c in (*range(9, 14), *range(28, 32))}
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
# Every code point str.split() treats as whitespace (checked by the tests), as a lookup table.
_SPACES = (*range(9, 14), *range(28, 33), 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F)
_SPACE_TABLE = np.zeros(0x3002, bool)
_SPACE_TABLE[[*_SPACES, 0x3000]] = True  # the last entry (0x3001) stands for every higher code point

_local = threading.local()  # PyStemmer objects must not be shared between threads


def _stem(word: str) -> str:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
        stemmer.maxCacheSize = 0  # its own cache is slow once full; callers memoise whole chunks
    return str(stemmer.stemWord(word[:MAX_TERM_CHARS]))


def _fold(raw: str) -> str:
    """TeX accents to letters, NFKC, case folding and diacritics removal."""
    if "\\" in raw:
        raw = _TEX_ACCENT_SUB.sub(r"\1", raw)
    if raw.isascii():
        return raw.lower()
    decomposed = unicodedata.normalize("NFKD", raw)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFKC", stripped.casefold())


RunInfo = tuple[tuple[str, ...], tuple[str, ...]]  # (index terms, sequence terms)


@functools.lru_cache(maxsize=1 << 14)
def _analyze_run(raw: str) -> RunInfo:
    if raw[0] == "\\" and raw[1:].isascii() and raw[1:].isalpha():  # a TeX command
        if raw[1:].lower() in _TEX_DROP:
            return (), ()
        raw = raw[1:]
    extra: list[str] = []  # pieces split at a letter/digit boundary, and compounds
    seq: list[str] = []
    for run in _FOLDED_RUN_RE.findall(_fold(raw)):
        pieces = _HYPHEN_SPLIT.split(run)
        for piece in pieces:
            split = _ALNUM_SPLIT.fullmatch(piece)
            if split:
                extra.append(_stem(piece))
            for part in split.groups() if split else (piece,):
                if part not in STOPWORDS:
                    seq.append(_stem(part))
        if len(pieces) > 1 and not all(p.replace(".", "").isdigit() for p in pieces):
            extra.append(_stem("".join(pieces)))
    return tuple(seq) + tuple(extra), tuple(seq)


def _analyze_chunk(chunk: str) -> RunInfo:
    if chunk.isascii() and chunk.isalpha():  # the common case: one plain word
        word = chunk.lower()
        if word in STOPWORDS:
            return (), ()
        stem = (_stem(word),)
        return stem, stem
    terms: list[str] = []
    seq: list[str] = []
    for raw in _TOKEN_RE.findall(chunk):
        run_terms, run_seq = _analyze_run(raw)
        terms += run_terms
        seq += run_seq
    return tuple(terms), tuple(seq)


class _ChunkCache(dict[str, tuple[str, ...]]):
    """Memo of chunk -> terms (``part`` 0) or sequence (``part`` 1); bounded by clearing.

    dict get/set are atomic under the GIL, so threads may share it.
    """

    def __init__(self, part: int) -> None:
        super().__init__()
        self.part = part
        self.limit = _CACHE_LIMIT

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        if len(self) >= self.limit:
            self.clear()
        # Quotes and periods at either end never belong to a run: "models." is analysed as "models".
        core = chunk.strip(_EDGE_PUNCTUATION)
        value = self[chunk] = (self[core] if core else ()) if core != chunk else _analyze_chunk(chunk)[self.part]
        return value


_EDGE_PUNCTUATION = ".'\"`"
_TERMS = _ChunkCache(0)
_SEQ = _ChunkCache(1)
# Characters that never belong to a run, a TeX command or a TeX accent: split there first (fast path).
_SEP_TABLE = {c: " " for c in range(128) if not chr(c).isalnum() and chr(c) not in "-.\\'\"`^~={}"}


def _prepare(text: str) -> str:
    # Lowercasing ASCII keeps offsets and run boundaries (the regex is case-blind) and helps the memo.
    return text.lower() if text.isascii() else text


def clear_caches() -> None:
    """Forget every memoised analysis (after a bulk build, so its memory can be returned)."""
    _TERMS.clear()
    _SEQ.clear()
    _analyze_run.cache_clear()


@contextlib.contextmanager
def bulk_memo() -> Iterator[None]:
    """Larger memos while indexing a whole archive; forgotten afterwards (single-threaded start-up use)."""
    _TERMS.limit = _SEQ.limit = _BULK_CACHE_LIMIT
    try:
        yield
    finally:
        _TERMS.limit = _SEQ.limit = _CACHE_LIMIT
        clear_caches()


def chunks(text: str) -> list[str]:
    """Whitespace/punctuation-separated chunks; no run spans two, so ``tokenize`` is their terms in order."""
    return _prepare(text).translate(_SEP_TABLE).split()


def chunk_terms(chunk: str) -> tuple[str, ...]:
    """The index terms of one chunk (memoised)."""
    return _TERMS[chunk]


def tokenize(text: str) -> list[str]:
    """The index terms of ``text``, in order (a bag of words for BM25)."""
    return list(chain.from_iterable(map(_TERMS.__getitem__, chunks(text))))


def sequence_terms(text: str) -> list[str]:
    """The words of ``text`` in order, without compounds: what phrases are matched against."""
    return list(chain.from_iterable(map(_SEQ.__getitem__, chunks(text))))


def _spans(text: str, part: int) -> list[tuple[str, int, int]]:
    out: list[tuple[str, int, int]] = []
    for m in _TOKEN_RE.finditer(_prepare(text)):
        start, end = m.span()
        out.extend((term, start, end) for term in _analyze_run(m.group())[part])
    return out


def analyze(text: str) -> list[tuple[str, int, int]]:
    """Index terms with the span (start, end) of their run in the original ``text``.

    ``[t for t, _, _ in analyze(x)] == tokenize(x)`` always holds.
    """
    return _spans(text, 0)


def sequence(text: str) -> list[tuple[str, int, int]]:
    """:func:`sequence_terms` with the span of each word's run in the original ``text``."""
    return _spans(text, 1)


def find_terms(text: str, terms: Collection[str]) -> list[tuple[int, int, frozenset[str]]]:
    """Spans of the runs of ``text`` having some of ``terms``, with those terms (for snippets).

    Plain ASCII text is searched for stem prefixes first (see :func:`_prefix_pattern`), so only a
    few chunks are analysed; other text is analysed chunk by chunk.
    """
    if not terms or not text:
        return []
    wanted = terms if isinstance(terms, frozenset) else frozenset(terms)
    prepared = _prepare(text)
    separated = prepared.translate(_SEP_TABLE)
    if prepared.isascii() and not ("\\" in prepared and _TEX_ACCENT_RE.search(prepared)):
        pattern = _prefix_pattern(wanted)
        starts = sorted(
            {separated.rfind(" ", 0, m.start()) + 1 for m in pattern.finditer(separated)} if pattern else ()
        )
        chunks = [(i, separated[i : j if (j := separated.find(" ", i)) >= 0 else len(separated)]) for i in starts]
    else:
        chunks = list(zip(_chunk_starts(separated), separated.split(), strict=True))
    out: list[tuple[int, int, frozenset[str]]] = []
    for base, chunk in chunks:
        if wanted.isdisjoint(_TERMS[chunk]):
            continue
        for m in _TOKEN_RE.finditer(chunk):
            have = wanted.intersection(_analyze_run(m.group())[0])
            if have:
                out.append((base + m.start(), base + m.end(), have))
    return out


@functools.lru_cache(maxsize=256)
def _prefix_pattern(terms: frozenset[str]) -> re.Pattern[str] | None:
    """A regex that matches, in lowercased ASCII text, inside every chunk that yields one of ``terms``.

    A Snowball stem keeps all but at most its last two letters from the word ("dying" -> "die"), so
    up to three of its first letters are searched for;
    a part that starts with a letter starts a word or follows a non-alphanumeric character, one
    that starts with a digit never follows a digit; a compound's text may have hyphens.
    """
    rests: dict[bool, dict[str, set[str]]] = {True: {}, False: {}}  # starts with a letter? -> first char -> rests
    for term in terms:
        if term.isascii() and term[0].isalnum():
            prefix = term[: max(1, min(3, len(term) - 2))]  # hyphens may sit anywhere in a compound's text
            rest = "".join("-?" + re.escape(c) for c in prefix[1:])
            rests[term[0].isalpha()].setdefault(prefix[0], set()).add(rest)
    alternatives = []
    for is_letter, before in ((True, "[a-z0-9]"), (False, "[0-9]")):
        if firsts := rests[is_letter]:
            branches = "|".join(
                f"(?<={c})" + ("" if "" in r else f"(?:{'|'.join(sorted(r))})") for c, r in firsts.items()
            )
            alternatives.append(f"[{''.join(sorted(firsts))}](?<!{before}.)(?:{branches})")
    return re.compile("|".join(alternatives)) if alternatives else None


def _any_of(rests: set[str]) -> str:
    return "" if "" in rests else f"(?:{'|'.join(sorted(rests))})"


def _chunk_starts(separated: str) -> list[int]:
    codes = np.frombuffer(separated.encode("utf-32-le", "surrogatepass"), np.uint32)
    space = _SPACE_TABLE[np.minimum(codes, len(_SPACE_TABLE) - 1)]
    return np.flatnonzero(~space & np.concatenate(([True], space[:-1]))).tolist()


def name_tokens(name: str) -> list[str]:
    """Tokens of a person's name for author filters: folded, unstemmed, stopwords kept."""
    return _NAME_RE.findall(_fold(name)) if name else []


def document_text(title: str, abstract: str) -> str:
    """The text indexed for a paper (search and keyword matching must agree on it)."""
    return f"{title}\n{abstract}"


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (hard wraps included) to one space; trim; drop lone surrogates."""
    if not text.isascii():
        text = _SURROGATE_RE.sub("\ufffd", text)
    else:  # fast path: hard wraps are single characters, so translating them keeps every offset
        flat = text.translate(_ASCII_SPACES)
        if "  " not in flat and flat[:1] != " " and flat[-1:] != " ":
            return flat
    return " ".join(text.split())
