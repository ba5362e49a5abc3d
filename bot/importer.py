"""Bulk import of paper metadata files into the store (``python -m bot import FILE``).

Two line-oriented formats are recognised per line from the JSON content, gzip or plain:

* the shared corpus format (JSONL): ``id``, ``title``, ``abstract``, ``authors`` (list),
  ``categories`` (list, primary first), ``date`` (YYYY-MM-DD listing day), optional ``comment``;
* the Kaggle arXiv snapshot (``arxiv-metadata-oai-snapshot.json``): ``authors`` and ``categories``
  are strings, plus ``versions``, ``update_date``, ``comments``, ``journal-ref``, ``doi``.

Valid arXiv ids are stored version-less; any other id becomes ``import:<id>``. Whitespace in
titles, abstracts and comments is collapsed. ``first_seen`` is set from the record (listing day,
else v1 date) so importing history does not make old papers look new to the digest.

Bad lines policy: each batch of lines is validated before it is written; a bad line is logged as
``file:line: what is wrong``, skipped and counted (good lines are never lost). Only a file with no
valid record in its first lines (not a supported format at all) raises ``ImportFormatError``.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Any

from bot.errors import ImportFormatError
from bot.models import Paper, split_arxiv_id
from bot.store import Store, UpsertCounts

log = logging.getLogger(__name__)

BATCH_LINES = 1000
PROBE_LINES = 100  # a file whose first PROBE_LINES non-blank lines are all bad is not a supported format
MAX_REPORTED = 100
SOURCE = "import"
_KAGGLE_KEYS = frozenset({"versions", "update_date", "authors_parsed", "comments", "journal-ref", "submitter"})


@dataclass
class ImportCounts:
    """What an import did: records read and stored, and the bad lines skipped (first few described)."""

    records: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    bad: int = 0
    bad_lines: list[str] = field(default_factory=list)  # "file:line: reason", at most MAX_REPORTED


def _optional(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
    return " ".join(value.split()) or None


def _required(obj: dict[str, Any], key: str) -> str:
    if key not in obj:
        raise ValueError(f"field {key!r} is missing")
    text = _optional(obj, key)
    if text is None:
        raise ValueError(f"field {key!r} is empty")
    return text


def _str_list(obj: dict[str, Any], key: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"field {key!r} must be a list of strings (JSONL corpus format)")
    return tuple(t for t in (" ".join(v.split()) for v in value) if t)


def _paper_id(obj: dict[str, Any]) -> tuple[str, int | None]:
    raw = obj.get("id")
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("field 'id' must be a non-empty string")
    try:
        return split_arxiv_id(raw)
    except ValueError:
        return f"import:{raw.strip()}", None


def _kaggle_authors(obj: dict[str, Any]) -> tuple[str, ...]:
    parsed = obj.get("authors_parsed")
    if isinstance(parsed, list) and parsed and all(isinstance(a, list) for a in parsed):
        names = []
        for parts in parsed:
            last, first, suffix = ([str(x).strip() for x in parts] + ["", "", ""])[:3]
            names.append(" ".join(x for x in (first, last, suffix) if x))
        return tuple(n for n in names if n)
    text = _optional(obj, "authors") or ""
    return tuple(a.strip() for a in text.replace(" and ", ", ").split(",") if a.strip())


def _kaggle_versions(obj: dict[str, Any]) -> tuple[int | None, datetime | None, datetime | None]:
    versions = obj.get("versions") or []
    if not isinstance(versions, list) or not all(isinstance(v, dict) for v in versions):
        raise ValueError("field 'versions' must be a list of objects")
    numbered: list[tuple[int, datetime | None]] = []
    for v in versions:
        label = str(v.get("version", ""))
        if not (label.startswith("v") and label[1:].isdigit()):
            raise ValueError(f"bad version label {label!r}")
        created = v.get("created")
        try:
            when = parsedate_to_datetime(created) if isinstance(created, str) else None
        except (TypeError, ValueError):
            raise ValueError(f"bad version date {created!r}") from None
        numbered.append((int(label[1:]), when.astimezone(UTC) if when and when.tzinfo else None))
    if not numbered:
        return None, None, None
    numbered.sort(key=lambda t: t[0])
    return numbered[-1][0], numbered[0][1], numbered[-1][1]


def parse_record(obj: Any) -> Paper:
    """One JSON object (either format) as a Paper.

    Raises:
        ValueError: the object is not a valid record; the message says which field is wrong.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    paper_id, version = _paper_id(obj)
    title, abstract = _required(obj, "title"), _required(obj, "abstract")
    if _KAGGLE_KEYS.intersection(obj):
        if not isinstance(obj.get("categories") or "", str):
            raise ValueError("field 'categories' must be a space-separated string (Kaggle snapshot format)")
        v_last, published, updated = _kaggle_versions(obj)
        return Paper(
            id=paper_id,
            title=title,
            abstract=abstract,
            authors=_kaggle_authors(obj),
            categories=tuple((obj.get("categories") or "").split()),
            version=v_last or version,
            published=published,
            updated=updated,
            comment=_optional(obj, "comments"),
            journal_ref=_optional(obj, "journal-ref"),
            doi=_optional(obj, "doi"),
            sources=(SOURCE,),
            first_seen=published or _day_start(_date(obj, "update_date")),
        )
    announced = _date(obj, "date")
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=_str_list(obj, "authors"),
        categories=_str_list(obj, "categories"),
        version=version,
        announced=announced,
        comment=_optional(obj, "comment"),
        sources=(SOURCE,),
        first_seen=_day_start(announced),
    )


def parse_line(path: Path, lineno: int, raw: bytes) -> Paper:
    """One line of an import file as a Paper.

    Raises:
        ImportFormatError: naming ``file:line`` and what is wrong with the line.
    """
    try:
        return parse_record(json.loads(raw.decode("utf-8-sig")))
    except json.JSONDecodeError as exc:
        raise ImportFormatError(f"{path}:{lineno}: invalid JSON ({exc.msg}); expected one object per line") from exc
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path}:{lineno}: not UTF-8 text ({exc.reason})") from exc
    except ValueError as exc:
        raise ImportFormatError(f"{path}:{lineno}: {exc}") from exc


def _date(obj: dict[str, Any], key: str) -> date | None:
    value = obj.get(key)
    if value is None:
        return None
    try:
        if isinstance(value, str):
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError(f"field {key!r} must be a YYYY-MM-DD date, got {value!r}")


def _day_start(day: date | None) -> datetime | None:
    return datetime.combine(day, time(0), tzinfo=UTC) if day else None


def _open(path: Path) -> IO[bytes]:
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _lines(path: Path, counts: ImportCounts) -> Iterator[tuple[int, bytes]]:
    """Numbered lines; a read error (truncated gzip, I/O error) is recorded as a bad line and ends the file."""
    lineno = 0
    try:
        with _open(path) as fh:
            for lineno, raw in enumerate(fh, start=1):
                yield lineno, raw
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        _bad(counts, ImportFormatError(f"{path}:{lineno + 1}: cannot read further ({exc})"))


def import_file(path: str | Path, store: Store, progress: Callable[[int], None] | None = None) -> ImportCounts:
    """Import every valid record of ``path`` into ``store``; skip and count bad lines.

    ``progress(n)`` is called after each batch with the number of lines it consumed (fits ``tqdm.update``).

    Raises:
        ImportFormatError: the file is missing, or holds no valid record in its first lines.
    """
    path = Path(path)
    if not path.is_file():
        raise ImportFormatError(f"{path}: no such file")
    counts = ImportCounts()
    stored = UpsertCounts()
    batch: list[Paper] = []
    consumed = nonblank = 0

    def flush() -> None:
        nonlocal stored, batch, consumed
        if batch:
            stored += store.upsert_papers(batch)
            counts.records += len(batch)
            batch = []
        if progress and consumed:
            progress(consumed)
        consumed = 0

    for lineno, raw in _lines(path, counts):
        consumed += 1
        if raw.strip():
            nonblank += 1
            try:
                batch.append(parse_line(path, lineno, raw))
            except ImportFormatError as exc:
                _bad(counts, exc)
                if counts.records + len(batch) == 0 and nonblank >= PROBE_LINES:
                    raise ImportFormatError(f"{path}: not a supported format; {counts.bad_lines[0]}") from exc
        if len(batch) >= BATCH_LINES:
            flush()
    flush()
    if counts.records == 0 and counts.bad:
        raise ImportFormatError(f"{path}: not a supported format (no valid record); {counts.bad_lines[0]}")
    counts.inserted, counts.updated, counts.unchanged = stored.inserted, stored.updated, stored.unchanged
    return counts


def _bad(counts: ImportCounts, exc: ImportFormatError) -> None:
    counts.bad += 1
    if len(counts.bad_lines) < MAX_REPORTED:
        counts.bad_lines.append(str(exc))
        log.warning("skipping bad line %s", exc)
