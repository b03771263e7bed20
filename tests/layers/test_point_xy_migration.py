"""Schema version 15 (PostGIS): a store made before it gets the point column of cameras and incidents
(generated from geom, so rows written before and after hold their position) and the covering GiST
index, and a bbox page then reads the ids and the count from that index alone."""
from __future__ import annotations

import pytest
from gridpatrol.layers import features, migrations
from gridpatrol.layers.models import POINT_XY_COLUMN, POINT_XY_LAYERS
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.migration_helpers import reopen_as_upgraded

CAMERA = ("INSERT INTO cameras (code, name, project, camera_type, status, secrecy_level, synthetic, source, geom) "
          "VALUES (:code, 'c', 'skynet', 'fixed', 'online', 0, true, 'test', ST_SetSRID(ST_MakePoint(:x, :y), 4326))")


def test_an_older_postgis_store_gets_the_point_column_and_its_index(store_url):  # noqa: ANN001
    if not store_url.startswith("postgresql"):
        pytest.skip("PostGIS only: GeoPackage pages use its R-tree")
    store = open_store(store_url)

    def to_v14(c) -> None:  # noqa: ANN001
        for table in POINT_XY_LAYERS:
            c.execute(text(f"ALTER TABLE {table} DROP COLUMN {POINT_XY_COLUMN}"))  # drops its index too
        c.execute(text(CAMERA), {"code": "old", "x": 104.05, "y": 30.65})

    store = reopen_as_upgraded(store, store_url, 14, to_v14)
    try:
        with store.begin() as c:
            have = c.execute(text("SELECT table_name FROM information_schema.columns WHERE table_schema = "
                                  "current_schema() AND column_name = :c"), {"c": POINT_XY_COLUMN}).scalars().all()
            assert sorted(have) == sorted(POINT_XY_LAYERS)
            c.execute(text(CAMERA), {"code": "new", "x": 104.06, "y": 30.66})
            got = c.execute(text(f"SELECT code, {POINT_XY_COLUMN}[0], {POINT_XY_COLUMN}[1] FROM cameras ORDER BY code"))
            assert [tuple(r) for r in got] == [("new", 104.06, 30.66), ("old", 104.05, 30.65)]
            c.execute(text("ANALYZE cameras"))
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM cameras"))  # the visibility map index-only scans read
            c.execute(text("SET enable_seqscan = off"))  # a table of two rows: show the plan the index gives
            sql, params = features.page_statement(store, "cameras", bbox=(104.0, 30.6, 104.055, 30.655), limit=10)
            plan = "\n".join(r[0] for r in c.exec_driver_sql("EXPLAIN " + sql, params))
            assert f"Index Only Scan using ix_cameras_{POINT_XY_COLUMN}" in plan, plan
            matched, fetched, _last, feats = c.exec_driver_sql(sql, params).one()
            assert (matched, fetched) == (1, 1) and '"code": "old"' in feats
            assert migrations.current_version(c) == migrations.CURRENT_VERSION
    finally:
        store.dispose()
