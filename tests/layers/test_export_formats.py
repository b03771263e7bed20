"""Exports for other GIS tools, re-read with pyogrio and compared value by value with the store,
Chinese text included: zipped Shapefile (UTF-8 and GBK), CSV with WKT for Excel, KML/KMZ in WGS-84
and GCJ-02 with grid code and worker; on both stores, through the CLI and the API."""
from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from gridpatrol.gis.crs import wgs84_to_gcj02
from gridpatrol.layers.export import export_layer
from gridpatrol.layers.export_formats import dbf_field_names
from gridpatrol.layers.grids import export_frame
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.api.api_seed import seed
from tests.conftest import module_store_url
from tests.gdal_check import gdal_silent, read_every_table

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))
LAYERS = ("incidents", "grids", "cameras", "roads", "barriers")


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def seeded(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """A store with Chengdu, 4 grids with workers, Chinese-named cameras and incidents, and OSM ids above 2^32."""
    with module_store_url(request, tmp_path_factory) as url:
        store = open_store(url)
        seed(store)
        with store.begin() as conn:
            conn.execute(text("UPDATE roads SET osm_id = osm_id + 11000000000, u = u + 11000000000 WHERE id % 3 = 0"))
            conn.execute(text("UPDATE incidents SET description = '噪音扰民，楼上装修' WHERE id % 2 = 0"))
            conn.execute(text("UPDATE grids SET name = '锦官驿社区第' || id || '网格'"))
        yield store
        store.dispose()


def _reference(store, layer: str) -> pd.DataFrame:  # noqa: ANN001
    gdf = export_frame(store, layer) if layer in ("grids", "blocks", "buildings") else store.read_layer(layer)
    return gdf.reset_index(drop=True)


def _same(expected: object, got: object, *, rel: float = 0.0) -> bool:
    """One value as written by the store against one read back (text formats carry times as ISO text)."""
    if expected is None or (isinstance(expected, float) and math.isnan(expected)) or expected is pd.NaT:
        return got is None or got == "" or (isinstance(got, float) and math.isnan(got))
    if isinstance(expected, (datetime, pd.Timestamp)):
        return pd.Timestamp(got) == pd.Timestamp(expected).tz_convert("UTC")
    if isinstance(expected, (bool, np.bool_)):
        return str(got) in ("True", "1", "true") if expected else str(got) in ("False", "0", "false")
    if isinstance(expected, (int, np.integer)):
        return int(got) == int(expected)
    if isinstance(expected, (float, np.floating)):
        return math.isclose(float(got), float(expected), rel_tol=rel, abs_tol=rel)
    return str(got) == str(expected)


def _compare(want: pd.DataFrame, got: pd.DataFrame, names: dict[str, str], *, rel: float = 0.0) -> None:
    assert len(got) == len(want)
    for col in want.columns:
        if col == "geometry":
            continue
        for i, (e, g) in enumerate(zip(want[col].tolist(), got[names[col]].tolist())):
            assert _same(e, g, rel=rel), (col, i, e, g)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
def test_shapefile_zip_round_trips(seeded, tmp_path, layer, encoding):  # noqa: ANN001
    path = tmp_path / f"{layer}.shp.zip"
    export_layer(seeded, layer, path, encoding=encoding)
    want = _reference(seeded, layer)
    zf = zipfile.ZipFile(path)
    mapping = dict(csv.reader(io.StringIO(zf.read("field_names.csv").decode("utf-8"))))
    mapping.pop("column")
    assert mapping == dbf_field_names([c for c in want.columns if c != "geometry"])
    assert all(len(v) <= 10 for v in mapping.values()) and len({v.lower() for v in mapping.values()}) == len(mapping)
    shps = [n for n in zf.namelist() if n.endswith(".shp")]
    assert shps
    parts = []
    for shp in shps:
        stem = shp[:-4]
        assert zf.read(f"{stem}.cpg").decode().strip().upper() == encoding.upper().replace("-", "-")
        assert "WGS" in zf.read(f"{stem}.prj").decode()
        with gdal_silent():
            parts.append(pyogrio.read_dataframe(f"/vsizip/{path}/{shp}"))
    got = pd.concat(parts).sort_values(mapping["id"]).reset_index(drop=True)
    # DBF keeps 15 decimals of a double.
    _compare(want.sort_values("id").reset_index(drop=True), got, mapping, rel=1e-12)
    # A Shapefile turns rings clockwise and has no single-part multipolygon: the same shapes, exactly.
    assert shapely.equals(got.geometry.values, want.sort_values("id").geometry.values).all()
    assert np.array_equal(np.sort(shapely.get_coordinates(got.geometry.values), axis=0),
                          np.sort(shapely.get_coordinates(want.sort_values("id").geometry.values), axis=0))
    if layer == "incidents":
        assert "噪音扰民，楼上装修" in set(got[mapping["description"]])


def test_long_names_are_cut_without_collisions():
    names = dbf_field_names(["households_estimated", "households", "households_est", "lower_bound_m", "Households2"])
    assert names == {"households_estimated": "households", "households": "househol_1", "households_est": "househol_2",
                     "lower_bound_m": "lower_boun", "Households2": "Househol_3"}


@pytest.mark.parametrize("layer", LAYERS)
def test_csv_with_wkt_for_excel(seeded, tmp_path, layer):  # noqa: ANN001
    path = tmp_path / f"{layer}.csv"
    export_layer(seeded, layer, path)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfWKT,")  # Excel opens UTF-8 only with the BOM
    want = _reference(seeded, layer)
    with gdal_silent():
        got = pyogrio.read_dataframe(path, GEOM_POSSIBLE_NAMES="WKT", KEEP_GEOM_COLUMNS="NO")
    _compare(want, got, {c: c for c in want.columns})
    assert shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=0).all()


@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
@pytest.mark.parametrize("suffix", [".kml", ".kmz"])
def test_kml_placemarks_carry_grid_and_worker(seeded, tmp_path, crs, suffix):  # noqa: ANN001
    path = tmp_path / f"incidents{suffix}"
    export_layer(seeded, "incidents", path, crs=crs)
    want = _reference(seeded, "incidents")
    src = f"/vsizip/{path}/doc.kml" if suffix == ".kmz" else path
    with gdal_silent():
        got = pyogrio.read_dataframe(src)
    assert len(got) == len(want)
    for desc, code, worker in zip(got["description"], want["grid_code"], want["worker"]):
        assigned = isinstance(worker, str) and worker != ""
        assert f"网格: {code}" in desc, desc
        assert (f"网格员: {worker}" in desc) if assigned else ("网格员" not in desc), (worker, desc)
    names = {c: c for c in want.columns}
    names["description"] = "feature_description"
    _compare(want.drop(columns=["synthetic"]), got, names)
    x, y = want.geometry.x.to_numpy(), want.geometry.y.to_numpy()
    if crs == "gcj02":
        x, y = wgs84_to_gcj02(x, y)
    assert np.array_equal(got.geometry.x.to_numpy(), np.asarray(x)) and np.array_equal(got.geometry.y.to_numpy(), np.asarray(y))


def test_kml_of_roads_finds_grid_and_hides_workers_on_request(seeded, tmp_path):  # noqa: ANN001
    path = tmp_path / "grids.kml"
    export_layer(seeded, "cameras", path, workers=False)
    body = path.read_text(encoding="utf-8")
    assert "网格: 5101040010" in body and "网格员" not in body and ">wu<" not in body
    export_layer(seeded, "cameras", path)
    assert "网格员: wu" in path.read_text(encoding="utf-8")


def test_cli_exports_gbk_shapefile_and_refuses_unknown(seeded, tmp_path):  # noqa: ANN001
    if not seeded.is_gpkg:
        pytest.skip("the CLI path is the same on both stores; run once")
    out = tmp_path / "incidents.shp.zip"
    r = subprocess.run([GRIDPATROL, "--db", seeded.url, "export", "incidents", str(out), "--encoding", "gbk"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert zipfile.ZipFile(out).read("incidents.cpg").decode().strip() == "GBK"
    bad = subprocess.run([GRIDPATROL, "--db", seeded.url, "export", "incidents", str(tmp_path / "x.csv"), "--crs", "gcj02"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "KML" in bad.stdout + bad.stderr
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("layer", LAYERS)
def test_geopackage_export_reads_back_exactly_and_silently(seeded, tmp_path, layer):  # noqa: ANN001
    """``export LAYER x.gpkg`` (what a planner hands to QGIS/ArcGIS Pro): GDAL reads every table
    without a message, each value and geometry equal to the store's (ids above 2^32 included;
    times as the county's local text with its offset, to the microsecond: tests/api/test_export_times.py)."""
    path = tmp_path / f"{layer}.gpkg"
    export_layer(seeded, layer, path)
    want = _reference(seeded, layer)
    tables = read_every_table(path)
    assert list(tables) == [layer]
    got = tables[layer]
    _compare(want, got, {c: c for c in want.columns})
    assert shapely.equals_exact(got.geometry.values, want.geometry.values, tolerance=0).all()
    if layer == "roads":
        assert (want["osm_id"] > 2**32).any() and got["osm_id"].max() == want["osm_id"].max()


def _grid_of(store, gdf) -> tuple[list, dict]:  # noqa: ANN001
    """The newest plan's grid code holding each feature's representative point (None outside every
    grid), and worker by grid code: computed here with shapely, the reference for the placemarks."""
    grids = export_frame(store, "grids")
    pts = shapely.point_on_surface(gdf.geometry.values)
    codes = []
    for p in pts:
        hit = [c for c, g in zip(grids["code"], grids.geometry.values) if p is not None and shapely.within(p, g)]
        codes.append(hit[0] if hit else None)
    return codes, dict(zip(grids["code"], grids["worker"]))


def _has_cjk(frame: pd.DataFrame) -> bool:
    return any(isinstance(v, str) and any("\u4e00" <= ch <= "\u9fff" for ch in v)
               for col in frame.columns if col != "geometry" for v in frame[col].tolist())


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("crs", ["wgs84", "gcj02"])
@pytest.mark.parametrize("suffix", [".kml", ".kmz"])
def test_kml_of_every_layer_value_by_value(seeded, tmp_path, layer, crs, suffix):  # noqa: ANN001
    """Every layer as KML/KMZ, re-read with pyogrio: one placemark per feature with every value of
    the store (Chinese text included), its description naming exactly the grid that holds it and
    that grid's worker, and every coordinate the store's, shifted to GCJ-02 on request."""
    path = tmp_path / f"{layer}{suffix}"
    export_layer(seeded, layer, path, crs=crs)
    want = _reference(seeded, layer)
    assert _has_cjk(want), layer  # the comparison below covers Chinese text
    src = f"/vsizip/{path}/doc.kml" if suffix == ".kmz" else path
    with gdal_silent():
        got = pyogrio.read_dataframe(src)
    assert len(got) == len(want)
    # A layer with its own grid code (grids: code) and worker (incidents: the assigned one) keeps
    # them; the others get the grid holding them and its worker.
    codes, workers = _grid_of(seeded, want)
    own_code = "code" if layer == "grids" else "grid_code" if "grid_code" in want.columns else None
    if own_code is not None:
        codes = [None if pd.isna(c) else c for c in want[own_code]]
    row_workers = list(want["worker"]) if "worker" in want.columns else [workers.get(c) for c in codes]
    assert sum(c is not None for c in codes) > 0 and any(isinstance(w, str) and w for w in row_workers)
    for i, (desc, code) in enumerate(zip(got["description"], codes)):
        worker = row_workers[i] if isinstance(row_workers[i], str) and row_workers[i] else None
        parts = ([f"网格: {code}"] if code is not None else []) + ([f"网格员: {worker}"] if worker else [])
        assert desc == "; ".join(parts) or (desc is None and not parts), (layer, i, desc, parts)
        if layer != "grids":
            assert _same(code, got["grid_code"][i]) and _same(worker, got["worker"][i]), (layer, i)
    names = {c: c for c in want.columns}
    names.update({"description": "feature_description", "name": "feature_name"})
    _compare(want, got, names)
    for i, (g, w) in enumerate(zip(got.geometry.values, want.geometry.values)):
        xy = shapely.get_coordinates(w)
        if crs == "gcj02":
            xy = np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1]))
        assert np.array_equal(shapely.get_coordinates(g), xy), (layer, i)


@pytest.mark.parametrize("layer", LAYERS)
def test_geojson_export_is_exact(seeded, tmp_path, layer):  # noqa: ANN001
    """``export LAYER x.geojson``, read as JSON text: every feature of the store, every property
    with the store's value (64-bit ids, floats to the last bit, times to the microsecond, Chinese
    text) and every coordinate the store's double."""
    path = tmp_path / f"{layer}.geojson"
    export_layer(seeded, layer, path)
    want = _reference(seeded, layer)
    doc = json.loads(path.read_text(encoding="utf-8"))
    feats = doc["features"]
    assert len(feats) == len(want)
    for i, feat in enumerate(feats):
        props = feat["properties"]
        assert set(props) == set(want.columns) - {"geometry"}, (layer, set(props) ^ set(want.columns))
        for col in props:
            e, g = want[col].iloc[i], props[col]
            if isinstance(e, (datetime, pd.Timestamp)) and not pd.isna(e):
                assert pd.Timestamp(g) == pd.Timestamp(e).tz_convert("UTC"), (layer, col, i, e, g)
            elif isinstance(e, (float, np.floating)) and not math.isnan(e):
                assert float(g) == float(e), (layer, col, i, e, g)
            else:
                assert _same(e, g), (layer, col, i, e, g)
        geom = shapely.from_geojson(json.dumps(feat["geometry"]))
        assert shapely.equals_exact(geom, want.geometry.iloc[i], tolerance=0), (layer, i)
    if layer == "roads":
        assert (want["osm_id"] > 2**32).any()
