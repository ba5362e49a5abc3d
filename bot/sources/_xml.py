"""Safe XML parsing and small text/date helpers shared by the arXiv RSS and API parsers.

Every body goes through ``parse_feed``: it refuses HTML pages, empty bodies, DTDs and entity
declarations (no expansion, ever: defusedxml with ``forbid_dtd``), malformed or truncated XML and
unknown or unsupported declared encodings, always as ``FeedFormatError`` naming the source.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, date, datetime
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from bot.errors import FeedFormatError

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
DC = "{http://purl.org/dc/elements/1.1/}"
OPENSEARCH = "{http://a9.com/-/spec/opensearch/1.1/}"

# arXiv taxonomy codes (cs.AI, math.GT, hep-th, astro-ph.GA); ACM/MSC codes do not match.
CATEGORY_RE = re.compile(r"^[a-z][a-z-]*(?:\.[A-Za-z][A-Za-z-]*)?$")
_WS = re.compile(r"\s+")
# NUL and other control characters (PostgreSQL refuses NUL in text; none belong in a title), and lone
# surrogates (JSON can carry "\ud800"; no database can encode it). Whitespace controls are collapsed.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_INT = 2**31 - 1  # the largest value the database's INTEGER column holds


def looks_like_html(body: bytes, content_type: str = "") -> bool:
    head = body[:512].lstrip().lower()
    return "html" in content_type or head.startswith((b"<!doctype html", b"<html"))


def parse_feed(source: str, body: bytes, content_type: str = "", *, what: str = "feed") -> Element:
    """Parse ``body`` as XML and return the root element, or raise ``FeedFormatError``."""
    if not body.strip():
        raise FeedFormatError(source, f"empty {what} body")
    if looks_like_html(body, content_type):
        raise FeedFormatError(source, f"got an HTML page instead of an XML {what}")
    try:
        return SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise FeedFormatError(source, f"{what} refused: it declares a DTD or entities ({type(exc).__name__})") from exc
    except ParseError as exc:
        raise FeedFormatError(source, f"malformed or truncated XML {what}: {exc}") from exc
    except (LookupError, ValueError) as exc:  # encoding="U-F-8", "utf-32", "rot13": unknown or unsupported
        raise FeedFormatError(source, f"XML {what} declares an unusable encoding: {exc}") from exc


def text_of(el: Element | None) -> str | None:
    """The element's text (``""`` for an empty element), or None when the element is absent."""
    if el is None:
        return None
    return "".join(el.itertext())


def clean(text: str | None) -> str:
    """Collapse runs of whitespace (hard-wrapped titles/abstracts) into single spaces.

    Control characters are dropped and lone surrogates become U+FFFD, so the text can always be stored.
    """
    text = _SURROGATE.sub("\ufffd", _CONTROL.sub("", text or ""))
    return _WS.sub(" ", text).strip()


def sane_version(version: int | None) -> int | None:
    """A version number that fits the database (``v99999999999`` in a feed is noise, not a version)."""
    return version if version is not None and 0 <= version <= MAX_INT else None


def categories(terms: list[str]) -> tuple[str, ...]:
    """Keep arXiv category codes only, de-duplicated, in order (primary first)."""
    out: list[str] = []
    for term in terms:
        term = term.strip()
        if CATEGORY_RE.match(term) and term not in out:
            out.append(term)
    return tuple(out)


def iso_datetime(text: str | None) -> datetime | None:
    """An aware datetime (a value without an offset is taken as UTC), or None when unparseable.

    Values that cannot be expressed in UTC (``0001-01-01T00:00+14:00``) are None too, so the store
    never sees a naive or out-of-range datetime.
    """
    if not text or not text.strip():
        return None
    try:
        value = datetime.fromisoformat(text.strip())
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=UTC)
        value.astimezone(UTC)  # OverflowError at the edges of the calendar
    except (ValueError, OverflowError):
        return None
    return value


def rfc822_date(text: str | None) -> date | None:
    """The calendar day of an RFC 822 date, in its own offset (``… 00:00:00 -0400`` → that day)."""
    if not text or not text.strip():
        return None
    try:
        return email.utils.parsedate_to_datetime(text.strip()).date()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
