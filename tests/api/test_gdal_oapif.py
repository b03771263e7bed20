"""GDAL's OGC API – Features client (the OAPIF driver QGIS uses) reads every collection, for every
role, exactly as the store holds it: 64-bit OSM ids, times, Chinese text and geometries, with no
GDAL warning, on both stores."""
from __future__ import annotations

import httpx
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from gridpatrol.api.auth import hidden_fields, layer_filter, visible_layers
from gridpatrol.layers import users
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.api.api_seed import CLEARED_DISPATCHER, PASSWORD, ROLE_USERS
from tests.api.live_server import running_server
from tests.gdal_check import gdal_silent

BIG = 11_000_000_000  # real OSM node ids passed 2^32 in 2021; these must not come back clamped


@pytest.fixture(scope="module")
def big_ids_url(loaded_store_url):  # noqa: ANN001, ANN201
    """The seeded store with OSM ids and node ids above 2^32 on part of the roads and buildings,
    as in a current OSM extract."""
    store = open_store(loaded_store_url)
    with store.begin() as conn:
        conn.execute(text(f"UPDATE roads SET osm_id = osm_id + {BIG}, u = u + {BIG}, v = v + {BIG} WHERE id % 3 = 0"))
        conn.execute(text(f"UPDATE buildings SET osm_id = osm_id + {BIG} WHERE id % 5 = 0"))
    store.dispose()
    return loaded_store_url


@pytest.fixture(scope="module")
def live(big_ids_url):  # noqa: ANN001, ANN201
    with running_server(big_ids_url) as base:
        headers = {"anonymous": {}}
        for name in [*ROLE_USERS.values(), CLEARED_DISPATCHER]:
            r = httpx.post(base + "/auth/token", data={"username": name, "password": PASSWORD}, timeout=30)
            assert r.status_code == 200, r.text
            headers[name] = {"Authorization": "Bearer " + r.json()["access_token"]}
        yield base, headers


def gdal_read(base: str, layer: str, headers: dict[str, str]) -> pd.DataFrame:
    """``layer`` read through GDAL's OAPIF driver with the bearer token in every request's
    Authorization header, GDAL silent throughout.

    GDAL_HTTP_AUTH=BEARER, not GDAL_HTTP_HEADERS: the OAPIF driver sends its own Accept header,
    and GDAL then ignores GDAL_HTTP_HEADERS (the requests went out anonymous)."""
    token = headers["Authorization"].split()[1] if headers else None
    pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": token and "BEARER", "GDAL_HTTP_BEARER": token})
    try:
        with gdal_silent():
            return pyogrio.read_dataframe(f"OAPIF:{base}/ogc", layer=layer, PAGE_SIZE=5000, fid_as_index=True)
    finally:
        pyogrio.set_gdal_config_options({"GDAL_HTTP_AUTH": None, "GDAL_HTTP_BEARER": None})


def _same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and np.isnan(a)) or a is pd.NaT:
        return b is None or (isinstance(b, float) and np.isnan(b)) or b is pd.NaT
    if isinstance(a, pd.Timestamp) or hasattr(a, "tzinfo"):
        # GDAL keeps times to the millisecond.
        ta, tb = pd.Timestamp(a).tz_convert("UTC"), pd.Timestamp(b)
        tb = tb.tz_localize("UTC") if tb.tzinfo is None else tb.tz_convert("UTC")
        return abs((ta - tb).total_seconds()) < 0.001
    return type(a)(b) == a if not isinstance(a, bool) else bool(b) == a


@pytest.mark.parametrize("user", ["anonymous", *ROLE_USERS.values(), CLEARED_DISPATCHER])
def test_gdal_reads_every_collection_exactly(live, big_ids_url, user):  # noqa: ANN001
    base, headers = live
    store = open_store(big_ids_url)
    try:
        principal = users.get_user(store, user) if user != "anonymous" else users.ANONYMOUS
        for layer in visible_layers(principal):
            want = store.read_layer(layer, where=layer_filter(principal, layer, store.table(layer)))
            want = want.drop(columns=[c for c in want.columns if c in hidden_fields(principal, layer)])
            got = gdal_read(base, layer, headers[user])
            assert sorted(got.index.tolist()) == sorted(want.index.tolist()), (user, layer)
            props = [c for c in want.columns if c not in ("id", "geometry")]
            assert set(got.columns) - {"geometry"} == set(props), (user, layer, set(got.columns) ^ set(props))
            for col in props:
                for fid, expected in want[col].items():
                    assert _same(expected, got.at[fid, col]), (user, layer, fid, col, expected, got.at[fid, col])
            geoms = got.geometry.loc[want.index].values
            assert shapely.equals_exact(geoms, want.geometry.values, tolerance=0).all(), (user, layer)
            if layer == "roads":
                assert (want["u"] > 2**32).any() and got["u"].max() == want["u"].max()
    finally:
        store.dispose()


def test_json_schema_declares_int64_wherever_values_pass_32_bits(live, big_ids_url):  # noqa: ANN001
    """Clients that read the JSON Schema (rather than the XML one GDAL prefers) learn the same:
    every integer property holding a value beyond 32 bits says ``"format": "int64"``."""
    base, headers = live
    store = open_store(big_ids_url)
    try:
        checked = set()
        for layer in visible_layers(users.get_user(store, "ada")):
            props = httpx.get(f"{base}/ogc/collections/{layer}/schema", headers=headers["ada"],
                              timeout=30).json()["properties"]["properties"]["properties"]
            frame = store.read_layer(layer)
            for col, spec in props.items():
                if spec["type"] == "integer" and len(frame) and frame[col].dropna().abs().max() > 2**31 - 1:
                    assert spec.get("format") == "int64", (layer, col, spec)
                    checked.add((layer, col))
        assert {("roads", "u"), ("roads", "v"), ("roads", "osm_id"), ("buildings", "osm_id")} <= checked
    finally:
        store.dispose()
