"""Shared test fixtures: environment isolation, fixture paths, and a database URL per backend.

Every store test takes ``db_url`` and runs twice: on a fresh SQLite file and on a fresh schema of
the PostgreSQL server at ``PAPERBOY_TEST_PG_URL`` (default: the local server, database ``test``).
PostgreSQL tests are never skipped silently: an unreachable server fails them, unless
``PAPERBOY_TEST_PG=skip`` is set explicitly.
"""

from __future__ import annotations

import gzip
import itertools
import json
import os
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bot.models import Paper
    from bot.store import Store
    from tests.botproc import BotProcess
    from tests.fakes.sources import FakeSources

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PAPERBOY_SHARED", "/work/shared"))
FIXTURES = SHARED / "fixtures"
PG_URL = os.environ.get("PAPERBOY_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CORPUS = SHARED / "data" / "arxiv-cs-daily-2025-2026" / "arxiv_abstracts.jsonl.gz"


def corpus_papers(n: int) -> list[Paper]:
    """The first ``n`` real abstracts of the shared corpus, with authors, categories and dates."""
    from bot.models import Paper

    if not CORPUS.is_file():
        pytest.fail(f"shared corpus not found at {CORPUS}; set PAPERBOY_SHARED")
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in itertools.islice(f, n)]
    return [
        Paper(
            id=r["id"],
            title=r["title"],
            abstract=r["abstract"],
            authors=tuple(r["authors"]),
            categories=tuple(r["categories"]),
            announced=date.fromisoformat(r["date"]),
        )
        for r in rows
    ]


@pytest.fixture(autouse=True)
def _isolate_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's Slack tokens, database or config."""
    for name in list(os.environ):
        if name.startswith(("SLACK_", "PAPERBOY_CONFIG", "ARXIV_", "HF_")) or name in {
            "DATABASE_URL",
            "DYNO",
            "RENDER",
            "RAILWAY_ENVIRONMENT",
            "FLY_APP_NAME",
        }:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES}; set PAPERBOY_SHARED")
    return FIXTURES


def _pg_schema_url() -> Iterator[str]:
    if os.environ.get("PAPERBOY_TEST_PG") == "skip":
        pytest.skip("PAPERBOY_TEST_PG=skip")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:  # pragma: no cover - environment problem
        pytest.fail(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database; the test runs once per backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'paperboy.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def sources(fixtures_dir: Path) -> Iterator[FakeSources]:
    """The fake arXiv (RSS, Atom, API) and Hugging Face server, serving the shared fixtures."""
    from tests.fakes.sources import FakeSources

    with FakeSources(fixtures_dir) as fake:
        yield fake


@pytest.fixture
def bots() -> Iterator[list[BotProcess]]:
    """Worker processes a test starts; each is killed after the test, whatever happened."""
    started: list[BotProcess] = []
    yield started
    for bot in started:
        bot.stop()


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on each backend (see ``db_url``)."""
    from bot.store import Store

    s = Store.open(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to an empty PostgreSQL schema (for tests that need PostgreSQL specifically)."""
    yield from _pg_schema_url()
