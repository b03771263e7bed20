"""Two `gridpatrol serve` processes on different ports over one store (a province's instances behind a
load balancer): a token issued by one works on the other; a logout on one and a deactivation on the other
are refused by both (the other within the user cache's few seconds); a job queued through one is seen and
cancelled through the other. Both stores (PostGIS is the province case)."""
from __future__ import annotations

import httpx
import pytest
from gridpatrol.api.deps import USER_TTL_S

from tests.api.live_server import PASSWORD, cli, drop_schema, login, pg_schema_url, running_server
from tests.conftest import poll_until


@pytest.fixture(params=["gpkg", "postgis"])
def db(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "gpkg":
        url, schema = f"gpkg:///{tmp_path / 'store.gpkg'}", None
    else:
        url, schema = pg_schema_url(request.getfixturevalue("pg_database"))
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    for name, role in (("ada", "admin"), ("dan", "dispatcher"), ("pia", "planner"), ("lou", "dispatcher")):
        cli(url, "create-user", name, "--role", role, "--password-file", str(pw))
    yield url
    if schema:
        drop_schema(request.getfixturevalue("pg_database"), schema)


def _me(base: str, h: dict[str, str]) -> int:
    return httpx.get(base + "/auth/me", headers=h, timeout=30).status_code


def test_two_instances_agree_on_tokens_and_jobs(db) -> None:  # noqa: ANN001
    with running_server(db) as a, running_server(db) as b:
        assert a != b
        dan, lou, ada, pia = login(a, "dan"), login(b, "lou"), login(b, "ada"), login(a, "pia")
        assert [_me(a, dan), _me(b, dan), _me(a, lou), _me(b, lou)] == [200] * 4  # each instance's tokens, both

        assert httpx.post(a + "/auth/logout", headers=dan, timeout=30).status_code == 200
        assert _me(a, dan) == 401  # at once where it happened
        assert poll_until(lambda: _me(b, dan) == 401, USER_TTL_S + 5, 0.2), "instance b still takes dan's token"

        r = httpx.patch(b + "/auth/users/lou", headers=ada, json={"active": False}, timeout=30)
        assert r.status_code == 200, r.text
        assert _me(b, lou) == 401
        assert poll_until(lambda: _me(a, lou) == 401, USER_TTL_S + 5, 0.2), "instance a still takes lou's token"
        assert [_me(a, ada), _me(b, ada), _me(a, pia)] == [200] * 3  # the others unaffected

        r = httpx.post(a + "/jobs", headers=pia, json={"kind": "draw-grids", "params": {"seed": 1}}, timeout=60)
        assert r.status_code == 202, r.text
        jid = r.json()["id"]
        seen = httpx.get(f"{b}/jobs/{jid}", headers=pia, timeout=30)
        assert seen.status_code == 200 and seen.json()["kind"] == "draw-grids"
        assert jid in {j["id"] for j in httpx.get(b + "/jobs", headers=ada, timeout=30).json()}
        gone = httpx.delete(f"{b}/jobs/{jid}", headers=pia, timeout=30).json()
        assert gone["cancel_requested"]
        # PostGIS: no worker runs, the queued job is cancelled at once. GeoPackage: a server's own
        # worker thread may have taken it (running: it stops at its next step), or already failed
        # it (no data is loaded: refused); either way it ends, seen alike through both instances.
        assert poll_until(lambda: httpx.get(f"{a}/jobs/{jid}", headers=pia, timeout=30).json()["state"]
                          in ("cancelled", "failed"), 120, 0.2), gone
        end_a, end_b = (httpx.get(f"{x}/jobs/{jid}", headers=pia, timeout=30).json() for x in (a, b))
        assert end_a == end_b and end_a["attempts"] <= 1
        if not db.startswith("gpkg"):
            assert end_a["state"] == "cancelled" and end_a["attempts"] == 0
