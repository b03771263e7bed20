"""A grid worker sees exactly the incidents and routes inside the grids they are responsible for,
compared with a point-in-polygon computation over the seeded data (both stores)."""
from __future__ import annotations

from datetime import datetime, timedelta

import geopandas as gpd
import pytest
import shapely
from gridpatrol.layers.models import Grid, Incident, Route
from gridpatrol.layers.store import open_store
from sqlalchemy import select


def _seeded(url: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The seeded grids, incidents and routes as stored (plain rows, geometry from WKB)."""
    store = open_store(url)
    try:
        out = []
        for model in (Grid, Incident, Route):
            t = model.__table__
            with store.engine.connect() as c:
                rows = c.execute(select(t.c.id, t.c.geom.ST_AsBinary().label("wkb"),
                                        *[t.c[k] for k in ("code", "worker") if k in t.c]
                                        + ([t.c.grid_code] if "grid_code" in t.c and model is not Grid else [])))
                rows = [dict(r._mapping) for r in rows]
            geom = shapely.from_wkb([bytes(r.pop("wkb")) for r in rows])
            out.append(gpd.GeoDataFrame(rows, geometry=geom, crs=4326).set_index("id"))
        return tuple(out)
    finally:
        store.dispose()


@pytest.fixture(scope="module")
def seeded(loaded_store_url):  # noqa: ANN001, ANN201
    return _seeded(loaded_store_url)


def _expected(seeded, worker: str) -> tuple[set[int], set[int]]:  # noqa: ANN001
    """Ids of the incidents whose point, and routes whose line, lie in ``worker``'s grids."""
    grids, incidents, routes = seeded
    own = shapely.union_all(grids.loc[grids["worker"] == worker].geometry.to_numpy())
    inc = set(incidents.index[shapely.covers(own, incidents.geometry.to_numpy())].tolist())
    rts = set(routes.index[shapely.covers(own, routes.geometry.to_numpy())].tolist())
    return inc, rts


@pytest.mark.parametrize("worker", ["wu", "li", "zhang"])
def test_a_worker_sees_exactly_the_incidents_and_routes_of_their_grids(client, seeded, worker):  # noqa: ANN001
    from tests.api.api_seed import PASSWORD, ROLE_USERS

    grids, incidents, routes = seeded
    if worker != ROLE_USERS["worker"]:
        from gridpatrol.layers import users

        users.create_user(client.app.state.store, worker, "worker", PASSWORD)  # li and zhang: workers too
    tok = client.post("/auth/token", data={"username": worker, "password": PASSWORD})
    assert tok.status_code == 200, tok.text
    h = {"Authorization": f"Bearer {tok.json()['access_token']}"}
    want_inc, want_routes = _expected(seeded, worker)
    assert want_inc and want_routes and len(want_inc) < len(incidents) and len(want_routes) < len(routes)
    # the seed's own labels agree with the geometry (so a filter on grid_code is a filter on place)
    mine = grids.index[grids["worker"] == worker]
    codes = set(grids.loc[mine, "code"])
    assert set(incidents.index[incidents["grid_code"].isin(codes)]) == want_inc
    # some incidents in these grids are assigned to nobody: seen for the grid alone
    if worker == "wu":
        assert incidents.loc[list(want_inc), "worker"].isna().sum() > 10
    ogc = client.get("/ogc/collections/incidents/items?limit=1000", headers=h).json()
    assert {f["id"] for f in ogc["features"]} == want_inc and ogc["numberMatched"] == len(want_inc)
    listed = client.get("/incidents?limit=1000", headers=h).json()
    assert {f["id"] for f in listed["features"]} == want_inc
    ogc_routes = client.get("/ogc/collections/routes/items?limit=1000", headers=h).json()
    assert {f["id"] for f in ogc_routes["features"]} == want_routes
    assert {r["id"] for r in client.get("/routes", headers=h).json()} == want_routes
    for code in grids["code"]:
        r = client.get(f"/routes/{code}", headers=h)
        if code in codes:
            assert r.status_code == 200 and len(r.json()["features"]) == 2, (code, r.text)
        else:
            assert r.status_code in (403, 404), (code, r.status_code)
    # one incident of another worker's grid, by id: not there for this worker
    other = sorted(set(incidents.index) - want_inc)[0]
    assert client.get(f"/incidents/{other}", headers=h).status_code == 404
    assert client.get(f"/incidents/{sorted(want_inc)[0]}", headers=h).status_code == 200
    # a map click at that incident and at one of their own: the incidents section holds exactly the
    # incidents the admin sees there that lie in this worker's grids
    tok = client.post("/auth/token", data={"username": ROLE_USERS["admin"], "password": PASSWORD}).json()
    admin = {"Authorization": f"Bearer {tok['access_token']}"}
    for inc_id in (other, sorted(want_inc)[0]):
        f = client.get(f"/incidents/{inc_id}", headers=admin).json()
        lon, lat = f["geometry"]["coordinates"][:2]
        at = datetime.fromisoformat(f["properties"]["occurred_at"]) + timedelta(days=1)
        params = {"lon": lon, "lat": lat, "at": at.isoformat(), "days": 30, "radius_m": 500}
        everyone = {i["id"] for i in client.get("/lookup", params=params, headers=admin).json()["incidents"]}
        seen = {i["id"] for i in client.get("/lookup", params=params, headers=h).json()["incidents"]}
        assert inc_id in everyone and (inc_id in seen) == (inc_id in want_inc)
        assert seen == everyone & want_inc, (inc_id, seen, everyone)


@pytest.mark.parametrize("name", ["wu", "dan", "vic"])
def test_the_landing_page_lists_the_routes_the_user_may_see_and_every_link_works(app, seeded, name):  # noqa: ANN001
    """A worker's landing page lists exactly their grids' routes (sheet and GPX links answer, no 404);
    a dispatcher sees every grid's; a viewer none, and is told to log in with a routes role."""
    import re

    from fastapi.testclient import TestClient

    from tests.api.api_seed import PASSWORD

    grids, _, routes = seeded
    with TestClient(app) as c:
        assert c.post("/login", data={"username": name, "password": PASSWORD}, follow_redirects=False).status_code == 303
        page = c.get("/")
        assert page.status_code == 200
        listed = re.findall(r'<td><a href="/maps/routes/([^"]+)">', page.text)
        if name == "vic":
            assert listed == [] and "请以规划员、调度员、网格员或管理员身份登录" in page.text
            assert "合成数据" not in page.text  # a viewer sees no incidents or cameras, synthetic or not
            return
        assert "摄像机和事件为合成数据" in page.text  # the seed's incidents are synthetic
        if name == "wu":
            own = shapely.union_all(grids.loc[grids["worker"] == "wu"].geometry.to_numpy())
            want = set(routes.loc[shapely.covers(own, routes.geometry.to_numpy()), "grid_code"])
        else:
            want = set(routes["grid_code"])
        assert want and set(listed) == want and len(listed) == len(want), (listed, want)
        assert f"可查看的巡查路线（{len(want)} 个网格）" in page.text
        for code in listed:
            for link in (f"/maps/routes/{code}", f"/routes/{code}/route.gpx"):
                r = c.get(link)
                assert r.status_code == 200, (link, r.status_code, r.text[:200])


def test_the_synthetic_data_notice_shows_only_when_the_user_sees_synthetic_rows(app):  # noqa: ANN001
    """The dispatcher's landing and incident map say the data are synthetic only while some camera or
    incident they may see is; marked real, the notice goes (the store is put back afterwards)."""
    from fastapi.testclient import TestClient
    from gridpatrol.layers.models import Camera
    from sqlalchemy import update

    from tests.api.api_seed import PASSWORD

    store = app.state.store
    with store.engine.connect() as c:
        fake = {m: [r[0] for r in c.execute(select(m.id).where(m.synthetic.is_(True)))] for m in (Incident, Camera)}
    assert fake[Incident]
    with TestClient(app) as c:
        assert c.post("/login", data={"username": "dan", "password": PASSWORD}, follow_redirects=False).status_code == 303
        assert "为合成数据" in c.get("/").text and "为合成数据" in c.get("/maps/incidents").text
        try:
            with store.begin() as conn:
                for model, ids in fake.items():
                    conn.execute(update(model).where(model.id.in_(ids)).values(synthetic=False))
            assert "为合成数据" not in c.get("/").text and "为合成数据" not in c.get("/maps/incidents").text
        finally:
            with store.begin() as conn:
                for model, ids in fake.items():
                    if ids:
                        conn.execute(update(model).where(model.id.in_(ids)).values(synthetic=True))
