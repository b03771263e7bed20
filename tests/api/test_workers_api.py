"""Assigning grid workers over the API: who may, what it changes, and bad requests."""
from __future__ import annotations

import shapely

from tests.api.api_seed import ROLE_USERS


def _grid(client, headers, code):  # noqa: ANN001, ANN202
    feats = client.get("/grids", headers=headers).json()["features"]
    return next(f for f in feats if f["properties"]["code"] == code)


def test_planner_assigns_a_worker_and_others_may_not(client, tokens):
    planner, admin = tokens[ROLE_USERS["planner"]], tokens[ROLE_USERS["admin"]]
    code = "51010400103"
    geom = shapely.geometry.shape(_grid(client, admin, code)["geometry"])
    inside = shapely.point_on_surface(geom)
    for who in ("dispatcher", "worker", "viewer"):
        r = client.post(f"/grids/{code}/worker", json={"worker": "孙丽"}, headers=tokens[ROLE_USERS[who]])
        assert r.status_code == 403, (who, r.text)
    assert client.post(f"/grids/{code}/worker", json={"worker": "孙丽"}).status_code in (401, 403)
    r = client.post(f"/grids/{code}/worker", json={"worker": "孙丽", "station_lon": inside.x,
                                                   "station_lat": inside.y}, headers=planner)
    assert r.status_code == 200, r.text
    props = _grid(client, admin, code)["properties"]
    assert props["worker"] == "孙丽" and abs(props["station_lon"] - inside.x) < 1e-9


def test_bad_worker_requests_are_4xx(client, tokens):
    planner = tokens[ROLE_USERS["planner"]]
    plans_before = len(client.get("/grids/plans", headers=planner).json())
    assert client.post("/grids/99999/worker", json={"worker": "x"}, headers=planner).status_code == 404
    far = client.post("/grids/51010400101/worker", json={"worker": "x", "station_lon": 120.0, "station_lat": 30.0},
                      headers=planner)
    assert far.status_code == 422 and "outside the grid" in far.json()["detail"]
    half = client.post("/grids/51010400101/worker", json={"worker": "x", "station_lon": 104.0}, headers=planner)
    assert half.status_code == 422
    bad = client.post("/grids/51010400101/worker", json={"worker": "x", "station_lat": 123}, headers=planner)
    assert bad.status_code == 422
    assert len(client.get("/grids/plans", headers=planner).json()) == plans_before
