"""Cameras: device codes, exact geometry against pyproj.Geod, in-view vs brute force (1M × 10k and Baltimore), queries, coverage."""
from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from gridpatrol.gis.cameras import (
    DEFAULT_FOV_DEG,
    DEFAULT_RANGE_M,
    CameraIndex,
    degree_box,
    device_code_problems,
    distance_bearing,
    make_device_code,
    normalize_cameras,
    parse_device_code,
    validate_camera_codes,
)
from gridpatrol.gis.errors import InputError

from tests.conftest import (
    DATA,  # noqa: E402  (GRIDPATROL_DATA or ../shared/data)
    missing_dependency,
)

GEOD = pyproj.Geod(ellps="WGS84")


def data_file(*parts: str) -> Path:
    p = DATA.joinpath(*parts)
    if not p.exists():
        missing_dependency(f"real data file {p} is missing (expected ../shared/data next to the repository)")
    return p


# --- GB/T 28181 codes -------------------------------------------------------------------------

def test_valid_code_parses_into_its_parts():
    code = "51010400001320000017"
    assert device_code_problems(code) == []
    parts = parse_device_code(code)
    assert (parts.admin, parts.industry, parts.type, parts.network, parts.serial) == ("51010400", "00", "132", "0", "000017")
    assert parts.county == "510104"
    assert make_device_code("510104", "00", "132", "0", 17) == code


@pytest.mark.parametrize("code, part", [
    ("99010400001320000017", "administrative code"),   # province 99 does not exist
    ("51010400001180000017", "type code 118"),         # an NVR, not a camera
    ("51010400001329000017", "network code 9"),        # reserved network digit
    ("5101040000132000001", "19 digits"),              # one digit short
    ("5101040000132000001X", "non-digits"),
    ("", "missing"),
])
def test_each_wrong_part_is_named(code, part):
    problems = device_code_problems(code)
    assert problems, code
    assert part in "; ".join(problems)


def test_column_validation_accepts_namespaced_foreign_ids_only():
    codes = pd.Series(["osm:123", "baltimore:277", "277", "51010400001320000017", None])
    res = validate_camera_codes(codes)
    assert list(res == "") == [True, True, False, True, False]
    with pytest.raises(InputError, match="administrative code"):
        parse_device_code("00010400001320000017")


# --- exact geometry ---------------------------------------------------------------------------

def test_distance_and_bearing_match_geodesic_within_bounds():
    """The documented error bound: < 1 mm and < 1e-5° against Karney's geodesic up to 2 km."""
    rng = np.random.default_rng(7)
    n = 200_000
    lon = rng.uniform(-180, 180, n)
    lat = rng.uniform(-70, 70, n)
    az = rng.uniform(0, 360, n)
    dist = rng.uniform(0.1, 2000, n)
    plon, plat, _ = GEOD.fwd(lon, lat, az, dist)
    d, b = distance_bearing(lon, lat, plon, plat)
    assert np.abs(d - dist).max() < 1e-3
    assert np.abs((b - az + 180) % 360 - 180).max() < 1e-5


def test_defaults_for_missing_optics():
    cams = gpd.GeoDataFrame({
        "code": ["a", "b", "c", "d"], "camera_type": ["fixed", "dome", None, "fixed"],
        "azimuth_deg": [90.0, np.nan, 10.0, np.nan], "fov_deg": [np.nan, np.nan, 40.0, np.nan],
        "range_m": [np.nan, np.nan, 30.0, np.nan], "status": ["online", "offline", None, "fault"],
    }, geometry=shapely.points([104.0] * 4, [30.6] * 4), crs=4326)
    n = normalize_cameras(cams)
    assert list(n["fov_deg"]) == [DEFAULT_FOV_DEG, 360.0, 40.0, 360.0]
    assert list(n["range_m"]) == [DEFAULT_RANGE_M["fixed"], DEFAULT_RANGE_M["dome"], 30.0, DEFAULT_RANGE_M["fixed"]]
    assert list(n["full_circle"]) == [False, True, False, True]  # no direction → full circle
    assert list(n["direction_known"]) == [True, False, True, False]
    assert list(n["online"]) == [True, False, True, False]


def test_sector_edges_and_offline_flag():
    cam_lon, cam_lat = 104.06, 30.66
    cams = gpd.GeoDataFrame({"code": ["east", "off"], "azimuth_deg": [90.0, 90.0], "fov_deg": [60.0, 60.0],
                             "range_m": [100.0, 100.0], "camera_type": ["fixed", "fixed"],
                             "status": ["online", "offline"]},
                            geometry=shapely.points([cam_lon, cam_lon], [cam_lat, cam_lat]), crs=4326)
    idx = CameraIndex(cams)
    for az, dist, expect in [(90, 50, True), (119.9, 99, True), (120.1, 50, False), (60.1, 50, True),
                             (59.9, 50, False), (90, 100.01, False), (270, 10, False)]:
        lon, lat, _ = GEOD.fwd(cam_lon, cam_lat, az, dist)
        seen = idx.in_view(lon, lat)
        assert (len(seen) == 2) == expect, (az, dist)
        if expect:
            assert list(seen["code"]) == ["east", "off"]  # online first, offline kept and flagged
            assert list(seen["online"]) == [True, False]


# --- in view vs brute force -------------------------------------------------------------------

def brute_in_view(cam_lon, cam_lat, az, fov, rng_m, full, p_lon, p_lat) -> set[tuple[int, int]]:
    """Independent reference: latitude sweep over sorted cameras, a lon/lat box, then pyproj's
    geodesic distance and forward azimuth, and a cosine form of the sector test."""
    order = np.argsort(cam_lat, kind="stable")
    slat = cam_lat[order]
    max_r = rng_m.max()
    dlat = np.degrees(max_r / 6_335_000.0) * 1.01
    pi_all, ci_all = [], []
    for k in range(len(p_lon)):
        lo, hi = np.searchsorted(slat, [p_lat[k] - dlat, p_lat[k] + dlat])
        band = order[lo:hi]
        dlon = dlat / np.cos(np.radians(abs(p_lat[k]) + dlat))
        band = band[np.abs(cam_lon[band] - p_lon[k]) <= dlon]
        pi_all.append(np.full(len(band), k))
        ci_all.append(band)
    pi = np.concatenate(pi_all)
    ci = np.concatenate(ci_all)
    fwd, _, dist = GEOD.inv(cam_lon[ci], cam_lat[ci], p_lon[pi], p_lat[pi])
    half = np.radians(fov[ci] / 2)
    in_sector = full[ci] | (np.cos(np.radians(fwd - az[ci])) >= np.cos(half))
    ok = (dist <= rng_m[ci]) & in_sector
    return set(zip(pi[ok].tolist(), ci[ok].tolist()))


def test_in_view_equals_brute_force_on_1m_cameras_and_10k_points():
    rng = np.random.default_rng(2028)
    n, m = 1_000_000, 10_000
    lon0, lat0, w = 103.9, 30.5, 0.5  # about 48 × 55 km around Chengdu: ~380 cameras per km²
    cam_lon = lon0 + rng.random(n) * w
    cam_lat = lat0 + rng.random(n) * w
    az = rng.uniform(0, 360, n)
    fov = rng.uniform(20, 120, n)
    rng_m = rng.uniform(15, 150, n)
    ctype = np.where(rng.random(n) < 0.15, "dome", "fixed")
    cams = gpd.GeoDataFrame({"code": np.arange(n).astype(str), "azimuth_deg": az, "fov_deg": fov,
                             "range_m": rng_m, "camera_type": ctype},
                            geometry=shapely.points(cam_lon, cam_lat), crs=4326)
    p_lon = lon0 + rng.random(m) * w
    p_lat = lat0 + rng.random(m) * w
    idx = CameraIndex(cams)
    got = idx.link(p_lon, p_lat, in_view_only=True)
    got_set = set(zip(got["point"].tolist(), got["cam"].tolist()))
    want = brute_in_view(cam_lon, cam_lat, az, fov, rng_m, ctype == "dome", p_lon, p_lat)
    assert len(want) > 20_000  # the test has teeth: many pairs in view
    assert got_set == want, f"{len(got_set - want)} extra, {len(want - got_set)} missing"
    assert got["in_view"].all()


def _baltimore_cameras(seed: int = 3) -> gpd.GeoDataFrame:
    cctv = pd.read_csv(data_file("baltimore", "cctv_2014.csv"))
    rng = np.random.default_rng(seed)
    n = len(cctv)
    # The list has no optics: give half of them a direction and field of view (seeded) so the
    # sector test is exercised, leave the rest to the defaults (full circle, 50 m).
    directed = rng.random(n) < 0.5
    return gpd.GeoDataFrame({
        "code": "baltimore:" + cctv["ID"].astype(str),
        "azimuth_deg": np.where(directed, rng.uniform(0, 360, n), np.nan),
        "fov_deg": np.where(directed, rng.uniform(30, 100, n), np.nan),
        "range_m": rng.uniform(40, 250, n),
        "camera_type": "fixed",
    }, geometry=shapely.points(cctv["Longitude"], cctv["Latitude"]), crs=4326)


def _baltimore_crimes() -> pd.DataFrame:
    recs = []
    for kind in ("homicide", "shooting", "property"):
        recs += json.loads(data_file("baltimore", f"crime_2018_{kind}.json").read_text())
    df = pd.DataFrame(recs)
    return df[df["Longitude"].notna() & df["Latitude"].notna()].reset_index(drop=True)


def test_in_view_equals_brute_force_on_baltimore_cctv_and_crime():
    cams = _baltimore_cameras()
    crimes = _baltimore_crimes()
    idx = CameraIndex(cams)
    got = idx.link(crimes["Longitude"].to_numpy(), crimes["Latitude"].to_numpy(), in_view_only=True)
    n = idx.cameras
    want = brute_in_view(
        n["geometry"].x.to_numpy(), n["geometry"].y.to_numpy(), n["azimuth_deg"].to_numpy(), n["fov_deg"].to_numpy(),
        n["range_m"].to_numpy(), n["full_circle"].to_numpy(), crimes["Longitude"].to_numpy(), crimes["Latitude"].to_numpy())
    assert len(want) > 1000
    assert set(zip(got["point"], got["cam"])) == want


def test_radius_nearest_and_ranking_on_baltimore():
    cams = _baltimore_cameras()
    idx = CameraIndex(cams)
    crimes = _baltimore_crimes().sample(200, random_state=1)
    lon_c, lat_c = idx.lon, idx.lat
    for lon, lat in zip(crimes["Longitude"], crimes["Latitude"]):
        _, _, d = GEOD.inv(lon_c, lat_c, np.full(len(lon_c), lon), np.full(len(lat_c), lat))
        near = idx.within(lon, lat, 300.0)
        assert set(near["cam"]) == set(np.flatnonzero(d <= 300.0))
        # ranked: in-view cameras first, then by distance
        iv = near["in_view"].to_numpy()
        assert not np.any(~iv[:-1] & iv[1:])
        k = idx.nearest(lon, lat, 5)
        # several Baltimore cameras share a mast (same coordinates): compare distances, not ids
        np.testing.assert_allclose(k["distance_m"], np.sort(d)[:5], atol=1e-3)
        np.testing.assert_allclose(d[k["cam"].to_numpy()], np.sort(d)[:5], atol=1e-3)
    many = idx.nearest_many(crimes["Longitude"].to_numpy(), crimes["Latitude"].to_numpy(), 3)
    assert (many.groupby("point").size() == 3).all()
    for p, (lon, lat) in enumerate(zip(crimes["Longitude"], crimes["Latitude"])):
        _, _, d = GEOD.inv(lon_c, lat_c, np.full(len(lon_c), lon), np.full(len(lat_c), lat))
        np.testing.assert_allclose(many.loc[many["point"] == p, "distance_m"], np.sort(d)[:3], atol=1e-3)


def test_corridor_along_a_path_matches_utm_distances():
    cams = _baltimore_cameras()
    idx = CameraIndex(cams)
    path = shapely.LineString([(-76.64, 39.29), (-76.61, 39.295), (-76.59, 39.31)])
    got = idx.along(path, 120.0)
    utm = pyproj.CRS.from_epsg(32618)
    mp = gpd.GeoSeries([path], crs=4326).to_crs(utm).iloc[0]
    mc = idx.cameras.to_crs(utm).geometry
    d = mc.distance(mp).to_numpy()
    # UTM scale differs from the path's own projection by < 0.1 %: skip the ambiguous rim.
    sure_in = set(np.flatnonzero(d <= 119.5))
    sure_out = set(np.flatnonzero(d >= 120.5))
    assert len(sure_in) > 10
    assert sure_in <= set(got["cam"])
    assert not (sure_out & set(got["cam"]))
    assert got["along_m"].is_monotonic_increasing


def test_degree_box_contains_the_radius():
    rng = np.random.default_rng(5)
    for lat in (0.0, 30.6, 39.3, 60.0, -45.0):
        lon, r = 104.0, 500.0
        az = rng.uniform(0, 360, 2000)
        plon, plat, _ = GEOD.fwd(np.full(2000, lon), np.full(2000, lat), az, np.full(2000, r))
        x0, y0, x1, y1 = degree_box(lon, lat, r)
        assert ((plon >= x0) & (plon <= x1) & (plat >= y0) & (plat <= y1)).all()


# --- coverage ---------------------------------------------------------------------------------

def test_coverage_invariants_on_baltimore_streets():
    from gridpatrol.gis.osm import read_osm

    data = read_osm(data_file("baltimore", "baltimore.osm.pbf"))
    roads = data.roads
    # four grids: quadrants around downtown
    cx, cy = -76.61, 39.29
    boxes = [shapely.box(cx - 0.02 + i * 0.02, cy - 0.02 + j * 0.02, cx + i * 0.02, cy + j * 0.02)
             for i in range(2) for j in range(2)]
    grids = gpd.GeoDataFrame({"code": ["A", "B", "C", "D"]}, geometry=boxes, crs=4326)
    cams = _baltimore_cameras()
    cov = CameraIndex(cams).coverage(roads, grids, step_m=5.0)
    assert ((cov["share"] >= 0) & (cov["share"] <= 1)).all()
    # street length per grid equals the clipped length measured independently in UTM
    utm = pyproj.CRS.from_epsg(32618)
    for code, box in zip(grids["code"], boxes):
        clipped = roads.clip(box).to_crs(utm).length.sum()
        got = float(cov.loc[cov["code"] == code, "street_m"].iloc[0])
        # pieces are given to the grid of their midpoint: at most step/2 off per edge crossing;
        # UTM's scale factor (≈0.9997 here) accounts for the rest
        crossings = len(shapely.get_parts(shapely.intersection(
            shapely.union_all(roads.geometry.values), box.exterior)))
        assert abs(got - clipped) <= crossings * 2.5 + 6e-4 * clipped
    # no cameras: nothing seen; one dome at each grid centre seeing 5 km: everything seen
    empty = CameraIndex(cams.iloc[:0]).coverage(roads, grids)
    assert (empty["seen_m"] == 0).all()
    domes = gpd.GeoDataFrame({"code": list("abcd"), "camera_type": "dome", "range_m": 5000.0},
                             geometry=[b.centroid for b in boxes], crs=4326)
    full = CameraIndex(domes).coverage(roads, grids)
    np.testing.assert_allclose(full["share"], 1.0)


# --- synthetic demo cameras -------------------------------------------------------------------

def test_synthetic_cameras_are_reproducible_valid_and_where_they_belong():
    from gridpatrol.gis.osm import read_osm
    from gridpatrol.gis.synthetic import MAJOR, synthetic_cameras

    data = read_osm(data_file("chengdu", "chengdu.osm"))
    a = synthetic_cameras(data.roads, data.buildings, "510104", seed=7)
    b = synthetic_cameras(data.roads, data.buildings, "510104", seed=7)
    c = synthetic_cameras(data.roads, data.buildings, "510104", seed=8)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry")) and a.geometry.equals(b.geometry)
    assert not a.geometry.equals(c.geometry)
    assert (validate_camera_codes(a["code"]) == "").all() and a["code"].is_unique
    assert a["code"].str.startswith("51010400").all()
    assert a["synthetic"].all() and a["name"].str.contains("合成").all()
    sky = a[a["project"] == "skynet"]
    eyes = a[a["project"] == "sharp_eyes"]
    assert len(sky) > 100 and len(eyes) > 20
    # every Skynet camera stands within 8 m of a junction of ≥ 3 major street ends, and a
    # fixed one looks down one of the streets leaving that junction
    major = data.roads[data.roads["highway"].isin(MAJOR)]
    ends = pd.concat([
        pd.DataFrame({"node": major["u"], "lon": [g.coords[0][0] for g in major.geometry],
                      "lat": [g.coords[0][1] for g in major.geometry],
                      "lon2": [g.coords[1][0] for g in major.geometry], "lat2": [g.coords[1][1] for g in major.geometry]}),
        pd.DataFrame({"node": major["v"], "lon": [g.coords[-1][0] for g in major.geometry],
                      "lat": [g.coords[-1][1] for g in major.geometry],
                      "lon2": [g.coords[-2][0] for g in major.geometry], "lat2": [g.coords[-2][1] for g in major.geometry]}),
    ])
    junction = ends.groupby("node").filter(lambda g: len(g) >= 3)
    az, _, _ = GEOD.inv(junction["lon"].to_numpy(), junction["lat"].to_numpy(), junction["lon2"].to_numpy(),
                        junction["lat2"].to_numpy())
    junction = junction.assign(az=np.asarray(az) % 360)
    for cam in sky.itertuples():
        _, _, d = GEOD.inv(np.full(len(junction), cam.geometry.x), np.full(len(junction), cam.geometry.y),
                           junction["lon"].to_numpy(), junction["lat"].to_numpy())
        near = junction[d <= 8.0 + 1e-6]
        assert len(near), cam.code
        if cam.camera_type == "fixed":
            diff = np.abs((near["az"].to_numpy() - cam.azimuth_deg + 180) % 360 - 180)
            assert diff.min() < 1e-6, cam.code
    # Sharp Eyes cameras sit next to a street (entrances), not in the middle of nowhere
    streets = data.roads.to_crs(32648)
    d = gpd.GeoSeries(eyes.geometry.values, crs=4326).to_crs(32648).apply(
        lambda p: streets.distance(p).min())
    assert (d <= 60.5).all()
