"""Plain OGC item pages are answered by api.ogc.ItemsFastPath on PostGIS (in front of FastAPI);
the answer is the route's byte for byte but the timeStamp, for every role, layer and page; anything
else goes to the route, whose checks and messages are unchanged."""
from __future__ import annotations

import json
import re

import pytest
from gridpatrol.api import ogc

from tests.api.api_seed import CLEARED_DISPATCHER, ROLE_USERS

BOX = "104.03,30.64,104.13,30.74"
STAMP = re.compile(rb'"timeStamp": "[^"]*"')


@pytest.fixture
def items_fast_answers(monkeypatch) -> list[bool]:  # noqa: ANN001
    """Whether ItemsFastPath answered (True) or passed on (False) each request it saw."""
    answered: list[bool] = []
    original = ogc.ItemsFastPath._answer

    async def counting(self, scope, layer):  # noqa: ANN001, ANN202
        response = await original(self, scope, layer)
        answered.append(response is not None)
        return response

    monkeypatch.setattr(ogc.ItemsFastPath, "_answer", counting)
    return answered


def _route_only(monkeypatch) -> None:  # noqa: ANN001
    async def never(self, scope, layer):  # noqa: ANN001, ANN202
        return None

    monkeypatch.setattr(ogc.ItemsFastPath, "_answer", never)


def test_fast_items_args_takes_only_what_the_route_reads_alike():
    assert ogc.fast_items_args(b"bbox=1,2,3,4&limit=10&offset=0&cursor=5.7.ab") == {
        "bbox": "1,2,3,4", "limit": 10, "offset": 0, "cursor": "5.7.ab"}
    assert ogc.fast_items_args(b"") == {}
    for q in (b"limit=0", b"limit=05", b"limit=+5", b"limit=%205", b"limit=5.0", b"limit=1e3", b"limit=",
              b"limit=\xd9\xa5", b"offset=-1", b"offset=01", b"offset=9007199254740993", b"limit=1&limit=2",
              b"bbox=1,2,3,4&bbox=1,2,3,4", b"f=json", b"crs=CRS84", b"datetime=2020-01-01", b"code=C1",
              b"bbox=" + b"1" * 401, b"cursor=" + b"1" * 81, b"limit=1234567890"):
        assert ogc.fast_items_args(q) is None, q


def _pages(client, headers, layer: str) -> list[tuple[str, bytes, dict]]:  # noqa: ANN001
    """Bodies (timeStamp blanked) and headers of a few pages of ``layer``: plain, offset, bbox, and
    two next links (cursor) after the first page."""
    out = []
    for query in ("", "?limit=3", "?limit=2&offset=3", f"?bbox={BOX}&limit=4", f"?bbox={BOX}&offset=1"):
        url = f"/ogc/collections/{layer}/items{query}"
        for _ in range(3):
            r = client.get(url, headers=headers)
            out.append((url, STAMP.sub(b'"timeStamp": ""', r.content), r.status_code,
                        {k: v for k, v in r.headers.items() if k.lower() not in ("date",)}))
            nxt = [link["href"] for link in r.json().get("links", []) if link["rel"] == "next"] if r.status_code == 200 \
                else []
            if not nxt:
                break
            url = nxt[0].removeprefix("http://testserver")
    return out


def test_fast_path_answers_as_the_route_for_every_role_and_layer(client, tokens, loaded_store_url, monkeypatch,
                                                                 items_fast_answers):  # noqa: ANN001
    users = [*ROLE_USERS.values(), CLEARED_DISPATCHER, "anonymous"]
    layers = list(ogc.TITLES)
    fast = {(u, layer): _pages(client, tokens[u], layer) for u in users for layer in layers}
    answered = list(items_fast_answers)
    _route_only(monkeypatch)
    served = 0
    for (user, layer), pages in fast.items():
        route = _pages(client, tokens[user], layer)
        assert [p[0] for p in route] == [p[0] for p in pages], (user, layer)
        for (url, body, status, headers), (_u, want, want_status, want_headers) in zip(pages, route):
            assert (status, body) == (want_status, want), (user, url)
            assert headers == want_headers, (user, url)
            served += status == 200 and json.loads(body)["numberReturned"] > 0
    assert served > 100  # the pages had features for most users and layers
    if "postgresql" in loaded_store_url:
        assert sum(answered) > len(answered) // 2  # after each user's first request, from the caches
    else:
        assert not any(answered)  # GeoPackage: always the route


def test_odd_requests_reach_the_route_and_its_messages(client, tokens, items_fast_answers):  # noqa: ANN001
    h = tokens["dan"]
    client.get("/ogc/collections/cameras/items?limit=1", headers=h)  # the user now in this process's cache
    bad = client.get("/ogc/collections/cameras/items?bbox=1,2,3", headers=h)
    assert bad.status_code == 422 and "bbox must be 4 numbers" in bad.text
    assert client.get("/ogc/collections/nosuch/items", headers=h).status_code == 404
    assert client.get("/ogc/collections/imports/items", headers=tokens["vic"]).status_code == 403
    assert client.get("/ogc/collections/cameras/items?limit=0", headers=h).status_code == 422
    forged = client.get("/ogc/collections/cameras/items?cursor=5..0123456789abcdef", headers=h)
    assert forged.status_code == 422 and "cursor" in forged.text
    assert client.get("/ogc/collections/cameras/items", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert not any(items_fast_answers[1:])  # none of these was answered by the fast path
