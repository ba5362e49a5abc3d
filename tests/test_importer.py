"""The file importer: both formats, gzip, bad lines, and the first 2,000 lines of the shared corpus."""

from __future__ import annotations

import gzip
import itertools
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.errors import ImportFormatError
from bot.importer import import_file
from bot.store import Store

CORPUS = Path("/work/shared/data/arxiv-cs-daily-2025-2026/arxiv_abstracts.jsonl.gz")

CORPUS_LINES = [
    {
        "id": "2503.11742",
        "title": "Safe Vision-Language Models via\n  Unsafe Weights Manipulation",
        "abstract": "Vision-language models (VLMs) often inherit the biases and unsafe\nassociations present.",
        "categories": ["cs.CV", "cs.AI"],
        "authors": ["Moreno D'Incà", "Elia Peruzzo"],
        "date": "2025-03-18",
        "comment": "Work in progress",
    },
    {
        "id": "doc-17",
        "title": "A non-arXiv record",
        "abstract": "Body.",
        "categories": [],
        "authors": [],
        "date": "2025-03-19",
    },
]

# Shaped like lines of Kaggle's arxiv-metadata-oai-snapshot.json.
KAGGLE_LINES = [
    {
        "id": "0704.0001",
        "submitter": "Pavel Nadolsky",
        "authors": "C. Bal\\'azs, E. L. Berger, P. M. Nadolsky, C.-P. Yuan",
        "title": "Calculation of prompt diphoton production cross sections at Tevatron and\n  LHC energies",
        "comments": "37 pages, 15 figures; published version",
        "journal-ref": "Phys.Rev.D76:013009,2007",
        "doi": "10.1103/PhysRevD.76.013009",
        "report-no": "ANL-HEP-PR-07-12",
        "categories": "hep-ph",
        "license": None,
        "abstract": "  A fully differential calculation in perturbative quantum chromodynamics is\npresented.\n",
        "versions": [
            {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
            {"version": "v2", "created": "Tue, 24 Jul 2007 20:10:27 GMT"},
        ],
        "update_date": "2008-11-13",
        "authors_parsed": [
            ["Balázs", "C.", ""],
            ["Berger", "E. L.", ""],
            ["Nadolsky", "P. M.", ""],
            ["Yuan", "C. -P.", ""],
        ],
    },
    {
        "id": "math/0406451",
        "submitter": None,
        "authors": "John Smith and Jane Doe",
        "title": "An old-style identifier",
        "comments": None,
        "journal-ref": None,
        "doi": None,
        "categories": "math.GT math.AG",
        "abstract": "Old.",
        "versions": [{"version": "v1", "created": "Wed, 23 Jun 2004 10:00:00 GMT"}],
        "update_date": "2007-05-23",
    },
]


def _write(path: Path, lines: list[str | bytes], *, gz: bool = False) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_corpus_format_gzip_and_non_arxiv_ids(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "sample.jsonl.gz", [json.dumps(x) for x in CORPUS_LINES], gz=True)
    done: list[int] = []
    counts = import_file(path, store, progress=done.append)
    assert (counts.records, counts.inserted, counts.bad) == (2, 2, 0)
    assert sum(done) == 2
    got = store.get_papers(["2503.11742", "import:doc-17"])
    p = got["2503.11742"]
    assert p.title == "Safe Vision-Language Models via Unsafe Weights Manipulation"
    assert p.abstract == "Vision-language models (VLMs) often inherit the biases and unsafe associations present."
    assert (p.authors, p.categories, p.comment) == (
        ("Moreno D'Incà", "Elia Peruzzo"),
        ("cs.CV", "cs.AI"),
        "Work in progress",
    )
    assert p.announced == date(2025, 3, 18) and p.first_seen == datetime(2025, 3, 18, tzinfo=UTC)
    assert p.sources == ("import",) and p.version is None
    assert got["import:doc-17"].url is None
    assert import_file(path, store).unchanged == 2  # re-import changes nothing


def test_kaggle_snapshot_format(store: Store, tmp_path: Path) -> None:
    path = _write(tmp_path / "arxiv-metadata-oai-snapshot.json", [json.dumps(x) for x in KAGGLE_LINES])
    counts = import_file(path, store)
    assert (counts.inserted, counts.bad) == (2, 0)
    got = store.get_papers(["0704.0001", "math/0406451"])
    p = got["0704.0001"]
    assert p.title == "Calculation of prompt diphoton production cross sections at Tevatron and LHC energies"
    assert p.abstract == "A fully differential calculation in perturbative quantum chromodynamics is presented."
    assert p.authors == ("C. Balázs", "E. L. Berger", "P. M. Nadolsky", "C. -P. Yuan")
    assert (p.version, p.categories, p.doi, p.journal_ref) == (
        2,
        ("hep-ph",),
        "10.1103/PhysRevD.76.013009",
        "Phys.Rev.D76:013009,2007",
    )
    assert p.comment == "37 pages, 15 figures; published version"
    assert p.published == datetime(2007, 4, 2, 19, 18, 42, tzinfo=UTC)
    assert p.updated == datetime(2007, 7, 24, 20, 10, 27, tzinfo=UTC)
    assert p.first_seen == p.published
    old = got["math/0406451"]
    assert old.authors == ("John Smith", "Jane Doe") and old.categories == ("math.GT", "math.AG")
    assert old.url == "https://arxiv.org/abs/math/0406451"


def test_bad_lines_are_reported_with_file_and_line_and_skipped(store: Store, tmp_path: Path) -> None:
    good = json.dumps(CORPUS_LINES[0])
    lines: list[str | bytes] = [
        good,
        "{not json",
        json.dumps({**CORPUS_LINES[0], "id": "2503.00002", "title": "  "}),
        "",
        json.dumps({**CORPUS_LINES[0], "id": "2503.00003", "categories": "cs.CV"}),
        b'{"id": "2503.00004", "title": "\xff\xfe", "abstract": "x"}',
        json.dumps({**CORPUS_LINES[0], "id": 42}),
        json.dumps({**CORPUS_LINES[0], "id": "2503.00005", "date": "18/03/2025"}),
        "[1, 2]",
        json.dumps({**CORPUS_LINES[0], "id": "2503.00006v3"}),
    ]
    path = _write(tmp_path / "mixed.jsonl", lines)
    counts = import_file(path, store)
    assert (counts.records, counts.inserted, counts.bad) == (2, 2, 7)
    assert [m.split(": ", 1)[0] for m in counts.bad_lines] == [f"{path}:{n}" for n in (2, 3, 5, 6, 7, 8, 9)]
    reasons = " | ".join(counts.bad_lines)
    for expected in (
        "invalid JSON",
        "'title' is empty",
        "'categories' must be a list",
        "not UTF-8",
        "'id' must be a non-empty string",
        "YYYY-MM-DD",
        "expected a JSON object",
    ):
        assert expected in reasons
    assert set(store.get_papers(["2503.11742", "2503.00006"])) == {"2503.11742", "2503.00006"}
    assert store.get_papers(["2503.00006"])["2503.00006"].version == 3


def test_unsupported_or_missing_files_raise(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ImportFormatError, match="no such file"):
        import_file(tmp_path / "nope.jsonl", store)
    path = _write(tmp_path / "notes.txt", ["hello", "world"])
    with pytest.raises(ImportFormatError, match=rf"not a supported format.*{path.name}:1: invalid JSON"):
        import_file(path, store)
    assert store.count_papers() == 0


def test_truncated_gzip_keeps_the_good_lines_and_counts_the_break(store: Store, tmp_path: Path) -> None:
    lines = [json.dumps({**CORPUS_LINES[0], "id": f"2503.{i:05d}"}) for i in range(300)]
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) * 2 // 3])
    counts = import_file(path, store)
    assert counts.bad == 1 and "cannot read further" in counts.bad_lines[0]
    assert 0 < counts.records < 300 and store.count_papers() == counts.records


def test_first_2000_lines_of_the_shared_corpus(store: Store, tmp_path: Path) -> None:
    if not CORPUS.is_file():
        pytest.fail(f"shared corpus missing at {CORPUS}")
    with gzip.open(CORPUS, "rb") as fh:
        head = list(itertools.islice(fh, 2000))
    path = tmp_path / "head.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(head)))
    counts = import_file(path, store)
    assert (counts.records, counts.inserted, counts.bad) == (2000, 2000, 0)
    assert store.count_papers() == 2000 and store.max_seq() == 2000
    first = json.loads(head[0])
    p = store.get_papers([first["id"]])[first["id"]]
    assert p.title == " ".join(first["title"].split()) and "\n" not in p.abstract
    assert list(p.categories) == first["categories"] and list(p.authors) == first["authors"]
    assert p.first_seen == datetime.combine(date.fromisoformat(first["date"]), datetime.min.time(), tzinfo=UTC)
    again = import_file(path, store)
    assert (again.unchanged, again.inserted, again.updated) == (2000, 0, 0) and store.max_seq() == 2000
