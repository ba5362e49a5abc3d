"""The ``index_cache`` table: the search index's serialized parts (see ``bot.index_io``), replaced as a whole.

Kept in the database, not in a file, so it survives where the database does (a PaaS worker's disk
does not) and always describes this database's papers. It is only a cache: losing it costs one
rebuild of the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bot.store.engine import run_tx
from bot.store.schema import index_cache

_PG_SAVE_LOCK = 0x50504958  # pg_advisory_xact_lock key: two workers saving at once take turns ("PPIX")


def save_parts(engine: Engine, make_parts: Callable[[], Iterable[tuple[str, bytes]]]) -> int:
    """Replace the cache with ``make_parts()`` (consumed one part at a time) in one transaction.

    Returns the bytes written. Raises StoreError when the database keeps failing.
    """

    def fn(conn: Connection) -> int:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SAVE_LOCK)))
        conn.execute(index_cache.delete())
        written = 0
        for name, data in make_parts():
            conn.execute(index_cache.insert().values(name=name, data=data))
            written += len(data)
        return written

    return run_tx(engine, fn)


def load_parts(engine: Engine) -> dict[str, bytes]:
    """Every cached part by name (empty when nothing is cached), read in one transaction."""

    def fn(conn: Connection) -> dict[str, bytes]:
        rows = conn.execute(sa.select(index_cache.c.name, index_cache.c.data))
        return {name: bytes(data) for name, data in rows}

    return run_tx(engine, fn, write=False)


def clear(engine: Engine) -> None:
    run_tx(engine, lambda conn: conn.execute(index_cache.delete()))
