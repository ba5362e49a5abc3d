"""The grammar of ``/papers``: turns the command text into a :class:`Command`. Pure: no I/O, no clock.

Forms (the first word picks the subcommand; anything else is a search)::

    /papers <query>                      search (also ``/papers search <query>`` for a query that
                                         starts with a subcommand word, e.g. ``search digest models``)
    /papers keywords [list]              list the channel's keywords and excludes
    /papers keywords add <kw>, <kw> …    add keywords     (``remove``/``rm`` removes them)
    /papers exclude add|remove <kw> …    edit excludes    (``/papers keywords exclude add …`` too)
    /papers digest                       post today's digest now
    /papers since <day>                  catch up: YYYY-MM-DD, today, yesterday, a weekday, ``3 days``
    /papers help                         usage (also empty text)

Several keywords in one command are separated by commas (or new lines); a keyword may have several
words (all must appear) and a ``"quoted phrase"`` is one keyword even if it contains a comma.
Slack's curly quotes count as straight quotes. The query itself is checked by :mod:`bot.query` when it
is searched. Bad input raises :class:`QueryError` saying what is wrong in words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

from bot.errors import QueryError

Kind = Literal[
    "search",
    "keywords_list",
    "keywords_add",
    "keywords_remove",
    "exclude_add",
    "exclude_remove",
    "digest",
    "since",
    "help",
]

MAX_KEYWORDS = 20
MAX_KEYWORD_CHARS = 200
MAX_SINCE_DAYS = 31
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "＂": '"'})
_HELP_WORDS = frozenset({"help", "?", "-h", "--help", "usage"})
_KEYWORD_WORDS = frozenset({"keywords", "keyword", "kw"})
_EXCLUDE_WORDS = frozenset({"exclude", "excludes", "exclusions"})
_ADD_WORDS = frozenset({"add", "+"})
_REMOVE_WORDS = frozenset({"remove", "rm", "delete", "del", "-"})
_LIST_WORDS = frozenset({"", "list", "ls", "show"})
_DAYS_RE = re.compile(r"(\d{1,3})\s*(?:d|days?)", re.IGNORECASE)
_ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EDIT_KINDS: dict[tuple[str, str], Kind] = {
    ("keyword", "add"): "keywords_add",
    ("keyword", "remove"): "keywords_remove",
    ("exclude", "add"): "exclude_add",
    ("exclude", "remove"): "exclude_remove",
}
SINCE_FORMS = "a date like 2026-06-01, `today`, `yesterday`, a weekday like `monday`, or `3 days`"


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed ``/papers`` command. Only the fields of its ``kind`` are set."""

    kind: Kind
    query: str = ""  # search
    keywords: tuple[str, ...] = ()  # keywords_add/remove, exclude_add/remove
    since: str = ""  # since: the day as typed (resolve it with parse_since and the local date)


def normalize(text: str) -> str:
    """Straight quotes and single spaces (Slack clients send curly quotes and NBSPs)."""
    return " ".join(text.translate(_QUOTES).split())


def parse_command(text: str) -> Command:
    """Parse the text after ``/papers``.

    Raises:
        QueryError: a subcommand with missing or malformed arguments, or an over-long query.
    """
    clean = normalize(text)
    head, _, rest = clean.partition(" ")
    word = head.casefold()
    if word in _HELP_WORDS or not clean:
        return Command("help")
    if word == "search":
        return _search(rest, "`/papers search` needs something to search for, e.g. `/papers search diffusion`.")
    if word in _KEYWORD_WORDS:
        return _keywords(rest, "keywords", "keyword")
    if word in _EXCLUDE_WORDS:
        return _keywords(rest, "exclude", "exclude")
    if word == "digest":
        if rest.casefold() not in ("", "now", "today"):
            raise QueryError(
                f"`/papers digest` takes no words after it. To search for them, use `/papers search {clean[:60]}`."
            )
        return Command("digest")
    if word == "since":
        if not rest:
            raise QueryError(f"`/papers since` needs a day: {SINCE_FORMS}.")
        _since_spec(rest)  # check the form now; the day is resolved against the local date later
        return Command("since", since=rest)
    return _search(clean, "")


def _search(query: str, empty_message: str) -> Command:
    if not query:
        raise QueryError(empty_message)
    return Command("search", query=query)


def _keywords(rest: str, prefix: str, kind: str) -> Command:
    action, _, args = rest.partition(" ")
    verb = action.casefold()
    if kind == "keyword" and verb in _EXCLUDE_WORDS:
        return _keywords(args, "keywords exclude", "exclude")
    if verb in _LIST_WORDS and not args:
        return Command("keywords_list")
    if verb in _ADD_WORDS or verb in _REMOVE_WORDS:
        op = "add" if verb in _ADD_WORDS else "remove"
        example = f'`/papers {prefix} {op} diffusion models, "graph neural network"`'
        keywords = split_keywords(args)
        if not keywords:
            raise QueryError(f"Say which {kind}s to {op}, separated by commas, e.g. {example}.")
        return Command(_EDIT_KINDS[kind, op], keywords=keywords)
    raise QueryError(
        f"`/papers {prefix}` takes `add` or `remove` and a comma-separated list, e.g. "
        f"`/papers {prefix} add diffusion models`. To search for “{rest[:60]}”, use `/papers search {prefix} …`."
    )


def split_keywords(text: str) -> tuple[str, ...]:
    """Split on commas, semicolons and new lines outside double quotes; de-duplicate ignoring case.

    Raises:
        QueryError: an unclosed quote, too many keywords, or an over-long keyword.
    """
    text = text.translate(_QUOTES)
    if text.count('"') % 2:
        raise QueryError('A quote (") is not closed. Put each phrase in a pair of quotes, e.g. "graph neural network".')
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch in ",;\n" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    out: dict[str, str] = {}
    for part in parts:
        keyword = " ".join(part.split())
        if not keyword or keyword == '""':
            continue
        if len(keyword) > MAX_KEYWORD_CHARS:
            raise QueryError(
                f"The keyword “{keyword[:40]}…” is too long; keep each under {MAX_KEYWORD_CHARS} characters."
            )
        out.setdefault(keyword.casefold(), keyword)
    if len(out) > MAX_KEYWORDS:
        raise QueryError(f"That is {len(out)} keywords; change at most {MAX_KEYWORDS} per command.")
    return tuple(out.values())


def _since_spec(text: str) -> tuple[str, int | date]:
    """Classify the day text: ``("days", n)`` back from today, ``("weekday", 0-6)`` or ``("date", d)``."""
    word = " ".join(text.casefold().split())
    word = word.removeprefix("last ") if word not in ("last week",) else word
    if word == "today":
        return "days", 0
    if word == "yesterday":
        return "days", 1
    if word in ("last week", "a week", "1 week", "week"):
        return "days", 7
    m = _DAYS_RE.fullmatch(word)
    if m:
        return "days", int(m.group(1))
    for n, name in enumerate(WEEKDAYS):
        if word in (name, name[:3]):
            return "weekday", n
    if _ISO_RE.fullmatch(word):
        try:
            return "date", date.fromisoformat(word)
        except ValueError:
            raise QueryError(f"“{text[:40]}” is not a real date.") from None
    raise QueryError(f"“{text[:40]}” is not a day I understand; use {SINCE_FORMS}.")


def parse_since(text: str, today: date) -> date:
    """The first day of a catch-up, resolved against the channel's local ``today``.

    A weekday means its latest occurrence *before* today (``monday`` on a Monday is a week ago).

    Raises:
        QueryError: an unknown form, a future date, or a day more than ``MAX_SINCE_DAYS`` back.
    """
    kind, value = _since_spec(text)
    if kind == "days":
        assert isinstance(value, int)
        day = today - timedelta(days=value)
    elif kind == "weekday":
        assert isinstance(value, int)
        day = today - timedelta(days=(today.weekday() - value - 1) % 7 + 1)
    else:
        assert isinstance(value, date)
        day = value
    if day > today:
        raise QueryError(f"{day.isoformat()} is in the future; catch up from a day up to today.")
    if (today - day).days > MAX_SINCE_DAYS:
        raise QueryError(
            f"{day.isoformat()} is more than {MAX_SINCE_DAYS} days ago; search the archive with `/papers <query>`."
        )
    return day
