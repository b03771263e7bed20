"""OGC API – Features: a client paging like QGIS gets exactly the store's features, on both stores."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import shapely
from gridpatrol.layers.store import open_store


def read_layer(url: str, layer: str):  # noqa: ANN201
    """The whole layer straight from the store (the reference the API is compared with)."""
    store = open_store(url)
    try:
        return store.read_layer(layer)
    finally:
        store.dispose()


def page_all(client, url: str, headers: dict | None = None, max_pages: int = 1000) -> tuple[list[dict], list[dict]]:  # noqa: ANN001
    """Follow ``next`` links from ``url`` until there is none, as QGIS does; (features, pages)."""
    features, pages = [], []
    while url:
        assert len(pages) < max_pages, "next links never end"
        r = client.get(url, headers=headers or {})
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/geo+json")
        body = r.json()
        assert body["numberReturned"] == len(body["features"])
        pages.append(body)
        features.extend(body["features"])
        nxt = [link["href"] for link in body["links"] if link["rel"] == "next"]
        if nxt:
            parts = urlsplit(nxt[0])
            url = f"{parts.path}?{parts.query}"
        else:
            url = ""
    return features, pages


def test_landing_conformance_collections(client, loaded_store_url):  # noqa: ANN001
    land = client.get("/ogc").json()
    rels = {link["rel"] for link in land["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    conf = client.get("/ogc/conformance").json()["conformsTo"]
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in conf
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson" in conf
    cols = {c["id"]: c for c in client.get("/ogc/collections").json()["collections"]}
    assert {"roads", "buildings", "grids"} <= set(cols)
    # Anonymous users (viewers) never learn of cameras, incidents or routes.
    assert not {"cameras", "incidents", "routes"} & set(cols)
    store = open_store(loaded_store_url)
    try:
        want = store.read_layer("roads").total_bounds
    finally:
        store.dispose()
    got = cols["roads"]["extent"]["spatial"]["bbox"][0]
    # The GeoPackage R-tree keeps float32 bounds: equal to about 1e-5 degrees (~1 m).
    assert max(abs(a - b) for a, b in zip(got, want)) < 1e-4


@pytest.mark.parametrize("layer,limit", [("roads", 700), ("buildings", 97), ("barriers", 50)])
def test_qgis_style_paging_matches_store(client, loaded_store_url, layer, limit):  # noqa: ANN001
    feats, pages = page_all(client, f"/ogc/collections/{layer}/items?limit={limit}")
    store = open_store(loaded_store_url)
    try:
        expected = store.read_layer(layer)
        n = store.count(layer)
    finally:
        store.dispose()
    ids = [f["id"] for f in feats]
    assert len(ids) == n == len(expected) > 0
    assert len(set(ids)) == len(ids), "a feature came twice while paging"
    assert set(ids) == set(expected["id"].tolist())
    assert all(p["numberMatched"] == n for p in pages)
    assert len(pages) == -(-n // limit)
    # Geometry and properties round-trip: compare a sample exactly with the store.
    by_id = {f["id"]: f for f in feats}
    for rid in expected["id"].tolist()[:: max(1, n // 50)]:
        got = shapely.geometry.shape(by_id[rid]["geometry"])
        assert shapely.equals_exact(got, expected.loc[rid, "geometry"], tolerance=1e-9)


def test_bbox_equals_brute_force_intersection(client, loaded_store_url):  # noqa: ANN001
    store = open_store(loaded_store_url)
    try:
        roads = store.read_layer("roads")
        buildings = store.read_layer("buildings")
    finally:
        store.dispose()
    box = (104.07, 30.66, 104.085, 30.672)
    q = ",".join(map(str, box))
    for layer, gdf in (("roads", roads), ("buildings", buildings)):
        feats, _ = page_all(client, f"/ogc/collections/{layer}/items?bbox={q}&limit=37")
        want = set(gdf.index[shapely.intersects(gdf.geometry.values, shapely.box(*box))].tolist())
        assert want, f"the test box should hold some {layer}"
        assert {f["id"] for f in feats} == want


def test_limit_is_capped_not_an_error(client):  # noqa: ANN001
    r = client.get("/ogc/collections/roads/items?limit=1000000000")
    assert r.status_code == 200
    body = r.json()
    assert body["numberReturned"] == min(body["numberMatched"], 10_000)
    nxt = [link for link in body["links"] if link["rel"] == "next"]
    assert all("limit=10000" in link["href"] for link in nxt)


def test_datetime_and_property_filters(client, tokens, loaded_store_url):  # noqa: ANN001
    h = tokens["ada"]
    feats, _ = page_all(client, "/ogc/collections/incidents/items?datetime=2018-03-01T00:00:00Z/2018-03-31T23:59:59Z&limit=20", h)
    inc = read_layer(loaded_store_url, "incidents")
    import pandas as pd

    t = pd.to_datetime(inc["occurred_at"], utc=True)
    want = set(inc.index[(t >= "2018-03-01") & (t <= "2018-03-31T23:59:59")].tolist())
    assert want and {f["id"] for f in feats} == want
    feats, _ = page_all(client, "/ogc/collections/incidents/items?category=治安&limit=50", h)
    assert {f["id"] for f in feats} == set(inc.index[inc["category"] == "治安"].tolist())
    open_only, _ = page_all(client, "/ogc/collections/incidents/items?datetime=../2018-01-31T00:00:00Z&limit=500", h)
    assert {f["id"] for f in open_only} == set(inc.index[t <= "2018-01-31"].tolist())


def test_cameras_by_role_match_secrecy(client, tokens, loaded_store_url):  # noqa: ANN001
    cams = read_layer(loaded_store_url, "cameras")
    admin, _ = page_all(client, "/ogc/collections/cameras/items?limit=250", tokens["ada"])
    assert {f["id"] for f in admin} == set(cams.index.tolist())
    dan, _ = page_all(client, "/ogc/collections/cameras/items?limit=250", tokens["dan"])
    assert {f["id"] for f in dan} == set(cams.index[cams["secrecy_level"] <= 0].tolist())
    dora, _ = page_all(client, "/ogc/collections/cameras/items?limit=250", tokens["dora"])
    assert {f["id"] for f in dora} == set(cams.index[cams["secrecy_level"] <= 2].tolist())
    for user in ("pia", "wu", "vic", "anonymous"):
        r = client.get("/ogc/collections/cameras/items", headers=tokens[user])
        assert r.status_code == 403, (user, r.text)
        assert "cameras" in r.json()["detail"]
        ids = {c["id"] for c in client.get("/ogc/collections", headers=tokens[user]).json()["collections"]}
        assert "cameras" not in ids
        # A single camera by id does not leak either.
        assert client.get(f"/ogc/collections/cameras/items/{int(cams.index[0])}", headers=tokens[user]).status_code == 403
    hidden = int(cams.index[cams["secrecy_level"] == 3][0])
    assert client.get(f"/ogc/collections/cameras/items/{hidden}", headers=tokens["dan"]).status_code == 404
    assert client.get(f"/ogc/collections/cameras/items/{hidden}", headers=tokens["ada"]).status_code == 200


def test_worker_sees_only_own_incidents(client, tokens, loaded_store_url):  # noqa: ANN001
    inc = read_layer(loaded_store_url, "incidents")
    feats, _ = page_all(client, "/ogc/collections/incidents/items?limit=300", tokens["wu"])
    want = set(inc.index[inc["grid_code"].isin(["51010400101", "51010400102"])].tolist())  # wu's current grids
    assert {f["id"] for f in feats} == want
    assert 0 < len(want) < len(inc)


@pytest.mark.parametrize("layer,query", [("incidents", "limit=60&offset=30"), ("cameras", "bbox=104.07,30.66,104.09,30.68&limit=25"),
                                         ("roads", "limit=40&offset=4000"), ("grids", "limit=3")])
def test_items_pages_equal_the_python_features(client, tokens, loaded_store_url, layer, query):  # noqa: ANN001
    """The items page (on PostGIS built as GeoJSON in the database) has the same features —
    geometry, every property, order — as api.ogc.query_items builds in Python from the store."""
    import datetime as dt

    from gridpatrol.api.ogc import parse_bbox, query_items
    from gridpatrol.layers import users

    params = dict(p.split("=") for p in query.split("&"))
    store = open_store(loaded_store_url)
    try:
        want, matched = query_items(store, users.get_user(store, "ada"), layer, limit=int(params["limit"]),
                                    offset=int(params.get("offset", 0)),
                                    bbox=parse_bbox(params["bbox"]) if "bbox" in params else None)
    finally:
        store.dispose()
    body = client.get(f"/ogc/collections/{layer}/items?{query}", headers=tokens["ada"]).json()
    assert want and body["numberMatched"] == matched and body["numberReturned"] == len(want)

    def norm(props: dict) -> dict:  # the same instant may be written with or without trailing zeros
        return {k: dt.datetime.fromisoformat(v) if isinstance(v, str) and k.endswith(("_at", "_since")) else v
                for k, v in props.items()}

    for got, exp in zip(body["features"], want, strict=True):
        assert got["id"] == exp["id"] and norm(got["properties"]) == norm(exp["properties"])
        assert shapely.equals_exact(shapely.geometry.shape(got["geometry"]), shapely.geometry.shape(exp["geometry"]),
                                    tolerance=0)


_JSON_TYPES = {"integer": (int,), "number": (int, float), "string": (str,), "boolean": (bool,), "object": (dict,),
               "array": (list,)}


@pytest.mark.parametrize("layer", ["buildings", "roads", "incidents", "cameras"])
def test_feature_schema_types_every_property_of_every_item(client, tokens, layer):  # noqa: ANN001
    """The collection links a JSON Schema (``describedby``, Part 5 ``schema``) whose property types
    hold for every value the items carry, so clients need not guess types from a first page."""
    coll = client.get(f"/ogc/collections/{layer}", headers=tokens["ada"]).json()
    links = {(link["rel"], link["type"]): link["href"] for link in coll["links"]}
    href = links[("describedby", "application/schema+json")]
    assert links[("http://www.opengis.net/def/rel/ogc/1.0/schema", "application/schema+json")] == href
    r = client.get(urlsplit(href).path, headers=tokens["ada"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/schema+json")
    props = r.json()["properties"]["properties"]["properties"]
    features, _ = page_all(client, f"/ogc/collections/{layer}/items?limit=500", tokens["ada"])
    assert features, layer
    seen_float = False
    for f in features:
        assert set(f["properties"]) == set(props), (layer, set(f["properties"]) ^ set(props))
        for name, value in f["properties"].items():
            spec = props[name]
            if value is None:
                assert spec.get("nullable"), (layer, name)
                continue
            assert isinstance(value, _JSON_TYPES[spec["type"]]) and not (
                spec["type"] in ("integer", "number") and isinstance(value, bool)), (layer, name, value, spec)
            if spec["type"] == "integer":
                assert float(value).is_integer(), (layer, name, value)
            if spec.get("format") == "date-time":
                from datetime import datetime

                datetime.fromisoformat(value)
            seen_float |= spec["type"] == "number" and not float(value).is_integer()
    if layer == "buildings":
        # The reason for the schema: estimated households such as 67.5 are numbers, not integers.
        assert props["households"]["type"] == "number" and seen_float


def test_feature_schema_follows_the_roles(client, tokens):  # noqa: ANN001
    for user in ("vic", "pia", "wu"):
        r = client.get("/ogc/collections/cameras/schema", headers=tokens[user])
        assert r.status_code == 403 and "cameras" in r.json()["detail"], (user, r.text)
    assert client.get("/ogc/collections/nothing/schema", headers=tokens["ada"]).status_code == 404
