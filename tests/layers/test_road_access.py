"""OSM access tags reach the stored roads (schema version 2), so routes planned from the store
keep off ways closed to walkers or drivers; a store made before the tags were kept is upgraded."""
from __future__ import annotations

import numpy as np
import pyogrio
from gridpatrol.gis.osm import read_osm
from gridpatrol.gis.streets import allowed
from gridpatrol.layers import migrations
from gridpatrol.layers.importing import import_osm
from gridpatrol.layers.store import open_store
from sqlalchemy import inspect, text

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


OLD_COLUMNS = ("access", "foot", "motor_vehicle")


def _make_version_1(s) -> None:  # noqa: ANN001
    """Give the roads table of a new store the shape version 1 wrote (no access tags) and record
    the store as version 1."""
    with s.begin() as c:
        saved = []
        if s.is_gpkg:
            # SQLite re-parses every trigger of the file on DROP COLUMN, and GDAL's triggers on
            # gpkg_metadata_reference do not parse ("NEW.column_nameIS"): set them aside meanwhile.
            saved = c.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                   "AND tbl_name = 'gpkg_metadata_reference'")).all()
            for name, _ in saved:
                c.execute(text(f'DROP TRIGGER "{name}"'))
        for col in OLD_COLUMNS:
            c.execute(text(f"ALTER TABLE roads DROP COLUMN {col}"))
        for _, sql in saved:
            c.execute(text(sql))
        c.execute(text("DELETE FROM gp_schema_version WHERE version >= 2"))


def test_a_store_from_before_the_tags_is_upgraded(store_url):
    s = open_store(store_url)
    _make_version_1(s)
    with s.engine.connect() as c:  # the old shape really is there before the upgrade
        assert migrations.current_version(c) == 1
        assert not {col["name"] for col in inspect(c).get_columns("roads")} & set(OLD_COLUMNS)
        triggers = (c.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")).scalar()
                    if s.is_gpkg else None)
    s.dispose()
    s = open_store(store_url)
    with s.engine.connect() as c:
        assert migrations.current_version(c) == migrations.CURRENT_VERSION
        cols = {col["name"] for col in inspect(c).get_columns("roads")}
        if s.is_gpkg:  # GDAL's triggers (spatial index, geometry type checks) are all still in place
            assert c.execute(text("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'")).scalar() == triggers
    assert set(OLD_COLUMNS) <= cols
    import_osm(s, data_path("chengdu", "chengdu.osm"))
    roads = s.read_layer("roads")
    assert roads["access"].notna().sum() > 0 and roads["foot"].notna().sum() > 0
    assert (~allowed(roads, "walk")).sum() > 0
    if s.is_gpkg:  # and the file still opens as a GeoPackage layer with the new fields (QGIS reads it so)
        path = s.engine.url.database
        info = pyogrio.read_info(path, layer="roads")
        assert set(OLD_COLUMNS) <= set(info["fields"]) and info["features"] == len(roads)
        assert len(pyogrio.read_dataframe(path, layer="roads", bbox=tuple(roads.total_bounds))) == len(roads)
    s.dispose()
