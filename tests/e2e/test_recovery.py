"""The real server recovers: PostgreSQL dropping its connections gives 200 or 503 + Retry-After,
never 500; a refused request leaves the client's keep-alive connection usable (both stores)."""
from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.api.api_seed import PASSWORD, seed
from tests.api.live_server import running_server, store_url_for


@pytest.fixture(scope="module", params=["gpkg", "postgis"])
def server(request, tmp_path_factory):  # noqa: ANN001, ANN201
    """A seeded store served by uvicorn; its PostgreSQL connections carry a unique application_name."""
    from gridpatrol.layers.store import open_store

    tmp = tmp_path_factory.mktemp("recovery")
    app_name = "gp-recovery-" + uuid.uuid4().hex[:8]
    with store_url_for(request, tmp, "r") as db:
        store = open_store(db)
        seed(store)
        store.dispose()
        with running_server(db, env={"PGAPPNAME": app_name}) as base:
            r = httpx.post(base + "/auth/token", data={"username": "dan", "password": PASSWORD}, timeout=30)
            assert r.status_code == 200, r.text
            yield {"base": base, "kind": request.param, "app_name": app_name,
                   "auth": {"Authorization": "Bearer " + r.json()["access_token"]}}


def _terminate(pg_database: str, app_name: str) -> int:
    """pg_terminate_backend on the server's connections only (other tests share the database)."""
    eng = create_engine(pg_database, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        n = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                           "WHERE application_name = :a AND pid <> pg_backend_pid()"), {"a": app_name}).scalar_one()
    eng.dispose()
    return int(n)


def test_connection_loss_is_retried_or_503_never_500(server, request):  # noqa: ANN001
    if server["kind"] != "postgis":
        pytest.skip("connection loss is a PostgreSQL matter")
    pg = request.getfixturevalue("pg_database")
    base, auth = server["base"], server["auth"]
    paths = ["/lookup?lon=104.06&lat=30.66", "/lookup?lon=104.061&lat=30.661&radius_m=300",
             "/cameras?bbox=104.0,30.6,104.1,30.7", "/grids", "/ogc/collections/roads/items?limit=2"]
    with httpx.Client(base_url=base, headers=auth, timeout=60) as client:
        for p in paths:  # warm: every pool holds connections, the fast path knows the token
            assert client.get(p).status_code == 200, (p, client.get(p).text[:300])
        # Concurrent clicks make the async pool hold several connections, all of which die below.
        with ThreadPoolExecutor(16) as ex:
            assert set(ex.map(lambda i: client.get(f"/lookup?lon=104.06&lat={30.66 + i / 1e4}").status_code,
                              range(64))) == {200}
        for round_ in range(3):
            assert _terminate(pg, server["app_name"]) > 0
            statuses = []
            for p in paths * 2:
                r = client.get(p)
                statuses.append(r.status_code)
                assert r.status_code in (200, 503), (round_, p, r.status_code, r.text[:300])
                if r.status_code == 503:
                    assert r.headers.get("retry-after"), r.headers
                    assert "unavailable" in r.json()["detail"]
            # Retried once on a fresh connection: the lookups answer at once, not after a 503.
            assert statuses[0] == 200 and statuses[1] == 200, statuses


BAD_THEN_GOOD = [
    ("POST", "/cameras/import", {"content": b"[" * 1000 + b"]" * 1000, "headers": {"Content-Type": "application/json"}}),
    ("POST", "/incidents/import", {"content": json.dumps([{"occurred_at": 1e20, "category": "x", "lon": 104.06,
                                                           "lat": 30.66}]).encode(),
                                   "headers": {"Content-Type": "application/json"}}),
    ("POST", "/areas", {"content": json.dumps({"type": "Feature", "properties": {"code": "1"}, "geometry":
                                               {"type": "Polygon", "coordinates": [[[179.9, 30], [-179.9, 30],
                                                                                    [-179.9, 31], [179.9, 30]]]}}).encode(),
                        "headers": {"Content-Type": "application/json"}}),
    ("GET", "/lookup?lon=%EF%BC%91%EF%BC%90%EF%BC%94&lat=30.66", {}),
]


@pytest.mark.parametrize("method,path,kw", BAD_THEN_GOOD, ids=["deep-json", "epoch-1e20", "antimeridian", "fullwidth"])
def test_bad_request_then_good_on_one_keepalive_connection(server, method, path, kw):  # noqa: ANN001
    admin = httpx.post(server["base"] + "/auth/token", data={"username": "ada", "password": PASSWORD}, timeout=30)
    auth = {"Authorization": "Bearer " + admin.json()["access_token"]}
    with httpx.Client(base_url=server["base"], timeout=60, headers=auth) as client:
        bad = client.request(method, path, **kw)
        assert 400 <= bad.status_code < 500, (bad.status_code, bad.text[:300])
        assert len(bad.json()["detail"]) > 10
        good = client.get("/lookup?lon=104.06&lat=30.66")
        assert good.status_code == 200, good.text[:300]
