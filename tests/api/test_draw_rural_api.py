"""POST /grids/draw with ``mode: rural`` (#15): the same parameters as ``draw-grids --mode rural``;
GET /grids/check judges the plan by the rural rules; a travel limit without rural mode is a 4xx
with nothing written. Both stores, the generated rural county (tests/synth_rural.py)."""
from __future__ import annotations

import pytest

from tests.api.login import bearer
from tests.cached_stores import JOB_PASSWORD

PLANNER = "pia"

SERVER_WORKER = False  # tests/api/conftest.py: no worker thread in the server; tests drain the queue themselves


@pytest.fixture(scope="module")
def loaded_store_url(module_store_url_rural):  # noqa: ANN001, ANN201
    return module_store_url_rural


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def module_store_url_rural(request, tmp_path_factory):  # noqa: ANN001, ANN201
    from gridpatrol.layers import users
    from gridpatrol.layers.store import open_store

    from tests.conftest import module_store_url
    from tests.synth_rural import load_rural_county

    with module_store_url(request, tmp_path_factory) as url:
        s = open_store(url)
        load_rural_county(s)
        users.create_user(s, PLANNER, "planner", JOB_PASSWORD)
        s.dispose()
        yield url


@pytest.fixture(scope="module")
def planner(client) -> dict[str, str]:  # noqa: ANN001
    return bearer(client, PLANNER, JOB_PASSWORD)


@pytest.mark.parametrize(("body", "words"), [
    ({"max_travel_min": 10}, "--max-travel-min"),
    ({"mode": "village"}, "mode"),
    ({"mode": "rural", "travel_mode": "fly"}, "travel_mode"),
])
def test_bad_rural_parameters_are_refused(client, planner, body, words) -> None:  # noqa: ANN001
    before = client.get("/grids/plans", headers=planner).json()
    r = client.post("/grids/draw", headers=planner, json={"allow_sparse": True, **body})
    assert 400 <= r.status_code < 500 and words in r.text, r.text
    assert client.get("/grids/plans", headers=planner).json() == before


def test_rural_draw_and_check(client, planner) -> None:  # noqa: ANN001
    r = client.post("/grids/draw", headers=planner, json={"mode": "rural", "max_area_m2": 4_000_000,
                                                          "max_travel_min": 10, "allow_sparse": True})
    assert r.status_code == 201, r.text
    d = r.json()
    c = client.get(f"/grids/check?plan_id={d['plan_id']}", headers=planner).json()
    assert c["valid"], c
    rural = c["summary"]["rural"]
    assert rural["mode"] == "rural" and rural["settlements_split"] == 0 and rural["settlements"] >= 10
    kinds = {f["properties"]["kind"] for f in c["problems"]["features"]}
    assert "settlement_split" not in kinds and "settlement_on_area_boundary" in kinds
    assert {g["code"] for g in c["grids"]} == {g["code"] for g in d["per_grid"]}
