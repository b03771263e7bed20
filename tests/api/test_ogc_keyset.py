"""OGC items paged by cursor (keyset): the same features as offsets, counts carried, cursors checked."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from gridpatrol.layers import features
from gridpatrol.layers.store import open_store

from tests.api.test_ogc import page_all


def _store_ids(url: str, layer: str, keep=lambda row: True) -> list[int]:  # noqa: ANN001
    """Ids of ``layer`` straight from the store that ``keep`` accepts, in id order (the reference)."""
    store = open_store(url)
    try:
        gdf = store.read_layer(layer)
    finally:
        store.dispose()
    return sorted(int(r.id) for r in gdf.itertuples() if keep(r))


def _offset_walk(client, path: str, limit: int, headers: dict) -> list[int]:  # noqa: ANN001
    """Ids of every page asked by offset alone (the old way a client pages)."""
    ids, off = [], 0
    while True:
        body = client.get(f"{path}&limit={limit}&offset={off}", headers=headers).json()
        ids += [f["id"] for f in body["features"]]
        if body["numberReturned"] < limit:
            return ids
        off += limit


@pytest.mark.parametrize("user,query", [("dan", "bbox=104.03,30.64,104.13,30.74"), ("dora", "project=skynet"),
                                        ("ada", "bbox=104.03,30.64,104.13,30.74")])
def test_cursor_walk_equals_offset_walk_and_the_store(client, tokens, loaded_store_url, user, query):  # noqa: ANN001
    """Next links carry a cursor; following them gives exactly the rows an offset walk gives and
    what the store holds for the user (secrecy filter, bbox or property), each once and in id
    order; every page repeats the first page's numberMatched."""
    h = tokens[user]
    path = f"/ogc/collections/cameras/items?{query}"
    feats, pages = page_all(client, f"{path}&limit=17", h)
    assert len(pages) > 3
    assert all("cursor=" in link["href"] for p in pages for link in p["links"] if link["rel"] == "next")
    ids = [f["id"] for f in feats]
    assert ids == sorted(set(ids)), "a cursor page repeated or reordered features"
    assert ids == _offset_walk(client, path, 17, h)
    level = {"dan": 0, "dora": 2, "ada": 9}[user]  # dispatchers' clearance (api_seed), admins see all
    if query.startswith("bbox"):
        x0, y0, x1, y1 = (float(v) for v in query.split("=")[1].split(","))
        keep = lambda r: r.secrecy_level <= level and x0 <= r.geometry.x <= x1 and y0 <= r.geometry.y <= y1  # noqa: E731
    else:
        keep = lambda r: r.secrecy_level <= level and r.project == "skynet"  # noqa: E731
    want = _store_ids(loaded_store_url, "cameras", keep)
    assert ids == want
    assert {p["numberMatched"] for p in pages} == {len(want)}


def test_cursor_is_bound_to_its_request(client, tokens):  # noqa: ANN001
    """A changed, foreign or made-up cursor is refused (422, InputError) rather than answered."""
    h = tokens["dan"]
    body = client.get("/ogc/collections/cameras/items?project=skynet&limit=20", headers=h).json()
    nxt = urlsplit(next(link["href"] for link in body["links"] if link["rel"] == "next"))
    q = {k: v[0] for k, v in parse_qs(nxt.query).items()}
    assert client.get(f"{nxt.path}?{urlencode(q)}", headers=h).status_code == 200
    last, matched, mac = q["cursor"].split(".")
    bad = [f"{int(last) - 5}.{matched}.{mac}", f"{last}.{int(matched) + 1}.{mac}", f"{last}..{mac}", "12", "x.y.z"]
    for cur in bad:
        r = client.get(f"{nxt.path}?{urlencode({**q, 'cursor': cur})}", headers=h)
        assert r.status_code == 422 and "cursor" in r.text, (cur, r.text)
    # The same cursor with another filter (it would skip rows of that other walk).
    other = {**q, "project": "sharp_eyes"}
    assert client.get(f"{nxt.path}?{urlencode(other)}", headers=h).status_code == 422
    # … or on another layer.
    assert client.get(f"/ogc/collections/incidents/items?{urlencode({'cursor': q['cursor']})}",
                      headers=h).status_code == 422


def test_large_counts_are_left_out_not_walked(client, tokens, loaded_store_url, monkeypatch):  # noqa: ANN001
    """Beyond EXACT_COUNT_MAX rows numberMatched is left out (OGC makes it optional); at or under
    it, it is exact; next links walk every row either way."""
    n = len(_store_ids(loaded_store_url, "roads"))
    monkeypatch.setattr(features, "EXACT_COUNT_MAX", n - 1)
    feats, pages = page_all(client, "/ogc/collections/roads/items?limit=900")
    assert len(feats) == n and all("numberMatched" not in p for p in pages)
    monkeypatch.setattr(features, "EXACT_COUNT_MAX", n)
    feats, pages = page_all(client, "/ogc/collections/roads/items?limit=900")
    assert len(feats) == n and {p["numberMatched"] for p in pages} == {n}
    # The last page has no next link, also when it is exactly full.
    body = client.get(f"/ogc/collections/roads/items?limit=100&offset={n - 100}").json()
    assert body["numberReturned"] == 100 and not [x for x in body["links"] if x["rel"] == "next"]
