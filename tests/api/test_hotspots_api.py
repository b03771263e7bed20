"""A grid's incident hot spots over the API: what they hold and who may see them."""
from __future__ import annotations

import shapely
from shapely.geometry import shape

from tests.api.api_seed import ROLE_USERS

Q = "days=365&at=2019-01-01T00:00:00Z&radius_m=300&min_incidents=2"  # the seeded incidents are of 2018


def test_hot_spots_lie_in_the_grid_most_important_first(client, tokens):
    dispatcher = tokens[ROLE_USERS["dispatcher"]]
    grid = next(f for f in client.get("/grids", headers=dispatcher).json()["features"]
                if f["properties"]["code"] == "51010400101")
    poly = shape(grid["geometry"])
    r = client.get(f"/grids/51010400101/hot-spots?{Q}", headers=dispatcher)
    assert r.status_code == 200, r.text
    spots = r.json()["features"]
    assert len(spots) >= 1
    imp = [s["properties"]["importance"] for s in spots]
    assert imp == sorted(imp, reverse=True) and all(0 < v <= s["properties"]["incidents"] for v, s in zip(imp, spots))
    assert all(poly.buffer(0.003).contains(shape(s["geometry"])) for s in spots)
    assert spots[0]["properties"]["name"].startswith("热点1（") and spots[0]["properties"]["last_at"].startswith("2018")
    total = sum(s["properties"]["incidents"] for s in spots)
    incidents = client.get("/incidents?bbox=" + ",".join(map(str, poly.bounds)) + "&limit=10000",
                           headers=dispatcher).json()["features"]
    inside = [i for i in incidents if poly.intersects(shapely.geometry.shape(i["geometry"]))]
    assert 0 < total <= len(inside)
    top = client.get(f"/grids/51010400101/hot-spots?{Q}&top=1", headers=dispatcher).json()["features"]
    assert len(top) == 1 and top[0]["properties"] == spots[0]["properties"]


def test_who_may_see_hot_spots(client, tokens):
    worker = tokens[ROLE_USERS["worker"]]  # wu works 51010400101 and 51010400102
    assert client.get(f"/grids/51010400101/hot-spots?{Q}", headers=worker).status_code == 200
    mine_not = client.get(f"/grids/51010400104/hot-spots?{Q}", headers=worker)
    assert mine_not.status_code == 403 and "not one of yours" in mine_not.json()["detail"]
    assert client.get(f"/grids/51010400101/hot-spots?{Q}", headers=tokens[ROLE_USERS["viewer"]]).status_code == 403
    assert client.get(f"/grids/51010400101/hot-spots?{Q}").status_code in (401, 403)
    admin = tokens[ROLE_USERS["admin"]]
    assert client.get(f"/grids/99999999/hot-spots?{Q}", headers=admin).status_code == 404
    for bad in ("days=0", "radius_m=-1", "min_incidents=0", "top=0", "days=abc", "at=yesterday"):
        assert client.get(f"/grids/51010400101/hot-spots?{bad}", headers=admin).status_code == 422, bad
