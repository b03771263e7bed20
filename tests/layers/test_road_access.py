"""OSM access tags reach the stored roads (schema version 2), so routes planned from the store
keep off ways closed to walkers or drivers; a store made before the tags were kept is upgraded."""
from __future__ import annotations

import numpy as np
from sqlalchemy import inspect, text

from gis.osm import read_osm
from gis.streets import allowed
from layers import migrations
from layers.importing import import_osm
from layers.store import open_store
from tests.conftest import data_path


def test_access_tags_are_stored_and_close_the_same_ways(store):
    osm = read_osm(data_path("chengdu", "chengdu.osm"))
    import_osm(store, data_path("chengdu", "chengdu.osm"))
    roads = store.read_layer("roads").sort_values(["osm_id", "seq"]).reset_index(drop=True)
    ref = osm.roads.sort_values(["osm_id", "seq"]).reset_index(drop=True)
    assert len(roads) == len(ref)
    for col in ("access", "foot", "motor_vehicle"):
        assert roads[col].notna().sum() == ref[col].notna().sum(), col
    assert roads["access"].notna().sum() > 0  # the extract does tag some ways
    for mode in ("walk", "drive"):
        closed = ~allowed(roads, mode)
        assert closed.sum() > 0, mode
        assert np.array_equal(closed, ~allowed(ref, mode)), mode


def test_a_store_from_before_the_tags_is_upgraded(store_url):
    s = open_store(store_url)
    if s.is_gpkg:
        # SQLite cannot drop a column of a GeoPackage table (GDAL's triggers block it), so an old
        # store cannot be faked here; check that the step's ALTER TABLE … ADD COLUMN works on one.
        with s.begin() as c:
            c.execute(text("ALTER TABLE roads ADD COLUMN probe TEXT"))
        import_osm(s, data_path("chengdu", "chengdu.osm"))
        assert s.read_layer("roads")["access"].notna().sum() > 0
        s.dispose()
        return
    with s.begin() as c:  # make it look like a version-1 store
        for col in ("access", "foot", "motor_vehicle"):
            c.execute(text(f"ALTER TABLE roads DROP COLUMN {col}"))
        c.execute(text("DELETE FROM gp_schema_version WHERE version >= 2"))
    s.dispose()
    s = open_store(store_url)
    with s.engine.connect() as c:
        assert migrations.current_version(c) == migrations.CURRENT_VERSION
        cols = {col["name"] for col in inspect(c).get_columns("roads")}
    assert {"access", "foot", "motor_vehicle"} <= cols
    import_osm(s, data_path("chengdu", "chengdu.osm"))
    assert s.read_layer("roads")["access"].notna().sum() > 0
    s.dispose()
