"""POST /grids/draw with a weighted workload (#15): the same parameters as draw-grids, every measure
per grid in the answer, GET /grids/check judging the plan by that workload; bad weights are a 4xx
naming them with nothing written. Both stores, Chengdu's 锦江区."""
from __future__ import annotations

import pytest

from tests.api.login import bearer
from tests.cached_stores import JOB_PASSWORD

SERVER_WORKER = False  # tests/api/conftest.py: no worker thread in the server; tests drain the queue themselves


@pytest.fixture(scope="module")
def loaded_store_url(jinjiang_store_url):  # noqa: ANN001, ANN201
    """Jinjiang with users of each role and no plan: tests/api/conftest.py's ``app`` serves it."""
    return jinjiang_store_url


@pytest.fixture(scope="module")
def planner(client) -> dict[str, str]:  # noqa: ANN001
    return bearer(client, "pia", JOB_PASSWORD)


@pytest.mark.parametrize(("body", "words"), [
    ({"balance": "weighted", "weights": "households=1,lanes=2"}, "unknown measure 'lanes'"),
    ({"balance": "weighted", "weights": {"households": "many"}}, "not a number"),
    ({"balance": "weighted"}, "needs --weights"),
    ({"balance": "persons"}, "balance must be one of"),
])
def test_bad_balance_is_refused_before_drawing(client, planner, body, words) -> None:  # noqa: ANN001
    before = client.get("/grids/plans", headers=planner).json()
    r = client.post("/grids/draw", headers=planner, json=body)
    assert 400 <= r.status_code < 500 and words in r.text, r.text
    assert client.get("/grids/plans", headers=planner).json() == before  # nothing drawn, in any test order


def test_weighted_draw_reports_every_measure_and_checks_by_its_workload(client, planner) -> None:  # noqa: ANN001
    r = client.post("/grids/draw", headers=planner,
                    json={"seed": 1, "balance": "weighted", "weights": {"households": 1, "street_km": 20}})
    assert r.status_code == 201, r.text
    d = r.json()
    bal = d["balance"]
    assert bal["mode"] == "weighted" and bal["weights"] == {"households": 1.0, "street_km": 20.0}
    s = bal["workload_per_household"]
    assert bal["band"] == pytest.approx([300 * s, 500 * s]) and bal["target"] == pytest.approx(300 * s)
    rows = d["per_grid"]
    assert len(rows) == d["grids"] > 1
    for g in rows:
        assert {"code", "households", "population", "street_km", "area_km2", "buildings", "workload"} <= set(g)
        assert g["workload"] == pytest.approx(g["households"] + 20 * g["street_km"], abs=0.2)
        assert g["in_band"] or g["exempt"]
    assert any(not 300 <= g["households"] <= 500 and not g["exempt"] for g in rows)  # households alone are not
    c = client.get(f"/grids/check?plan_id={d['plan_id']}", headers=planner).json()
    assert c["valid"] and c["summary"]["balance"] == "weighted"
    assert [g["code"] for g in c["grids"]] == [g["code"] for g in rows]
