"""The OGC items page cap (10,000, README) on a layer of more rows than that, on both stores:
larger limits are capped, not refused; next links page through every row exactly once."""
from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from tests.conftest import module_store_url

N_ROADS = 10_250
CAP = 10_000  # README: `limit` (capped at 10,000)


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def client(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """A service over a store holding N_ROADS generated street segments (a 0.0001° lattice)."""
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings
    from gridpatrol.layers.store import open_store

    with module_store_url(request, tmp_path_factory) as url:
        store = open_store(url)
        i = np.arange(N_ROADS)
        x0, y0 = 104.0 + (i % 100) * 1e-4, 30.6 + (i // 100) * 1e-4
        roads = gpd.GeoDataFrame(
            {"osm_id": i + 1, "seq": 0, "u": 2 * i + 1, "v": 2 * i + 2, "highway": "residential", "oneway": False, "length_m": 9.6},
            geometry=shapely.linestrings(np.stack([np.stack([x0, y0], 1), np.stack([x0 + 1e-4, y0], 1)], 1)), crs=4326)
        with store.begin() as conn:
            store.insert_gdf(conn, "roads", roads)
        store.dispose()
        app = create_app(url, settings=load_settings(log_level="WARNING"))
        with TestClient(app, raise_server_exceptions=False) as c:
            yield c
        app.state.store.dispose()


@pytest.mark.parametrize("limit", [CAP + 1, 2**62])
def test_a_limit_above_the_cap_returns_the_cap_and_pages_on(client, limit):  # noqa: ANN001
    r = client.get(f"/ogc/collections/roads/items?limit={limit}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["numberMatched"] == N_ROADS
    assert body["numberReturned"] == len(body["features"]) == CAP
    nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
    assert len(nxt) == 1 and f"limit={CAP}" in nxt[0] and f"offset={CAP}" in nxt[0]
    rest = client.get(nxt[0]).json()
    assert rest["numberReturned"] == N_ROADS - CAP
    assert not [link for link in rest["links"] if link["rel"] == "next"]
    ids = [f["id"] for f in body["features"]] + [f["id"] for f in rest["features"]]
    assert len(ids) == len(set(ids)) == N_ROADS


def test_limits_below_the_cap_are_kept_and_bad_ones_refused(client):  # noqa: ANN001
    body = client.get("/ogc/collections/roads/items").json()
    assert body["numberReturned"] == 100  # the default page
    body = client.get(f"/ogc/collections/roads/items?limit={CAP}&offset={N_ROADS - 5}").json()
    assert body["numberReturned"] == 5
    body = client.get(f"/ogc/collections/roads/items?limit={10**30}&offset={N_ROADS - CAP - 1}").json()
    assert body["numberReturned"] == CAP and body["numberMatched"] == N_ROADS
    body = client.get(f"/ogc/collections/roads/items?limit={CAP - 1}").json()
    assert body["numberReturned"] == CAP - 1
    for bad in ("0", "-1", "many"):
        assert client.get(f"/ogc/collections/roads/items?limit={bad}").status_code == 422, bad
