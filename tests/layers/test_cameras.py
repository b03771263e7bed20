"""Camera registry on both stores: imports (CSV mapping, GeoJSON, GPKG), bad rows, atomicity, GCJ-02 warning, store queries = in-memory."""
from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pyproj
import pytest
import shapely
from gridpatrol.gis.cameras import CameraIndex
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.cameras import (
    cameras_at,
    import_cameras,
    link_incidents,
    write_cameras,
)
from typer.testing import CliRunner

from tests.cached_stores import chengdu_osm_inputs, chengdu_osm_only
from tests.conftest import data_path
from tests.store_cache import open_filled

BALTIMORE_MAP = "code=ID,name=CameraName,owner_unit=Owner,lon=Longitude,lat=Latitude"
GEOD = pyproj.Geod(ellps="WGS84")


def _codes(store) -> list[str]:
    return sorted(store.read_layer("cameras")["code"])


def test_baltimore_cctv_imports_with_a_column_mapping(store):
    src = data_path("baltimore", "cctv_2014.csv")
    res = import_cameras(store, src, mapping=BALTIMORE_MAP, code_prefix="baltimore:", project="other")
    raw = pd.read_csv(src)
    assert res.counts["cameras"] == len(raw) == store.count("cameras")
    cams = store.read_layer("cameras").set_index("code")
    row = raw.iloc[0]
    got = cams.loc[f"baltimore:{row['ID']}"]
    assert got["name"] == row["CameraName"] and got["owner_unit"] == row["Owner"]
    assert got.geometry.x == pytest.approx(row["Longitude"]) and got.geometry.y == pytest.approx(row["Latitude"])
    # importing again replaces, never duplicates
    import_cameras(store, src, mapping=BALTIMORE_MAP, code_prefix="baltimore:", project="other")
    assert store.count("cameras") == len(raw)
    # without the prefix, the bare ids are refused as malformed GB/T 28181 codes
    with pytest.raises(InputError, match=r"row 1 \(line 2\).*GB/T 28181"):
        import_cameras(store, src, mapping=BALTIMORE_MAP, project="other")
    with pytest.raises(InputError, match="required column.*project"):
        import_cameras(store, src, mapping=BALTIMORE_MAP, code_prefix="baltimore:")


def test_bad_rows_are_listed_and_the_store_is_unchanged(store, tmp_path):
    good = "51010400001320000001"
    import_cameras(store, data_path("baltimore", "cctv_2014.csv"), mapping=BALTIMORE_MAP, code_prefix="baltimore:", project="other")
    before = _codes(store)
    f = tmp_path / "cams.csv"
    rows = [
        ["code", "name", "project", "lon", "lat", "direction_deg", "fov_deg"],
        [good, "好的", "天网", "104.06", "30.66", "90", "60"],
        ["51010400001320000002", "缺坐标", "skynet", "", "30.66", "", ""],
        ["5101040000132000003", "短一位", "skynet", "104.06", "30.66", "", ""],
        ["51010400001180000004", "录像机", "skynet", "104.06", "30.66", "", ""],
        [good, "重复", "sharp_eyes", "104.07", "30.67", "", ""],
        ["51010400001320000006", "方向错", "雪亮", "104.06", "30.66", "400", "60"],
        ["51010400001320000007", "好的2", "雪亮", "104.061", "30.661", "", ""],
    ]
    with open(f, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    with pytest.raises(InputError) as err:
        import_cameras(store, f)
    msg = str(err.value)
    assert "5 bad camera row(s); nothing was imported" in msg
    assert "row 2 (line 3): missing coordinates" in msg
    assert "row 3 (line 4): device code '5101040000132000003' has 19 digits" in msg
    assert "row 4 (line 5): type code 118 (NVR) is not a camera" in msg
    assert f"row 5 (line 6): device code {good} repeats row 1" in msg
    assert "row 6 (line 7): direction_deg 400 is outside 0–360" in msg
    assert _codes(store) == before
    res = import_cameras(store, f, skip_bad=True)
    assert res.counts["cameras"] == 2 and len(res.dropped["bad_rows"]) == 5 and res.counts["bad_rows"] == 5
    cams = store.read_layer("cameras").set_index("code")
    assert cams.loc[good, "project"] == "skynet" and cams.loc["51010400001320000007", "project"] == "sharp_eyes"
    assert len(_codes(store)) == len(before) + 2


def test_missing_required_column_and_unknown_mapping_are_refused(store, tmp_path):
    f = tmp_path / "c.csv"
    f.write_text("code,name,project,x_coord,lat\n51010400001320000001,a,天网,104.0,30.6\n", encoding="utf-8")
    with pytest.raises(InputError, match="required column.*lon"):
        import_cameras(store, f)
    with pytest.raises(InputError, match="no column 'Longitude'"):
        import_cameras(store, f, mapping="lon=Longitude")
    res = import_cameras(store, f, mapping="lon=x_coord")
    assert res.counts["cameras"] == 1


def test_geojson_and_projected_gpkg_import(store, tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    lon, lat = 104.05 + rng.random(n) * 0.05, 30.65 + rng.random(n) * 0.05
    gdf = gpd.GeoDataFrame({
        "code": [f"51010400001320{i:06d}" for i in range(n)], "name": [f"摄像机{i}" for i in range(n)],
        "project": "skynet", "direction_deg": rng.uniform(0, 360, n), "type": "fixed",
    }, geometry=shapely.points(lon, lat), crs=4326)
    gj = tmp_path / "cams.geojson"
    pyogrio.write_dataframe(gdf, gj)
    assert import_cameras(store, gj).counts["cameras"] == n
    gp = tmp_path / "cams.gpkg"
    g2 = gdf.assign(code=[f"51010400001320{i + 1000:06d}" for i in range(n)]).to_crs(32648)  # UTM 48N metres
    pyogrio.write_dataframe(g2, gp)
    assert import_cameras(store, gp).counts["cameras"] == n
    cams = store.read_layer("cameras").set_index("code")
    back = cams.loc[g2["code"]]
    _, _, d = GEOD.inv(back.geometry.x.to_numpy(), back.geometry.y.to_numpy(), lon, lat)
    assert d.max() < 0.01
    np.testing.assert_allclose(back["azimuth_deg"].to_numpy(), gdf["direction_deg"].to_numpy())


@pytest.fixture
def chengdu_streets(store_url):  # noqa: ANN001, ANN201
    """Chengdu's streets, buildings and OSM cameras imported: an open copy of the cached store."""
    yield from open_filled(store_url, "chengdu-osm", chengdu_osm_only, chengdu_osm_inputs())


def test_gcj02_file_imported_as_wgs84_is_detected(chengdu_streets, tmp_path):
    from gridpatrol.gis.synthetic import synthetic_cameras

    store = chengdu_streets
    roads = store.read_layer("roads")
    cams = synthetic_cameras(roads, store.read_layer("buildings"), "510104", seed=4).iloc[:200]
    lon, lat = cams.geometry.x.to_numpy(), cams.geometry.y.to_numpy()
    glon, glat = wgs84_to_gcj02(lon, lat)
    f = tmp_path / "gcj.csv"
    pd.DataFrame({"code": cams["code"], "name": cams["name"], "project": cams["project"],
                  "lon": glon, "lat": glat}).to_csv(f, index=False)
    res = import_cameras(store, f, crs="wgs84")
    assert len(res.warnings) == 1 and "--crs gcj02" in res.warnings[0]
    # with the right --crs: no warning, and the positions are the true ones within 0.5 m
    res = import_cameras(store, f, crs="gcj02")
    assert res.warnings == []
    got = store.read_layer("cameras").set_index("code").loc[cams["code"]]
    _, _, d = GEOD.inv(got.geometry.x.to_numpy(), got.geometry.y.to_numpy(), lon, lat)
    assert d.max() < 0.5
    # a true WGS-84 file gets no warning
    f2 = tmp_path / "wgs.csv"
    pd.DataFrame({"code": cams["code"], "name": cams["name"], "project": cams["project"],
                  "lon": lon, "lat": lat}).to_csv(f2, index=False)
    assert import_cameras(store, f2).warnings == []


def test_in_view_from_the_store_equals_in_memory(store):
    rng = np.random.default_rng(11)
    n = 20_000
    lon0, lat0, w = -76.64, 39.27, 0.06
    ctype = rng.choice(["fixed", "fixed", "fixed", "dome"], n)
    cams = gpd.GeoDataFrame({
        "code": [f"test:{i}" for i in range(n)], "project": "other",
        "azimuth_deg": np.where(rng.random(n) < 0.9, rng.uniform(0, 360, n), np.nan),
        "fov_deg": np.where(rng.random(n) < 0.8, rng.uniform(20, 120, n), np.nan),
        "range_m": np.where(rng.random(n) < 0.8, rng.uniform(15, 180, n), np.nan),
        "camera_type": ctype, "status": rng.choice(["online", "offline", "fault"], n, p=[0.8, 0.1, 0.1]),
    }, geometry=shapely.points(lon0 + rng.random(n) * w, lat0 + rng.random(n) * w), crs=4326)
    with store.begin() as conn:
        write_cameras(store, conn, cams)
    mem = CameraIndex(cams)
    pts = np.column_stack([lon0 + rng.random(300) * w, lat0 + rng.random(300) * w])
    n_seen = 0
    for lon, lat in pts:
        a = cameras_at(store, lon, lat, in_view_only=True)
        b = mem.in_view(lon, lat)
        assert list(a["code"]) == list(b["code"])  # same cameras, same ranking
        np.testing.assert_allclose(a["distance_m"], b["distance_m"], atol=1e-6)
        n_seen += len(a)
        r = cameras_at(store, lon, lat, radius_m=120.0)
        assert set(r["code"]) == set(mem.within(lon, lat, 120.0)["code"])
    assert n_seen > 300


def test_link_incidents_and_cli_outputs(store, tmp_path, monkeypatch):
    from gridpatrol.layers.incidents import import_incidents
    from gridpatrol.scripts.cli import app

    import_cameras(store, data_path("baltimore", "cctv_2014.csv"), mapping=BALTIMORE_MAP, code_prefix="baltimore:", project="other")
    import_incidents(store, data_path("baltimore", "crime_2018_homicide.json"),
                     mapping="occurred_at=CrimeDate,time=CrimeTime,category=Description,lon=Longitude,lat=Latitude",
                     tz="America/New_York", state="closed")
    pairs = link_incidents(store, radius_m=150.0)
    inc = store.read_layer("incidents")
    mem = CameraIndex(store.read_layer("cameras")).link(inc.geometry.values, radius_m=150.0)
    assert len(pairs) == len(mem) > 50
    # the store's index join + exact test gives the very pairs of the in-memory KD-tree
    got = set(zip(pairs["incident_id"], pairs["camera_code"], pairs["in_view"]))
    want = set(zip(inc["id"].to_numpy()[mem["point"].to_numpy()], mem["code"], mem["in_view"]))
    assert got == want
    runner = CliRunner()
    monkeypatch.setenv("GRIDPATROL_DB", store.url)
    out = tmp_path / "pairs.csv"
    res = runner.invoke(app, ["link-incidents", "--radius", "150", "--out", str(out)])
    assert res.exit_code == 0, res.output
    df = pd.read_csv(out)
    assert {"incident_id", "camera_code", "distance_m", "in_view"} <= set(df.columns)
    assert len(df) == len(pairs) and (df["distance_m"] <= 150.0).all()
    p = inc.geometry.iloc[0]
    res = runner.invoke(app, ["cameras-at", "--radius", "400", "--json", "--", str(p.x), str(p.y)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    want = cameras_at(store, p.x, p.y, radius_m=400.0)
    assert [r["code"] for r in rows] == list(want["code"])
    assert all({"code", "distance_m", "in_view"} <= set(r) for r in rows)


def test_osm_surveillance_cameras_share_the_layer_with_defaults(store, tmp_path):
    # rows as the OSM import writes them (man_made=surveillance: direction optional, no fov/range)
    lon0, lat0 = 104.06, 30.66
    east_lon, east_lat, _ = GEOD.fwd(lon0, lat0, 90, 40)   # 40 m east of the spot
    west_lon, west_lat, _ = GEOD.fwd(lon0, lat0, 270, 80)  # 80 m west
    osm = gpd.GeoDataFrame({
        "osm_id": [1, 2, 3], "code": ["osm:1", "osm:2", "osm:3"], "name": [None, "路口监控", None],
        "azimuth_deg": [270.0, np.nan, 90.0], "fov_deg": np.nan, "camera_type": ["fixed", "dome", "fixed"],
        "source": "osm", "project": "other", "status": "online",
    }, geometry=shapely.points([east_lon, west_lon, west_lon], [east_lat, west_lat, west_lat]), crs=4326)
    with store.begin() as conn:
        store.insert_gdf(conn, "cameras", osm)
    f = tmp_path / "c.csv"
    f.write_text(f"code,name,project,lon,lat,direction_deg\n51010400001320000001,天网1,天网,{lon0},{lat0},0\n",
                 encoding="utf-8")
    import_cameras(store, f)
    got = cameras_at(store, lon0, lat0, radius_m=100.0).set_index("code")
    assert set(got.index) == {"osm:1", "osm:2", "osm:3", "51010400001320000001"}
    # osm:1 looks west at the spot from 40 m (default 60°, 50 m): in view; osm:2 is a dome
    # (default 100 m) 80 m away: in view; osm:3 looks east away from the spot: not in view
    assert got.loc["osm:1", "in_view"] and got.loc["osm:1", "fov_deg"] == 60.0 and got.loc["osm:1", "range_m"] == 50.0
    assert got.loc["osm:2", "in_view"] and got.loc["osm:2", "full_circle"] and got.loc["osm:2", "range_m"] == 100.0
    assert not got.loc["osm:3", "in_view"]
    assert got.loc["51010400001320000001", "in_view"]  # at the spot itself
    assert store.count("cameras") == 4


def test_store_queries_use_the_spatial_index(store):
    from gridpatrol.layers.cameras import candidate_statement
    from gridpatrol.layers.incidents import lookup_statement
    from sqlalchemy import text

    rng = np.random.default_rng(2)
    n = 5000
    cams = gpd.GeoDataFrame({"code": [f"t:{i}" for i in range(n)], "project": "other", "range_m": 80.0},
                            geometry=shapely.points(104 + rng.random(n) * 0.2, 30.6 + rng.random(n) * 0.2), crs=4326)
    with store.begin() as conn:
        write_cameras(store, conn, cams)
    stmt = candidate_statement(store, 104.1, 30.7, 150.0)
    with store.engine.connect() as conn:
        if store.is_gpkg:
            plan = " ".join(str(r) for r in conn.execute(text("EXPLAIN QUERY PLAN " + str(
                stmt.compile(store.engine, compile_kwargs={"literal_binds": True})))).all())
            assert "rtree_cameras_geom" in plan and "VIRTUAL TABLE INDEX" in plan
        else:
            conn.execute(text("ANALYZE cameras"))
            conn.execute(text("SET enable_seqscan = off"))  # plans on tiny tables may prefer a scan
            plan = " ".join(r[0] for r in conn.execute(text("EXPLAIN " + str(
                stmt.compile(store.engine, compile_kwargs={"literal_binds": True})))).all())
            assert "idx_cameras_geom" in plan
            conn.execute(text("SET enable_seqscan = on"))
            conn.execute(text("ANALYZE"))
            # The map-click statement (one per click on PostGIS) finds cameras through the index too.
            sql, params = lookup_statement(104.1, 30.7, datetime(2026, 4, 1, tzinfo=timezone.utc))
            plan = " ".join(r[0] for r in conn.exec_driver_sql("EXPLAIN " + sql, params).all())
            assert "Seq Scan on cameras" not in plan and "idx_cameras_geom" in plan


def test_camera_coverage_from_the_store_equals_in_memory(chengdu_streets):
    from gridpatrol.gis.synthetic import synthetic_cameras
    from gridpatrol.layers.cameras import camera_coverage
    from gridpatrol.layers.models import GridPlan

    store = chengdu_streets
    roads = store.read_layer("roads")
    cams = synthetic_cameras(roads, store.read_layer("buildings"), "510104", seed=5)
    with store.begin() as conn:
        write_cameras(store, conn, cams)
        pid = conn.execute(GridPlan.__table__.insert().returning(GridPlan.__table__.c.id).values(name="t")).scalar_one()
        boxes = [shapely.box(104.07 + i * 0.01, 30.65 + j * 0.01, 104.08 + i * 0.01, 30.66 + j * 0.01)
                 for i in range(3) for j in range(3)]
        grids = gpd.GeoDataFrame({"plan_id": pid, "code": [f"G{k}" for k in range(9)], "worker": "w"},
                                 geometry=[shapely.MultiPolygon([b]) for b in boxes], crs=4326)
        store.insert_gdf(conn, "grids", grids)
    got = camera_coverage(store).set_index("code").sort_index()
    mem = CameraIndex(cams).coverage(roads, grids).set_index("code").sort_index()
    np.testing.assert_allclose(got["street_m"], mem["street_m"], rtol=1e-9)
    np.testing.assert_allclose(got["seen_m"], mem["seen_m"], rtol=1e-9)
    assert (got["share"] > 0).any() and (got["share"] < 1).all()
    # the share is the seen part of the streets, and no grid sees more street than it has
    assert (got["seen_m"] <= got["street_m"] + 1e-6).all()
    np.testing.assert_allclose(got["share"], got["seen_m"] / got["street_m"], rtol=1e-9)
