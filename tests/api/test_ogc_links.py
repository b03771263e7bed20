"""The OGC API answers every link it advertises, for every role, and declares only the
conformance classes it implements."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

ROLES = ["anonymous", "vic", "wu", "dan", "pia", "ada"]


def _walk(client, headers: dict[str, str]) -> dict[str, int]:  # noqa: ANN001
    """Status of every link reachable from /ogc (item pages: the first page and its links; items:
    the first item of each collection), following only the service's own links."""
    seen: dict[str, int] = {}
    todo = ["/ogc"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        r = client.get(path, headers=headers)
        seen[path] = r.status_code
        if r.status_code != 200 or "json" not in r.headers.get("content-type", "") or path.startswith("/openapi"):
            continue
        body = r.json()
        links = list(body.get("links", []))
        for coll in body.get("collections", []):
            links += coll.get("links", [])
        feats = body.get("features", [])
        if feats and "/items?" in path and "offset=0" not in path and feats[0].get("id") is not None:
            base = urlsplit(path).path
            links.append({"href": f"{base}/{feats[0]['id']}"})
        for link in links:
            parts = urlsplit(link["href"])
            target = parts.path + (f"?{parts.query}" if parts.query else "")
            # One page of items per collection is enough: the next links of a page say the same.
            if "offset=" in target and "/items" in target and any("offset=" in s for s in seen if s.split("?")[0] == parts.path):
                continue
            todo.append(target)
    return seen


@pytest.mark.parametrize("user", ROLES)
def test_every_advertised_link_answers(client, tokens, user):  # noqa: ANN001
    seen = _walk(client, tokens[user])
    bad = {p: s for p, s in seen.items() if s >= 500 or s == 404}
    assert not bad, (user, bad)
    assert any(p.endswith("/schema.xsd") for p in seen) and any("/items/" in p for p in seen), sorted(seen)
    assert all(s == 200 for s in seen.values()), (user, {p: s for p, s in seen.items() if s != 200})


def test_conformance_is_truthful(client):  # noqa: ANN001
    conf = set(client.get("/ogc/conformance").json()["conformsTo"])
    core = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/"
    assert {core + "core", core + "geojson"} <= conf
    if core + "oas30" in conf:  # OpenAPI 3.0 declared: the service description must be 3.0
        assert client.get("/openapi.json").json()["openapi"].startswith("3.0.")
    if core + "html" in conf:
        assert client.get("/ogc", headers={"Accept": "text/html"}).headers["content-type"].startswith("text/html")
    if "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs" in conf:
        r = client.get("/ogc/collections/roads/items?limit=1&crs=http://www.opengis.net/def/crs/OGC/1.3/CRS84")
        assert r.headers["Content-Crs"] == "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>"
        assert "storageCrs" in client.get("/ogc/collections/roads").json()
