"""Imports into both stores: counts, idempotence, export round trips, spatial index use, versions."""
from __future__ import annotations

import numpy as np
import pyogrio
import pytest
import shapely
from gridpatrol.gis.errors import InputError, StoreError
from gridpatrol.layers import migrations
from gridpatrol.layers.export import export_layer
from gridpatrol.layers.importing import import_areas, import_osm
from gridpatrol.layers.models import LAYERS
from gridpatrol.layers.store import open_store
from sqlalchemy import select, text

from tests.conftest import data_path


@pytest.fixture
def chengdu(store):
    res = import_osm(store, data_path("chengdu", "chengdu.osm"))
    for code in ("510104", "510105", "510106", "510107", "510108"):
        import_areas(store, data_path("chengdu", f"{code}.geojson"), crs="gcj02", level="district")
    return store, res


def test_import_counts_land_in_the_store_once(chengdu):
    store, res = chengdu
    assert store.count("roads") == res.counts["road_segments"] == 5070
    assert store.count("buildings") == res.counts["buildings"] + res.counts["landuse_estimates"]
    assert store.count("barriers") == res.counts["barriers"]
    assert store.count("areas") == 5
    # The same file again replaces rather than duplicates.
    import_osm(store, data_path("chengdu", "chengdu.osm"))
    assert store.count("roads") == 5070
    assert store.count("buildings") == res.counts["buildings"] + res.counts["landuse_estimates"]
    imports = store.read_layer("imports")
    assert (imports["kind"] == "osm").sum() == 2
    assert imports["source_sha256"].str.len().eq(64).all()


def test_export_round_trips_every_layer(chengdu, tmp_path):
    store, _ = chengdu
    for layer in ("roads", "buildings", "barriers", "areas"):
        original = store.read_layer(layer).reset_index(drop=True)
        for ext in ("geojson", "gpkg"):
            out = tmp_path / f"{layer}.{ext}"
            assert export_layer(store, layer, out) == len(original)
            back = pyogrio.read_dataframe(out)
            assert len(back) == len(original)
            assert back.crs.to_epsg() == 4326
            attrs = [c for c in original.columns if c != "geometry"]
            assert set(attrs) <= set(back.columns)
            for col in ("osm_id", "name", "highway", "households", "code", "kind"):
                if col in attrs:
                    a = original[col].astype(object).where(original[col].notna(), None).tolist()
                    b = back[col].astype(object).where(back[col].notna(), None).tolist()
                    if col == "households":
                        np.testing.assert_allclose(np.array(a, float), np.array(b, float))
                    else:
                        assert a == b, (layer, ext, col)
            # Geometries survive to within a micro-degree (GeoJSON writes 15 significant digits).
            d = shapely.hausdorff_distance(original.geometry.values, back.geometry.values)
            assert np.nanmax(d) < 1e-6


def test_bbox_query_uses_the_spatial_index(chengdu):
    store, _ = chengdu
    bbox = (104.07, 30.66, 104.075, 30.665)
    roads = store.read_layer("roads", bbox=bbox)
    # Same answer as a brute-force filter over every road.
    everything = store.read_layer("roads")
    brute = everything[shapely.intersects(shapely.envelope(everything.geometry.values), shapely.box(*bbox))]
    assert sorted(roads["id"]) == sorted(brute["id"])
    table = store.table("roads")
    stmt = select(table.c.id).where(store.bbox_filter(table, bbox))
    sql = str(stmt.compile(store.engine, compile_kwargs={"literal_binds": True}))
    with store.engine.connect() as c:
        if store.is_gpkg:
            plan = " ".join(str(r[-1]) for r in c.execute(text("EXPLAIN QUERY PLAN " + sql)))
            assert "rtree_roads_geom" in plan and "VIRTUAL TABLE INDEX" in plan
        else:
            # 5,000 rows fit in a few pages, so the planner may rightly prefer a sequential scan;
            # with it switched off, the plan shows the filter is one the GiST index can serve
            # (a cast to geography, for example, could not use it at all).
            c.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(r[0] for r in c.execute(text("EXPLAIN " + sql)))
            assert "idx_roads_geom" in plan, plan


def test_nanjing_and_baltimore_import(store):
    res = import_osm(store, data_path("nanjing", "xuanwu.osm"))
    assert res.counts["buildings"] > 1200
    res = import_osm(store, data_path("baltimore", "baltimore.osm.pbf"))
    assert res.counts["street_ways"] > 3800
    assert store.count("roads") > 9000


def test_feet_without_crs_is_refused_then_imports_with_crs(store):
    path = data_path("baltimore", "neighborhoods.geojson")
    with pytest.raises(InputError, match=r"neighborhoods\.geojson.*--crs EPSG"):
        import_areas(store, path, level="community")
    assert store.count("areas") == 0
    import_areas(store, path, crs="EPSG:2248", level="community", code_field="NBRDESC", name_field="LABEL")
    areas = store.read_layer("areas")
    assert len(areas) == 278
    minx, miny, maxx, maxy = areas.total_bounds
    assert -76.72 < minx < maxx < -76.52 and 39.19 < miny < maxy < 39.38  # Baltimore city


def test_schema_is_versioned_and_newer_stores_refused(store_url):
    s = open_store(store_url)
    with s.engine.connect() as c:
        assert migrations.current_version(c) == migrations.CURRENT_VERSION
    with s.begin() as c:
        c.execute(text("INSERT INTO gp_schema_version (version, description, applied_at) "
                       "VALUES (999, 'from the future', CURRENT_TIMESTAMP)"))
    s.dispose()
    with pytest.raises(StoreError, match="newer"):
        open_store(store_url)


def test_every_layer_table_exists(store):
    for name in LAYERS:
        assert store.count(name) == 0


def test_geopackage_store_opens_in_gdal_like_qgis(gpkg_url):
    """QGIS reads GeoPackages through GDAL: every layer must be listed with its geometry type,
    stored as standard GPKG geometry blobs, and read back in full."""
    import sqlite3
    import warnings

    store = open_store(gpkg_url)
    import_osm(store, data_path("nanjing", "xuanwu.osm"))
    store.dispose()
    path = gpkg_url[len("gpkg:///"):]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GDAL warns about unknown column types or blobs
        layers = dict(pyogrio.list_layers(path))
        assert layers["roads"] == "LineString"
        assert layers["buildings"] == "MultiPolygon"
        assert layers["cameras"] == "Point"
        roads = pyogrio.read_dataframe(path, layer="roads")
    assert len(roads) == 783 and roads.crs.to_epsg() == 4326
    assert roads["name"].notna().sum() > 300
    with sqlite3.connect(path) as c:
        blob = c.execute("SELECT geom FROM roads LIMIT 1").fetchone()[0]
        app_id = c.execute("PRAGMA application_id").fetchone()[0]
    assert blob[:2] == b"GP"  # GeoPackage binary header, not a SpatiaLite blob
    assert app_id == 0x47504B47  # "GPKG"
