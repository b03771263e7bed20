"""The map click's cameras three ways: the fast path, the route and a brute force with pyproj's Geod; the pages' camera defaults."""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np

from tests.api.api_seed import CLEARED_DISPATCHER, PASSWORD
from tests.odd_cameras import GEOD, odd_cameras

# Secrecy levels each user may see (api_seed: dan 0, dora 2, the admin all).
CLEARANCE = {"dan": 0, CLEARED_DISPATCHER: 2, "ada": 99}
ROOT = Path(__file__).resolve().parents[2]


def _odd_cameras(store, lon0: float, lat0: float) -> None:  # noqa: ANN001
    """300 cameras around (lon0, lat0) with every optics gap and spelling the register may hold."""
    cams = odd_cameras(np.random.default_rng(23), lon0, lat0, n=300, spread_m=220, code="odd:", name="异常摄像机",
                       types=["fixed", "dome", " PTZ ", "Speed_Dome", "bullet", "panorama", ""])
    with store.begin() as conn:
        store.insert_gdf(conn, "cameras", cams)


def _brute_force(cams: gpd.GeoDataFrame, lon: float, lat: float, clearance: int) -> tuple[set, np.ndarray, np.ndarray]:
    """Codes of the cameras that see (lon, lat), by the documented defaults and Geod's geodesic,
    with every camera's geodesic distance and azimuth to the point."""
    typ = cams["camera_type"].fillna("").str.strip().str.lower().to_numpy()
    dome = np.isin(typ, ["dome", "ptz", "speed_dome", "panorama"])
    az = cams["azimuth_deg"].to_numpy(float)
    fov = cams["fov_deg"].to_numpy(float)
    full = dome | np.isnan(az) | (fov >= 360)
    reach = np.where(np.isnan(cams["range_m"].to_numpy(float)), np.where(dome, 100.0, 50.0), cams["range_m"])
    half = np.where(np.isnan(fov), 60.0, fov) / 2
    clon, clat = cams.geometry.x.to_numpy(), cams.geometry.y.to_numpy()
    fwd, _, d = GEOD.inv(clon, clat, np.full(len(clon), lon), np.full(len(clon), lat))
    off = np.abs((fwd - np.nan_to_num(az) + 180) % 360 - 180)
    seen = (d <= reach) & (full | (off <= half)) & (cams["secrecy_level"].to_numpy() <= clearance)
    return set(cams["code"][seen]), d, fwd % 360


def test_fast_path_route_and_geodesic_brute_force_find_the_same_cameras(client, tokens, loaded_store_url,
                                                                        fast_path_answers):  # noqa: ANN001
    """Over 120 clicks (between and in front of cameras, among cameras with missing optics,
    odd type spellings and every secrecy level), for users of three clearances: the fast path
    (PostGIS) and the route give the same cameras field for field, and the set is what pyproj's
    geodesic says with the documented defaults; distances and bearings agree to the 0.1 shown."""
    from gridpatrol.layers.store import open_store

    answered = fast_path_answers
    store = open_store(loaded_store_url)
    try:
        seed = store.read_layer("cameras")
        lon0, lat0 = float(seed.geometry.x.median()), float(seed.geometry.y.median())
        _odd_cameras(store, lon0, lat0)
        cams = store.read_layer("cameras")
    finally:
        store.dispose()
    rng = np.random.default_rng(4)
    clicks = list(zip(*GEOD.fwd(np.full(80, lon0), np.full(80, lat0), rng.uniform(0, 360, 80),
                                rng.uniform(0, 200, 80))[:2]))
    for c in seed.iloc[::15].itertuples():  # 30 m in front of a seed camera
        x, y, _ = GEOD.fwd(c.geometry.x, c.geometry.y, c.azimuth_deg, 30.0)
        clicks.append((x, y))
    assert len(clicks) >= 120
    found = odd = 0
    for k, (lon, lat) in enumerate(clicks):
        name = list(CLEARANCE)[k % 3]
        params = {"lon": repr(float(lon)), "lat": repr(float(lat))}
        fast = client.get("/lookup", params=params, headers=tokens[name])
        # An extra parameter sends the click past the fast path to the route.
        route = client.get("/lookup", params={**params, "route": "1"}, headers=tokens[name])
        assert fast.status_code == route.status_code == 200, (fast.text, route.text)
        got = fast.json()["cameras"]
        assert got == route.json()["cameras"], (name, lon, lat)
        want, d, fwd = _brute_force(cams, lon, lat, CLEARANCE[name])
        assert {c["code"] for c in got} == want, (name, lon, lat)
        online = [c["online"] for c in got]
        assert online == sorted(online, reverse=True)
        pos = {code: i for i, code in enumerate(cams["code"])}
        for c in got:
            i = pos[c["code"]]
            assert abs(c["distance_m"] - d[i]) <= 0.051
            assert abs((c["bearing_deg"] - fwd[i] + 180) % 360 - 180) <= 0.051 or d[i] < 0.5
        for flag in (True, False):
            dist = [c["distance_m"] for c in got if c["online"] is flag]
            assert dist == sorted(dist)
        found += len(got)
        odd += sum(c["code"].startswith("odd:") for c in got)
    assert found > 150 and odd > 50  # the clicks saw cameras, odd ones included
    if "postgresql" in loaded_store_url:
        assert sum(answered) > len(clicks) // 2  # the plain clicks were the fast path's
    else:
        assert not any(answered)


def test_incident_map_hands_the_camera_defaults_to_its_script(app):  # noqa: ANN001
    """The incident map's config carries gis.cameras' optics defaults, and its script draws
    sectors from them (no copies of the numbers in the JavaScript)."""
    from fastapi.testclient import TestClient
    from gridpatrol.gis.cameras import camera_defaults

    with TestClient(app) as c:
        c.post("/login", data={"username": "dan", "password": PASSWORD, "next": "/maps/incidents"},
               follow_redirects=False)
        page = c.get("/maps/incidents")
    assert page.status_code == 200
    raw = re.search(r'data-camera-defaults="([^"]*)"', page.text)
    assert raw is not None, page.text[:2000]
    assert json.loads(html.unescape(raw.group(1))) == camera_defaults()
    js = (ROOT / "api" / "static" / "js" / "incidents.js").read_text(encoding="utf-8")
    assert "cfg.cameraDefaults" in js
    assert not re.search(r"(?<![\d.])(50|60|100)(?![\d.])", js)
