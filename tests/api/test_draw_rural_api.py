"""POST /grids/draw with ``mode: rural`` (#15): the same parameters as ``draw-grids --mode rural``;
GET /grids/check judges the plan by the rural rules; a travel limit without rural mode is a 4xx
with nothing written. Both stores, the generated rural county (tests/synth_rural.py)."""
from __future__ import annotations

import re

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


def test_move_preview_of_a_rural_plan_says_what_the_rural_check_says(client, planner) -> None:  # noqa: ANN001
    """The planner page's move preview judges a rural plan by the rural rules (not the urban household
    band): moving a field block into a grid already at the 4 km² limit is refused there, naming the
    limit, and the move itself is refused with the same words; a move within the limits is not held
    back by households (every grid of this county is outside the 300–500 band)."""
    r = client.post("/grids/draw", headers=planner, json={"mode": "rural", "max_area_m2": 4_000_000,
                                                          "max_travel_min": 10, "allow_sparse": True})
    assert r.status_code == 201, r.text
    pid = r.json()["plan_id"]
    blocks = client.get(f"/maps/data/blocks?plan_id={pid}", headers=planner).json()["features"]
    fields = sorted(int(f["properties"]["block_id"]) for f in blocks if not f["properties"]["households"])
    over = fine = None
    for block_id in fields:
        p = client.post(f"/grids/preview-move?plan_id={pid}", headers=planner, json={"items": [block_id]})
        if p.status_code != 200:  # a block touching no other grid
            continue
        d = p.json()
        assert d["rural"]["max_area_m2"] == 4_000_000 and d["rural"]["max_travel_min"] == 10, d
        assert set(d["rural"]["travel_min"]) <= {g["code"] for g in d["grids"]}
        assert not any(x["kind"] == "out_of_band" for x in d["refusals"]), d["refusals"]
        kinds = {x["kind"] for x in d["refusals"]}
        if over is None and "over_area_limit" in kinds:
            over = d
        if fine is None and not d["refusals"]:
            fine = d
        if over and fine:
            break
    assert over is not None, "a field block moved into a full grid"
    assert not over["ok"]
    (ref,) = [x for x in over["refusals"] if x["kind"] == "over_area_limit"]
    assert ref["blocking"] and ref["grid_code"] == over["to"] and "4,000,000" in ref["message"], ref
    assert re.search(r"超出 [\d,]+ m²", ref["message"]), "by how much"
    assert over["grids"][0]["after"]["area_m2"] > 4_000_000 >= over["grids"][0]["before"]["area_m2"]
    n_plans = len(client.get("/grids/plans", headers=planner).json())
    m = client.post(f"/grids/move-blocks?plan_id={pid}", headers=planner,
                    json={"to": over["to"], "items": over["blocks"], "force": True})
    assert m.status_code == 409 and ref["message"] in m.text, m.text
    assert len(client.get("/grids/plans", headers=planner).json()) == n_plans, "nothing written"
    assert fine is not None and fine["ok"], "a field block moved into a grid with room"
    m = client.post(f"/grids/move-blocks?plan_id={pid}", headers=planner, json={"to": fine["to"], "items": fine["blocks"]})
    assert m.status_code in (200, 201), m.text


def test_import_with_mode_rural(client, planner, loaded_store_url) -> None:  # noqa: ANN001
    """POST /grids/import?mode=rural over an urban plan makes a rural plan with the newest rural plan's
    limits (as import-grids --mode rural), judged by the rural check; an unknown mode is a 422 with
    nothing written."""
    import json

    from gridpatrol.layers.grids import read_grids
    from gridpatrol.layers.store import open_store

    r = client.post("/grids/draw", headers=planner, json={"mode": "rural", "max_area_m2": 4_000_000,
                                                          "max_travel_min": 10, "allow_sparse": True})
    assert r.status_code == 201, r.text
    s = open_store(loaded_store_url)
    try:
        body = json.loads(read_grids(s, r.json()["plan_id"])[["code", "parent_code", "geometry"]].to_json())
    finally:
        s.dispose()
    assert client.post("/grids/draw", headers=planner, json={"allow_sparse": True}).status_code == 201  # urban now
    n_plans = len(client.get("/grids/plans", headers=planner).json())
    bad = client.post("/grids/import?mode=village", headers=planner, json=body)
    assert bad.status_code == 422 and "mode" in bad.text, bad.text
    assert len(client.get("/grids/plans", headers=planner).json()) == n_plans
    r = client.post("/grids/import?code_field=code&mode=rural", headers=planner, json=body)
    assert r.status_code == 201 and r.json()["mode"] == "rural", r.text
    c = client.get(f"/grids/check?plan_id={r.json()['plan_id']}", headers=planner).json()
    assert c["valid"] and c["summary"]["rural"]["max_travel_min"] == 10, c["summary"]
    r = client.post("/grids/import?code_field=code", headers=planner, json=body)  # follows the newest: rural
    assert r.status_code == 201 and r.json()["mode"] == "rural", r.text
