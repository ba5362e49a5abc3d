"""The query language shared by ``/papers search`` and channel keywords, and its checks on a paper.

Syntax (items separated by spaces)::

    diffusion distillation        plain terms (search: any of them, ranked by BM25)
    "vision transformer"          phrase: its words must appear consecutively
    -survey  -"medical imaging"   exclusions: papers containing them are removed
    author:LeCun  author:"Yann LeCun"   an author whose name has all these words (initials match prefixes)
    cat:cs.CL  cat:cs             category (an archive such as ``cs`` matches all of cs.*); -cat:cs.CV excludes
    since:2025-06-01  until:2025-06-30  by paper date (YYYY, YYYY-MM or YYYY-MM-DD)

Several ``cat:`` are alternatives, several ``author:`` must all match. ``word:`` prefixes that are
not one of these four fields are ordinary text (``foo:bar`` searches ``foo`` and ``bar``). Slack's
curly quotes count as quotes. Words are analysed by :mod:`bot.text`, so a query that is only
stopwords ("the of") has nothing to search for. A query needs a word to search for or a filter;
exclusions alone only remove results. Anything wrong raises :class:`~bot.errors.QueryError`.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from datetime import date

from bot.errors import QueryError
from bot.models import Paper
from bot.text import document_text, name_tokens, sequence_terms, tokenize

MAX_QUERY_CHARS = 1000
FIELDS = ("author", "cat", "since", "until")
_SEP = "\x1f"  # never inside a term
_FIELD_RE = re.compile(r"([A-Za-z]+):")
_CAT_RE = re.compile(r"[a-z][a-z-]*(?:\.[a-z-]+)?")
_DATE_RE = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")
_EXAMPLES = {"author": '"Yann LeCun"', "cat": "cs.CL", "since": "2025-06-01", "until": "2025-06-30"}
_QUOTES = str.maketrans(dict.fromkeys("\u201c\u201d\u201e\u201f\u00ab\u00bb\uff02", '"'))


@dataclass(frozen=True, slots=True)
class Phrase:
    """A term or quoted phrase as typed, with its BM25 terms and its word sequence."""

    text: str
    quoted: bool
    terms: tuple[str, ...]
    words: tuple[str, ...]

    @property
    def display(self) -> str:
        return f'"{self.text}"' if self.quoted else self.text

    @property
    def needs_text(self) -> bool:
        """True when postings alone cannot decide it (a sequence of two or more words)."""
        return len(self.words) > 1

    @property
    def required(self) -> tuple[str, ...]:
        """Terms a document must contain for this to occur in it."""
        return self.words or self.terms


@dataclass(frozen=True, slots=True)
class AuthorFilter:
    text: str
    tokens: tuple[str, ...]

    @property
    def needs_text(self) -> bool:
        return len(self.tokens) != 1 or len(self.tokens[0]) == 1


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed query; ``raw`` is the cleaned input (control characters -> spaces)."""

    raw: str
    positives: tuple[Phrase, ...] = ()
    excludes: tuple[Phrase, ...] = ()
    authors: tuple[AuthorFilter, ...] = ()
    exclude_authors: tuple[AuthorFilter, ...] = ()
    categories: tuple[str, ...] = ()
    exclude_categories: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    @property
    def terms(self) -> tuple[Phrase, ...]:
        return tuple(p for p in self.positives if not p.quoted)

    @property
    def phrases(self) -> tuple[Phrase, ...]:
        return tuple(p for p in self.positives if p.quoted)

    @property
    def tokens(self) -> list[str]:
        """The BM25 query tokens: every positive term's and phrase's index terms, in typed order."""
        return [t for p in self.positives for t in p.terms]

    @property
    def display_terms(self) -> tuple[str, ...]:
        return tuple(p.display for p in self.positives)

    @property
    def has_filter(self) -> bool:
        return bool(self.authors or self.categories or self.since or self.until)


def _clean(text: str) -> str:
    out = []
    for ch in text.translate(_QUOTES):
        if "\ud800" <= ch <= "\udfff":
            out.append("\ufffd")
        elif ch.isprintable() or ch == " ":
            out.append(ch)
        elif unicodedata.category(ch) != "Cf":  # zero-width and direction marks vanish
            out.append(" ")
    return "".join(out)


def _phrase(text: str, quoted: bool) -> Phrase:
    return Phrase(text, quoted, tuple(tokenize(text)), tuple(sequence_terms(text)))


def _date(field: str, value: str) -> date:
    m = _DATE_RE.fullmatch(value)
    try:
        if not m:
            raise ValueError
        year, month, day = int(m[1]), int(m[2] or 0), int(m[3] or 0)
        if field == "since":
            return date(year, month or 1, day or 1)
        month = month or 12
        return date(year, month, day or calendar.monthrange(year, month)[1])
    except ValueError:
        raise QueryError(f'{field}: "{value}" is not a date; use YYYY-MM-DD, e.g. {field}:2025-06-01') from None


def _author(value: str) -> AuthorFilter:
    tokens = tuple(name_tokens(value))
    if not tokens:
        raise QueryError(f'author: "{value}" has no letters to match a name')
    return AuthorFilter(value, tokens)


def _category(value: str) -> str:
    cat = value.lower()
    if not _CAT_RE.fullmatch(cat):
        raise QueryError(f'cat: "{value}" is not an arXiv category; use e.g. cat:cs.CL or cat:cs')
    return cat


class _Parser:
    def __init__(self, text: str) -> None:
        self.s, self.i = text, 0
        self.parts: dict[str, list] = {k: [] for k in ("pos", "neg", "au", "nau", "cat", "ncat")}
        self.since: date | None = None
        self.until: date | None = None
        self.had_words = False

    def quoted(self) -> str:
        end = self.s.find('"', self.i + 1)
        if end < 0:
            raise QueryError(f'unbalanced quote: the phrase starting {self.s[self.i : self.i + 30]} has no closing "')
        text, self.i = self.s[self.i + 1 : end], end + 1
        return text

    def bare(self) -> str:
        start = self.i
        while self.i < len(self.s) and not self.s[self.i].isspace() and self.s[self.i] != '"':
            self.i += 1
        return self.s[start : self.i]

    def field(self, name: str, neg: bool) -> None:
        value = (self.quoted() if self.s.startswith('"', self.i) else self.bare()).strip()
        if not value:
            raise QueryError(f"{name}: needs a value, e.g. {name}:{_EXAMPLES[name]}")
        if name in ("since", "until"):
            if neg:
                raise QueryError(f"-{name}: cannot be excluded; use {'until' if name == 'since' else 'since'}: instead")
            day = _date(name, value)
            if name == "since":
                self.since = max(day, self.since) if self.since else day
            else:
                self.until = min(day, self.until) if self.until else day
        elif name == "author":
            self.parts["nau" if neg else "au"].append(_author(value))
        else:
            self.parts["ncat" if neg else "cat"].append(_category(value))

    def item(self) -> None:
        neg = False
        if self.s[self.i] == "-":
            self.i += 1
            if self.i >= len(self.s) or self.s[self.i].isspace():
                return  # a lone dash
            neg = True
        m = _FIELD_RE.match(self.s, self.i)
        if m and m[1].lower() in FIELDS:
            self.i = m.end()
            self.field(m[1].lower(), neg)
            return
        is_quoted = self.s[self.i] == '"'
        phrase = _phrase(self.quoted() if is_quoted else self.bare(), is_quoted)
        self.had_words = self.had_words or not neg
        if phrase.terms:
            self.parts["neg" if neg else "pos"].append(phrase)

    def parse(self) -> None:
        while self.i < len(self.s):
            if self.s[self.i].isspace():
                self.i += 1
            else:
                self.item()


def plain_query(text: str) -> Query:
    """All of ``text`` as plain words, no syntax (evaluation, "more like this"); may have no tokens."""
    raw = " ".join(_clean(text).split())
    return Query(raw, positives=(_phrase(raw, False),))


def parse_query(text: str) -> Query:
    """Parse a search query or a channel keyword; raise QueryError saying what is wrong."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query too long ({len(text)} characters, max {MAX_QUERY_CHARS})")
    raw = " ".join(_clean(text).split())
    if not raw:
        raise QueryError("empty query: type some words to search for")
    p = _Parser(raw)
    p.parse()
    if p.since and p.until and p.since > p.until:
        raise QueryError(f"since:{p.since} is after until:{p.until}, so nothing can match")
    parts = p.parts
    query = Query(
        raw,
        positives=tuple(parts["pos"]),
        excludes=tuple(parts["neg"]),
        authors=tuple(parts["au"]),
        exclude_authors=tuple(parts["nau"]),
        categories=tuple(dict.fromkeys(parts["cat"])),
        exclude_categories=tuple(dict.fromkeys(parts["ncat"])),
        since=p.since,
        until=p.until,
    )
    if not query.positives and not query.has_filter:
        if p.had_words:
            raise QueryError(f'nothing to search for in "{raw}": very common words and punctuation are ignored')
        raise QueryError(
            "nothing to search for: add a word or a filter (author:, cat:, since:, until:); -words only remove results"
        )
    return query


# --- checks on a paper (keyword matching, and search's verification of phrases and authors) ---


@dataclass(frozen=True, slots=True)
class PaperText:
    """A paper's title and abstract analysed once: index terms and the joined word sequence."""

    counts: dict[str, int]
    length: int
    words: str

    @classmethod
    def of(cls, paper: Paper, *, counted: bool = True) -> PaperText:
        """Analyse a paper; without ``counted`` only the word sequence (enough for phrase checks)."""
        text = document_text(paper.title, paper.abstract)
        terms = tokenize(text) if counted else []
        return cls(Counter(terms), len(terms), _SEP + _SEP.join(sequence_terms(text)) + _SEP)

    def contains(self, phrase: Phrase) -> bool:
        if not phrase.words:  # only compounds of stopwords, e.g. "of-the": needs ``counted``
            return all(t in self.counts for t in phrase.terms)
        return (_SEP + _SEP.join(phrase.words) + _SEP) in self.words


def author_matches(wanted: AuthorFilter, authors: tuple[str, ...]) -> bool:
    """Some author's name has every wanted token (a one-letter token matches as an initial)."""
    for name in authors:
        have = name_tokens(name)
        if all(any(h == w or (len(w) == 1 and h.startswith(w)) for h in have) for w in wanted.tokens):
            return True
    return False


def category_matches(wanted: str, categories: tuple[str, ...]) -> bool:
    return any(c.lower() == wanted or c.lower().startswith(wanted + ".") for c in categories)


def filters_pass(query: Query, paper: Paper) -> bool:
    """Category, author and date filters and exclusions (not the words)."""
    if query.categories and not any(category_matches(c, paper.categories) for c in query.categories):
        return False
    if any(category_matches(c, paper.categories) for c in query.exclude_categories):
        return False
    if not all(author_matches(a, paper.authors) for a in query.authors):
        return False
    if any(author_matches(a, paper.authors) for a in query.exclude_authors):
        return False
    if query.since or query.until:
        day = paper.date
        if day is None or (query.since and day < query.since) or (query.until and day > query.until):
            return False
    return True


def text_passes(query: Query, text: PaperText, *, all_terms: bool) -> bool:
    """Phrases present, exclusions absent; with ``all_terms`` every plain term must occur too."""
    required = query.positives if all_terms else query.phrases
    return all(text.contains(p) for p in required) and not any(text.contains(p) for p in query.excludes)
