"""OGC item pages compile their filters once per shape (layers.features.compiled_where): the SQL
and the bound values must be what a fresh compile gives for every request, whatever its bbox,
secrecy level or property values."""
from __future__ import annotations

import random

from gridpatrol.layers import features
from gridpatrol.layers.store import open_store
from gridpatrol.layers.visibility import secrecy_rows


def test_cached_compile_gives_each_request_its_own_values(pg_url):  # noqa: ANN001
    store = open_store(pg_url)
    try:
        table, dialect = store.table("cameras"), store.engine.dialect
        rng = random.Random(7)
        seen = set()
        for i in range(300):
            x, y = rng.uniform(103.0, 105.0), rng.uniform(30.0, 31.0)
            where = features.items_where(
                store, "cameras", table,
                role_where=secrecy_rows(table, rng.randint(0, 3)) if i % 3 else None,
                bbox=(x, y, x + rng.uniform(0.01, 0.1), y + 0.05) if i % 4 else None,
                equals={"code": f"C{i}"} if i % 5 == 0 else {"status": "online", "code": "摄像机'; --"} if i % 7 == 0
                else None)
            if where is None:
                continue
            fresh = where.compile(dialect=dialect)
            sql, values = features.compiled_where(where, dialect)
            assert (sql, values) == (str(fresh), fresh.params), i
            seen.add(sql)
        assert 4 <= len(seen) < 50  # a few shapes, each compiled once and reused with other values
    finally:
        store.dispose()
