"""Hostile probes on both stores: secret cameras over every channel and aggregate, a reassigned
worker's access, field visibility per role, and fractional secrecy levels refused everywhere."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
import shapely

from tests.api.api_seed import CLEARED_DISPATCHER, ROLE_USERS

# Who may see a camera of level n: clearance >= n (admins: everything; -1: no camera at all).
CLEARANCE = {"ada": 9, CLEARED_DISPATCHER: 2, "dan": 0, "pia": -1, "wu": -1, "vic": -1, "anonymous": -1}
SECRET_WORKER = "李保密员"  # the worker of grid 51010400103 (planted), hidden from viewers
GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def _open(url: str):  # noqa: ANN202
    from gridpatrol.layers.store import open_store

    return open_store(url)


@pytest.fixture(scope="module")
def planted(loaded_store_url) -> dict:  # noqa: ANN001
    """Two cameras far outside everything else (so each would move any extent it leaked into):
    level 3 north-east (admins only), level 2 south-west (admins and the level-2 dispatcher);
    grid 003 gets a named worker and a station; grid 002 (wu's) gets a stored route."""
    from gridpatrol.layers.models import Grid
    from sqlalchemy import update

    store = _open(loaded_store_url)
    minx, miny, maxx, maxy = store.extent("roads")
    cams = {}
    # Coordinates of the form d.dddd5: any float near them prints with the same first 4 decimals.
    for name, level, x, y in (("secret", 3, maxx + 0.04, maxy + 0.03), ("cleared", 2, minx - 0.04, miny - 0.03)):
        lon, lat = int(x * 1e4) / 1e4 + 0.00005, int(y * 1e4) / 1e4 + 0.00005
        cams[name] = {"code": f"probe:{name}-{level}", "level": level, "lon": lon, "lat": lat,
                      "needles": [f"probe:{name}-{level}", f"{int(x * 1e4) / 1e4:.4f}", f"{int(y * 1e4) / 1e4:.4f}"]}
    gdf = gpd.GeoDataFrame(
        {"code": [c["code"] for c in cams.values()], "name": ["探针摄像机"] * 2, "project": "skynet",
         "azimuth_deg": 0.0, "fov_deg": 90.0, "range_m": 80.0, "camera_type": "fixed", "status": "online",
         "secrecy_level": [c["level"] for c in cams.values()], "source": "file:secret-list.csv", "synthetic": True},
        geometry=[shapely.Point(c["lon"], c["lat"]) for c in cams.values()], crs=4326)
    midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
    station = ((minx + midx) / 2, (midy + maxy) / 2)
    route = gpd.GeoDataFrame(
        {"grid_code": ["51010400102"], "kind": "coverage", "mode": "walk", "worker_index": 0, "length_m": 100.0,
         "required_m": 100.0, "lower_bound_m": 100.0, "duration_s": 80.0, "directions_json": "[]", "stats_json": "{}"},
        geometry=[shapely.LineString([(midx + 0.001, miny + 0.001), (midx + 0.002, miny + 0.001)])], crs=4326)
    with store.begin() as conn:
        store.insert_gdf(conn, "cameras", gdf)
        store.insert_gdf(conn, "routes", route)
        conn.execute(update(Grid.__table__).where(Grid.__table__.c.code == "51010400103")
                     .values(worker=SECRET_WORKER, station_lon=station[0], station_lat=station[1]))
    stored = store.read_layer("cameras")
    for c in cams.values():
        c["id"] = int(stored.index[stored["code"] == c["code"]][0])
    store.dispose()
    return {"cameras": cams, "all_cameras": stored}


@pytest.fixture(scope="module")
def env(planted, client, tokens) -> dict:  # noqa: ANN001
    return {**planted, "client": client, "tokens": tokens}


def _needles(text: str) -> list[bytes]:
    """``text`` as it may appear in a response: UTF-8, or JSON-escaped ASCII."""
    return list({text.encode("utf-8"), json.dumps(text).strip('"').encode("ascii")})


def _leaks(body: bytes, cam: dict, asked: str = "") -> list[str]:
    """The camera's code and coordinates found in ``body``, but for what the request itself
    said (``asked``: a 404 or a self link echoes the code the client sent)."""
    return [n for n in cam["needles"] if n not in asked and any(b in body for b in _needles(n))]


def _sees(user: str, cam: dict) -> bool:
    return CLEARANCE[user] >= cam["level"]


def _box(cam: dict, d: float = 0.001) -> str:
    return f"{cam['lon'] - d},{cam['lat'] - d},{cam['lon'] + d},{cam['lat'] + d}"


def _probe_paths(env: dict) -> list[str]:
    """Every GET channel that could carry a camera, its position or an aggregate over cameras."""
    from gridpatrol.layers.models import LAYERS

    paths = ["/ogc", "/ogc/collections", "/ogc/collections/cameras/items?limit=10000",
             "/ogc/collections/cameras/schema", "/ogc/collections/cameras/queryables",
             "/cameras?limit=10000", "/export/cameras", "/export/incidents", "/export/grids", "/export/imports",
             "/incidents?limit=10000", "/incidents/overdue", "/routes", "/grids", "/grids/plans", "/auth/me",
             "/readyz", "/", "/maps/incidents", "/maps/data/cameras", "/maps/data/incidents", "/maps/data/grids",
             "/maps/data/basemap", "/m/data",
             "/grids/51010400101/hot-spots?at=2019-01-01T00:00:00Z&days=400&min_incidents=1"]
    paths += [f"/ogc/collections/{layer}" for layer in LAYERS]
    for c in env["cameras"].values():
        paths += [f"/ogc/collections/cameras/items/{c['id']}", f"/ogc/collections/cameras/items?bbox={_box(c)}",
                  f"/ogc/collections/cameras/items?code={c['code']}", f"/cameras?bbox={_box(c)}",
                  f"/cameras/{c['code']}", f"/cameras/at?lon={c['lon']}&lat={c['lat'] + 0.0003}&radius_m=500",
                  f"/lookup?lon={c['lon']}&lat={c['lat'] + 0.0003}",
                  f"/lookup?lon={c['lon']}&lat={c['lat'] + 0.0003}&radius_m=5000&days=3650",
                  f"/ogc/collections/cameras/items?bbox={_box(c, 0.5)}&limit=1"]
    return paths


@pytest.mark.parametrize("user", list(CLEARANCE))
def test_secret_cameras_never_leak_through_any_channel(env, user):  # noqa: ANN001
    """Raw response bytes of every channel: a camera's code and coordinates (4 decimals) reach
    exactly the users cleared for it."""
    client, h = env["client"], env["tokens"][user]
    for path in _probe_paths(env):
        r = client.get(path, headers=h)
        assert r.status_code < 500, (path, r.status_code, r.text[:300])
        for c in env["cameras"].values():
            if not _sees(user, c):
                assert not _leaks(r.content, c, path), (user, path, _leaks(r.content, c, path))
    # the same in the GeoPackage export (binary: read the features, the contents table and R-tree)
    r = client.get("/export/cameras?format=gpkg", headers=h)
    if CLEARANCE[user] < 0:
        assert r.status_code in (401, 403)
        return
    feats, bounds = _gpkg(r.content)
    for c in env["cameras"].values():
        assert (c["code"] in set(feats["code"])) == _sees(user, c), (user, c["code"])
        inside = all(bounds[k][0] - 1e-4 <= c[k] <= bounds[k][1] + 1e-4 for k in ("lon", "lat"))
        assert inside == _sees(user, c), (user, c["code"], bounds)


def _gpkg(data: bytes) -> tuple[gpd.GeoDataFrame, dict]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cameras.gpkg"
        path.write_bytes(data)
        feats = pyogrio.read_dataframe(path)
        con = sqlite3.connect(path)
        try:
            lo = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents "
                             "WHERE table_name = 'cameras'").fetchone()
            try:
                tree = con.execute("SELECT min(minx), min(miny), max(maxx), max(maxy) FROM rtree_cameras_geom").fetchone()
            except sqlite3.OperationalError:
                tree = lo
        finally:
            con.close()
    box = [min(a, b) for a, b in zip(lo[:2], tree[:2])] + [max(a, b) for a, b in zip(lo[2:], tree[2:])]
    return feats, {"lon": (box[0], box[2]), "lat": (box[1], box[3])}


@pytest.mark.parametrize("user", list(CLEARANCE))
def test_the_incident_maps_camera_layer_holds_exactly_the_cameras_the_user_may_see(env, user):  # noqa: ANN001
    """/maps/data/cameras (the camera marks before any click): each planted camera is there exactly
    when the user is cleared for it, at its position; roles without cameras get 401/403."""
    client, h = env["client"], env["tokens"][user]
    r = client.get("/maps/data/cameras", headers=h)
    if CLEARANCE[user] < 0:
        assert r.status_code in (401, 403), r.text
        return
    assert r.status_code == 200, r.text
    body = r.json()
    at = {row[body["columns"].index("code")]: row for row in body["rows"]}
    for c in env["cameras"].values():
        assert (c["code"] in at) == _sees(user, c), (user, c["code"])
        if c["code"] in at:
            row = at[c["code"]]
            assert row[body["columns"].index("lon")] == pytest.approx(c["lon"], abs=1e-6)
            assert row[body["columns"].index("lat")] == pytest.approx(c["lat"], abs=1e-6)


@pytest.mark.parametrize("user", ["ada", CLEARED_DISPATCHER, "dan"])
def test_camera_aggregates_cover_only_what_the_user_sees(env, user):  # noqa: ANN001
    """Extents (one collection and the list), numberMatched and /cameras totals equal what the
    user's visible cameras give; the planted cameras appear for those cleared."""
    client, h = env["client"], env["tokens"][user]
    cams = env["all_cameras"]
    mine = cams[cams["secrecy_level"] <= CLEARANCE[user]]
    want = mine.total_bounds
    one = client.get("/ogc/collections/cameras", headers=h).json()["extent"]["spatial"]["bbox"][0]
    listed = {c["id"]: c for c in client.get("/ogc/collections", headers=h).json()["collections"]}
    for ext in (one, listed["cameras"]["extent"]["spatial"]["bbox"][0]):
        assert max(abs(a - b) for a, b in zip(ext, want)) < 1e-4, (user, ext, want.tolist())
    assert client.get("/ogc/collections/cameras/items?limit=1", headers=h).json()["numberMatched"] == len(mine)
    assert client.get("/cameras?limit=1", headers=h).json()["numberMatched"] == len(mine)
    for c in env["cameras"].values():
        n = client.get(f"/ogc/collections/cameras/items?bbox={_box(c)}", headers=h).json()["numberMatched"]
        assert n == int(_sees(user, c))
        assert (client.get(f"/cameras/{c['code']}", headers=h).status_code == 200) == _sees(user, c)
        at = client.get(f"/lookup?lon={c['lon']}&lat={c['lat'] + 0.0003}", headers=h).json()
        assert (c["code"] in {x["code"] for x in at["cameras"]}) == _sees(user, c)
        assert (c["code"] in client.get("/export/cameras", headers=h).text) == _sees(user, c)


def test_other_collections_extents_follow_the_row_filter(env):  # noqa: ANN001
    """A worker's incidents and routes collections span their own grids' rows, not the table."""
    client = env["client"]
    inc = client.get("/incidents?limit=10000", headers=env["tokens"]["wu"]).json()["features"]
    xs = [f["geometry"]["coordinates"][0] for f in inc]
    ys = [f["geometry"]["coordinates"][1] for f in inc]
    ext = client.get("/ogc/collections/incidents", headers=env["tokens"]["wu"]).json()["extent"]["spatial"]["bbox"][0]
    assert max(abs(a - b) for a, b in zip(ext, [min(xs), min(ys), max(xs), max(ys)])) < 1e-4
    full = client.get("/ogc/collections/incidents", headers=env["tokens"]["ada"]).json()["extent"]["spatial"]["bbox"][0]
    assert full[3] > ext[3] + 0.001  # zhang's incidents (upper right) reach further north


def _wu_view(client, h: dict, inc: dict) -> dict:  # noqa: ANN001
    iid = inc["id"]
    lon, lat = inc["geometry"]["coordinates"]
    at = inc["properties"]["occurred_at"]
    look = client.get("/lookup", params={"lon": lon, "lat": lat, "at": at, "days": 1, "radius_m": 50}, headers=h)
    return {
        "item": client.get(f"/incidents/{iid}", headers=h).status_code,
        "events": client.get(f"/incidents/{iid}/events", headers=h).status_code,
        "listed": iid in {f["id"] for f in client.get("/incidents?limit=10000&grid_code=51010400102", headers=h).json()["features"]},
        "ogc": client.get(f"/ogc/collections/incidents/items/{iid}", headers=h).status_code,
        "export": iid in {f["properties"]["id"] for f in client.get("/export/incidents", headers=h).json()["features"]},
        "lookup": iid in {i["id"] for i in look.json()["incidents"]},
        "routes": "51010400102" in {r["grid_code"] for r in client.get("/routes", headers=h).json()},
        "route": client.get("/routes/51010400102", headers=h).status_code,
        "hot": client.get("/grids/51010400102/hot-spots?at=2019-01-01T00:00:00Z&days=400", headers=h).status_code,
    }


def test_reassigned_worker_loses_the_grid_at_once(env):  # noqa: ANN001
    """wu is moved off grid 002 (a new plan version): at once his incidents there (list, item,
    events, OGC, export, map click, transition), its routes and hot spots are gone; moved back,
    they return. The incidents' own worker field still says wu: it does not decide."""
    client, wu, planner = env["client"], env["tokens"]["wu"], env["tokens"]["pia"]
    feats = client.get("/incidents?limit=100&grid_code=51010400102", headers=env["tokens"]["ada"]).json()["features"]
    inc = next(f for f in feats if f["properties"]["worker"] == "wu")  # the seed leaves some unassigned
    before = _wu_view(client, wu, inc)
    assert before == {"item": 200, "events": 200, "listed": True, "ogc": 200, "export": True, "lookup": True,
                      "routes": True, "route": 200, "hot": 200}
    r = client.post("/grids/51010400102/worker", json={"worker": "li"}, headers=planner)
    assert r.status_code == 200, r.text
    try:
        after = _wu_view(client, wu, inc)
        assert after == {"item": 404, "events": 404, "listed": False, "ogc": 404, "export": False, "lookup": False,
                         "routes": False, "route": 404, "hot": 403}
        moved = client.post(f"/incidents/{inc['id']}/advance", json={"to": "handled"}, headers=wu)
        assert moved.status_code == 404
        # an older plan naming wu does not help, whatever plan_id is asked for
        old = client.get("/grids/plans", headers=planner).json()[-2]["plan"]
        assert client.get(f"/grids/51010400102/hot-spots?plan_id={old}", headers=wu).status_code == 403
        # his other grid is untouched
        assert client.get("/incidents?limit=1&grid_code=51010400101", headers=wu).json()["numberMatched"] > 0
    finally:
        back = client.post("/grids/51010400102/worker", json={"worker": "wu"}, headers=planner)
        assert back.status_code == 200, back.text
    assert _wu_view(client, wu, inc) == before


FIELD_RULES = {"grids": ("worker", "station_lon", "station_lat"), "cameras": ("source",)}


@pytest.mark.parametrize("user", list(CLEARANCE))
def test_fields_per_role_on_every_channel(env, user):  # noqa: ANN001
    """Grid workers and stations (and plan notes naming workers) reach only roles that read
    workers; a camera's source file reaches only admins — in OGC items, item, schema and
    filters, exports (GeoJSON and GeoPackage), GET /grids, /grids/plans and the map click."""
    from gridpatrol.api.auth import can
    from gridpatrol.layers.users import Principal

    client, h = env["client"], env["tokens"][user]
    roles = {**{n: r for r, n in ROLE_USERS.items()}, CLEARED_DISPATCHER: "dispatcher", "anonymous": "viewer"}
    who = Principal(user, roles[user])
    workers_ok, source_ok = can(who, "read_workers"), can(who, "edit_cameras")
    grid3 = client.get("/ogc/collections/grids/items?code=51010400103", headers=h).json()["features"]
    bodies = {
        "ogc items": [f["properties"] for f in grid3],
        "ogc item": [client.get(f"/ogc/collections/grids/items/{grid3[-1]['id']}", headers=h).json()["properties"]],
        "schema": [client.get("/ogc/collections/grids/schema", headers=h).json()["properties"]["properties"]["properties"]],
        "GET /grids": [f["properties"] for f in client.get("/grids", headers=h).json()["features"]],
        "export": [f["properties"] for f in client.get("/export/grids", headers=h).json()["features"]],
        "export gpkg": _gpkg_rows(client.get("/export/grids?format=gpkg", headers=h).content, "grids"),
    }
    for channel, rows in bodies.items():
        assert rows, channel
        for field in FIELD_RULES["grids"]:
            assert all((field in row) == workers_ok for row in rows), (user, channel, field)
    raw = b"".join(client.get(p, headers=h).content for p in (
        "/grids", "/export/grids", "/ogc/collections/grids/items?limit=10000", "/grids/plans",
        f"/lookup?lon={grid3[0]['geometry']['coordinates'][0][0][0][0] + 0.001}"
        f"&lat={grid3[0]['geometry']['coordinates'][0][0][0][1] - 0.001}"))
    assert any(n in raw for n in _needles(SECRET_WORKER)) == workers_ok, user
    plans = client.get("/grids/plans", headers=h).json()
    assert all(("note" in p) == workers_ok for p in plans)
    # a hidden field cannot be filtered on either (numberMatched would tell its values)
    r = client.get(f"/ogc/collections/grids/items?worker={SECRET_WORKER}", headers=h)
    assert r.status_code == (200 if workers_ok else 422), r.text
    assert workers_ok or ("unknown query parameter 'worker'" in r.text and "station_lon" not in r.text)
    if CLEARANCE[user] >= 0:
        cams = client.get("/cameras?limit=5", headers=h).json()["features"]
        schema = client.get("/ogc/collections/cameras/schema", headers=h).json()["properties"]["properties"]["properties"]
        exported = client.get("/export/cameras", headers=h).json()["features"][:5]
        for props in [c["properties"] for c in cams] + [schema] + [f["properties"] for f in exported]:
            assert ("source" in props) == source_ok and "secrecy_level" in props, user
        assert (b"secret-list.csv" in client.get("/export/cameras", headers=h).content) == source_ok


def _gpkg_rows(data: bytes, layer: str) -> list[dict]:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{layer}.gpkg"
        path.write_bytes(data)
        return pyogrio.read_dataframe(path).drop(columns="geometry").to_dict("records")


def _camera_count(url: str) -> int:
    store = _open(url)
    try:
        return store.count("cameras")
    finally:
        store.dispose()


@pytest.mark.parametrize("level", ["0.5", "8.99", "2.5"])
def test_fractional_secrecy_refused_on_every_input(env, loaded_store_url, tmp_path, level):  # noqa: ANN001
    """A camera file (CSV, GeoJSON; API and CLI) or a user with a fractional secrecy level is
    refused with the row/field named, and nothing is written."""
    client, admin = env["client"], env["tokens"]["ada"]
    n0 = _camera_count(loaded_store_url)
    csv = f"code,name,project,lon,lat,secrecy_level\nprobe:ok,好,skynet,104.06,30.66,1\nprobe:frac,坏,skynet,104.061,30.661,{level}\n"
    r = client.post("/cameras/import", content=csv.encode(), headers={**admin, "Content-Type": "text/csv"})
    assert r.status_code == 422 and "row 2" in r.text and "secrecy_level" in r.text and level in r.text, r.text
    geo = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [104.06, 30.66]},
         "properties": {"code": "probe:geo", "name": "坏", "project": "skynet", "secrecy_level": float(level)}}]}
    r = client.post("/cameras/import", json=geo, headers=admin)
    assert r.status_code == 422 and "secrecy_level" in r.text and level in r.text, r.text
    path = tmp_path / "cams.csv"
    path.write_text(csv, encoding="utf-8")
    p = subprocess.run([GRIDPATROL, "--db", loaded_store_url, "import-cameras", str(path)], capture_output=True,
                       text=True, timeout=300, env={**os.environ, "COLUMNS": "200"})
    out = p.stdout + p.stderr
    assert p.returncode == 2 and "row 2" in out and "secrecy_level" in out and "Traceback" not in out, out
    assert _camera_count(loaded_store_url) == n0
    # users: through the API (create and change) and the layer function
    r = client.post("/auth/users", json={"name": "frac-user", "role": "dispatcher", "password": "frac-password-1",
                                         "max_secrecy_level": float(level)}, headers=admin)
    assert r.status_code == 422 and "max_secrecy_level" in r.text
    r = client.patch("/auth/users/dan", json={"max_secrecy_level": float(level)}, headers=admin)
    assert r.status_code == 422 and "max_secrecy_level" in r.text
    listed = {u["name"]: u for u in client.get("/auth/users", headers=admin).json()}
    assert "frac-user" not in listed and listed["dan"]["max_secrecy_level"] == 0
    from gridpatrol.gis.errors import InputError
    from gridpatrol.layers.users import create_user

    store = _open(loaded_store_url)
    try:
        with pytest.raises(InputError, match="whole number"):
            create_user(store, "frac-user", "dispatcher", "frac-password-1", max_secrecy_level=float(level))
    finally:
        store.dispose()
