"""Villages and hamlets (place nodes and places mapped as areas, #15) are OGC API collections and
part of the map's basemap, for every signed-in role like the other map layers; names come back
as stored (a page escapes them where it renders them: tests/e2e/test_hostile_pages.py). Both
stores, the generated rural county (seed 2, villages mapped as areas)."""
from __future__ import annotations

import pytest

from tests.api.login import bearer
from tests.cached_stores import JOB_PASSWORD

HOSTILE = '<img src=x onerror="window.__pwned=1">王家村'
ROLES = {"vic": "viewer", "wu": "worker", "dan": "dispatcher", "pia": "planner"}


@pytest.fixture(scope="module")
def loaded_store_url(module_store_url_places):  # noqa: ANN001, ANN201
    return module_store_url_places


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def module_store_url_places(request, tmp_path_factory):  # noqa: ANN001, ANN201
    from gridpatrol.layers import users
    from gridpatrol.layers.grids import draw_grids
    from gridpatrol.layers.models import PlaceArea
    from gridpatrol.layers.plan_params import PlanParams
    from gridpatrol.layers.store import open_store
    from sqlalchemy import update

    from tests.conftest import module_store_url
    from tests.synth_rural import load_rural_county

    with module_store_url(request, tmp_path_factory) as url:
        s = open_store(url)
        load_rural_county(s, seed=2, village_areas=True)
        with s.begin() as c:
            c.execute(update(PlaceArea).where(PlaceArea.name == "王家村").values(name=HOSTILE))
        for name, role in ROLES.items():
            users.create_user(s, name, role, JOB_PASSWORD)
        draw_grids(s, PlanParams(mode="rural", max_area_m2=4_000_000, max_travel_min=10, allow_sparse=True))
        s.dispose()
        yield url


@pytest.fixture(scope="module")
def heads(client) -> dict[str, dict[str, str]]:  # noqa: ANN001
    return {name: bearer(client, name, JOB_PASSWORD) for name in ROLES}


def test_every_role_reads_the_villages(client, heads) -> None:  # noqa: ANN001
    from tests.synth_rural import VILLAGES

    for name, h in heads.items():
        listed = {c["id"]: c for c in client.get("/ogc/collections", headers=h).json()["collections"]}
        assert {"places", "place_areas"} <= set(listed), name
        assert len(listed["place_areas"]["extent"]["spatial"]["bbox"][0]) == 4
        areas = client.get("/ogc/collections/place_areas/items?limit=100", headers=h).json()
        nodes = client.get("/ogc/collections/places/items?limit=100", headers=h).json()
        names = {f["properties"]["name"] for f in areas["features"] + nodes["features"]}
        # every generated village but the one without a node or an area, the hostile name as stored
        assert names == {v[0] for v in VILLAGES if v[0] not in ("岩脚", "王家村")} | {HOSTILE}, name
        assert {f["geometry"]["type"] for f in areas["features"]} == {"MultiPolygon"}
        assert {f["geometry"]["type"] for f in nodes["features"]} == {"Point"}
        one = areas["features"][0]
        item = client.get(f"/ogc/collections/place_areas/items/{one['id']}", headers=h)
        assert item.status_code == 200 and item.json()["properties"]["name"] == one["properties"]["name"]
        # the basemap of the grid map holds them too (areas and nodes)
        base = client.get("/maps/data/basemap", headers=h).json()
        assert {f["properties"]["name"] for f in base["places"]["features"]} == names


def test_without_a_token_villages_follow_the_areas_rule(client) -> None:  # noqa: ANN001
    """No token: the villages answer as the administrative areas do (the service's anonymous rule)."""
    want = client.get("/ogc/collections/areas/items").status_code
    for path in ("/ogc/collections/places/items", "/ogc/collections/place_areas/items"):
        assert client.get(path).status_code == want, path
