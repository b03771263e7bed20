"""Roles: each role can do exactly what it should (403 otherwise); cameras never leak; writes are audited."""
from __future__ import annotations

import json
import math
import time
from datetime import datetime, timedelta

import jwt
import pytest

from tests.api.api_seed import CLEARED_DISPATCHER, PASSWORD, ROLE_USERS

ROLES = list(ROLE_USERS)


def test_login_and_me(client, tokens):  # noqa: ANN001
    for role, name in ROLE_USERS.items():
        me = client.get("/auth/me", headers=tokens[name]).json()
        assert (me["name"], me["role"], me["anonymous"]) == (name, role, False)
    anon = client.get("/auth/me").json()
    assert anon["anonymous"] and anon["role"] == "viewer" and anon["permissions"] == []


@pytest.mark.parametrize("username,password", [("ada", "wrong-password-1"), ("nobody", PASSWORD), ("ada", "")])
def test_bad_logins_are_401_with_message(client, username, password):  # noqa: ANN001
    r = client.post("/auth/token", data={"username": username, "password": password})
    assert r.status_code in (401, 422)
    assert r.json()["detail"]
    assert "access_token" not in r.json()


def test_forged_expired_and_garbage_tokens_are_refused(client, app):  # noqa: ANN001
    now = int(time.time())
    claims = {"sub": "ada", "role": "admin", "iat": now, "exp": now + 600, "iss": "gridpatrol"}
    forged = jwt.encode(claims, "x" * 48, algorithm="HS256")
    expired = jwt.encode({**claims, "exp": now - 10}, app.state.settings.secret_key, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    ghost = jwt.encode({**claims, "sub": "ghost"}, app.state.settings.secret_key, algorithm="HS256")
    for tok, word in ((forged, "invalid"), (expired, "expired"), (unsigned, "invalid"), ("abc.def", "invalid"), (ghost, "ghost")):
        r = client.get("/auth/me", headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 401, r.text
        assert word in r.json()["detail"]
        if word == "invalid":  # the caller is told what to do
            assert r.json()["detail"] == "invalid access token (log in at POST /auth/token)"
        if word == "expired":
            assert r.json()["detail"] == "access token expired (log in again at POST /auth/token)"
        assert r.headers.get("www-authenticate") == "Bearer"
        # A bad token never falls back to anonymous access.
        assert client.get("/ogc/collections/roads/items?limit=1", headers={"Authorization": f"Bearer {tok}"}).status_code == 401


def test_passwords_are_stored_as_argon2(loaded_store_url):  # noqa: ANN001
    from gridpatrol.layers.models import User
    from gridpatrol.layers.store import open_store
    from sqlalchemy import select

    store = open_store(loaded_store_url)
    try:
        with store.engine.connect() as c:
            hashes = c.execute(select(User.password_hash)).scalars().all()
    finally:
        store.dispose()
    assert hashes and all(h.startswith("$argon2id$") and PASSWORD not in h for h in hashes)


# (method, path, json body or None, roles allowed). Anonymous users act as viewers where allowed.
MATRIX = [
    ("GET", "/auth/users", None, {"admin"}),
    ("GET", "/auth/audit", None, {"admin"}),
    ("POST", "/auth/users", {"name": "new-{role}", "role": "viewer", "password": "another-pass-1"}, {"admin"}),
    ("GET", "/ogc/collections/roads/items?limit=1", None, set(ROLES)),
    ("GET", "/ogc/collections/grids/items?limit=1", None, set(ROLES)),
    ("GET", "/ogc/collections/cameras/items?limit=1", None, {"admin", "dispatcher"}),
    ("GET", "/ogc/collections/incidents/items?limit=1", None, {"admin", "dispatcher", "worker"}),
    ("GET", "/ogc/collections/routes/items?limit=1", None, {"admin", "planner", "dispatcher", "worker"}),
    ("GET", "/ogc/collections/imports/items?limit=1", None, {"admin"}),
    ("GET", "/cameras?limit=1", None, {"admin", "dispatcher"}),
    ("GET", "/cameras/at?lon=104.08&lat=30.69&radius_m=300", None, {"admin", "dispatcher"}),
    ("GET", "/export/cameras", None, {"admin", "dispatcher"}),
    ("GET", "/export/incidents", None, {"admin", "dispatcher", "worker"}),
    ("GET", "/export/roads", None, set(ROLES)),
    ("GET", "/incidents?limit=1", None, {"admin", "dispatcher", "worker"}),
    ("GET", "/incidents/overdue", None, {"admin", "dispatcher", "worker"}),
    ("POST", "/incidents", {"lon": 104.07, "lat": 30.67, "category": "环境卫生", "description": "by {role}"},
     {"admin", "dispatcher", "worker"}),
    ("POST", "/areas?level=community", {"type": "Feature", "properties": {"code": "510104001{role}"}, "geometry": {
        "type": "Polygon", "coordinates": [[[104.05, 30.66], [104.06, 30.66], [104.06, 30.67], [104.05, 30.66]]]}},
     {"admin", "planner"}),
    ("GET", "/lookup?lon=104.08&lat=30.69", None, set(ROLES)),
    ("GET", "/grids", None, set(ROLES)),
    ("GET", "/grids/plans", None, set(ROLES)),
    ("POST", "/grids/lock", {"codes": ["51010400104"], "locked": True}, {"admin", "planner"}),
    ("GET", "/routes", None, {"admin", "planner", "dispatcher", "worker"}),
]


@pytest.mark.parametrize("method,path,body,allowed", MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_matrix(client, tokens, method, path, body, allowed):  # noqa: ANN001
    for role in [*ROLES, "anonymous"]:
        headers = tokens["anonymous" if role == "anonymous" else ROLE_USERS[role]]
        payload = json.loads(json.dumps(body).replace("{role}", role)) if body else None
        r = client.request(method, path, headers=headers, json=payload)
        effective = "viewer" if role == "anonymous" else role
        if effective in allowed:
            assert r.status_code < 400, (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert "may not" in r.json()["detail"]


def test_every_write_is_audited(client, tokens):  # noqa: ANN001
    r = client.post("/auth/users", headers=tokens["ada"],
                    json={"name": "audited-user", "role": "worker", "password": "audited-pass-1"})
    assert r.status_code == 201, r.text
    denied = client.post("/auth/users", headers=tokens["pia"],
                         json={"name": "sneaky", "role": "admin", "password": "sneaky-pass-12"})
    assert denied.status_code == 403
    log = client.get("/auth/audit?limit=100", headers=tokens["ada"]).json()
    actions = [(e["actor"], e["action"], e["detail"].get("status")) for e in log]
    assert ("ada", "create-user", None) in actions  # the layer's own entry, in the same transaction
    assert ("ada", "POST /auth/users", 201) in actions
    assert ("pia", "POST /auth/users", 403) in actions
    assert not client.get("/auth/users", headers=tokens["ada"]).json() or "sneaky" not in {
        u["name"] for u in client.get("/auth/users", headers=tokens["ada"]).json()}


def test_secrecy_levels_for_cameras(client, tokens):  # noqa: ANN001
    def levels(user: str) -> set[int]:
        body = client.get("/ogc/collections/cameras/items?limit=10000", headers=tokens[user]).json()
        return {f["properties"]["secrecy_level"] for f in body["features"]}

    assert levels("ada") == {0, 1, 2, 3}
    assert levels("dan") == {0}
    assert levels(CLEARED_DISPATCHER) == {0, 1, 2}


def test_weak_passwords_and_bad_roles_refused(client, tokens):  # noqa: ANN001
    r = client.post("/auth/users", headers=tokens["ada"], json={"name": "x", "role": "viewer", "password": "short"})
    assert r.status_code == 422 and "password" in r.json()["detail"]
    r = client.post("/auth/users", headers=tokens["ada"], json={"name": "y", "role": "king", "password": "long-enough-pw"})
    assert r.status_code == 422 and "role" in r.json()["detail"]
    r = client.post("/auth/users", headers=tokens["ada"], json={"name": "ada", "role": "viewer", "password": "long-enough-pw"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]


def _point_in_view(cam: dict) -> tuple[float, float]:
    """A point 30 m from the camera straight along its azimuth (inside its 90°, 80 m sector)."""
    lon, lat = cam["geometry"]["coordinates"]
    az = math.radians(cam["properties"]["azimuth_deg"])
    return (lon + 30 / 111_320 / math.cos(math.radians(lat)) * math.sin(az), lat + 30 / 110_574 * math.cos(az))


def test_cameras_never_leak(client, tokens):  # noqa: ANN001
    """For a camera of each secrecy level: lookup, /cameras, OGC and exports show it exactly to
    the users allowed (admin: all; dispatcher: level ≤ theirs; others: never)."""
    allcams = client.get("/cameras?limit=10000", headers=tokens["ada"]).json()["features"]
    by_level = {}
    for c in allcams:
        by_level.setdefault(c["properties"]["secrecy_level"], c)
    assert set(by_level) == {0, 1, 2, 3}
    clearance = {"ada": 99, "dan": 0, CLEARED_DISPATCHER: 2, "pia": -1, "wu": -1, "vic": -1, "anonymous": -1}
    exports = {u: client.get("/export/cameras", headers=tokens[u]) for u in clearance}
    for level, cam in by_level.items():
        code = cam["properties"]["code"]
        lon, lat = _point_in_view(cam)
        for user, clear in clearance.items():
            h = tokens[user]
            res = client.get(f"/lookup?lon={lon}&lat={lat}", headers=h)
            assert res.status_code == 200, res.text
            body = res.json()
            codes = {c["code"] for c in body.get("cameras", [])}
            text = res.text
            if clear >= level:
                assert code in codes, (user, level)
                hit = next(c for c in body["cameras"] if c["code"] == code)
                assert hit["in_view"] and 25 < hit["distance_m"] < 35
            else:
                assert code not in codes and code not in text, (user, level)
                if clear < 0:
                    assert "cameras" not in body
            at = client.get(f"/cameras/at?lon={lon}&lat={lat}&radius_m=100", headers=h)
            one = client.get(f"/cameras/{code}", headers=h)
            if clear >= level:
                assert code in {c["code"] for c in at.json()} and one.status_code == 200
            else:
                assert at.status_code == 403 or code not in at.text
                assert one.status_code in (403, 404) and "coordinates" not in one.text
            exp = exports[user]
            if clear >= level:
                assert exp.status_code == 200 and code in exp.text
            else:
                assert code not in exp.text


def test_incident_rights(client, tokens):  # noqa: ANN001
    made = client.post("/incidents", headers=tokens["dan"],
                       json={"lon": 104.07, "lat": 30.67, "category": "治安", "description": "rights"})
    assert made.status_code == 201
    iid = made.json()["id"]
    assert client.post(f"/incidents/{iid}/advance", headers=tokens["pia"], json={"to": "escalated"}).status_code == 403
    assert client.post(f"/incidents/{iid}/advance", headers=tokens["vic"], json={"to": "escalated"}).status_code == 403
    # zhang's incidents are not wu's: hidden from him (404), so he cannot move them either.
    zhang = client.get("/incidents?limit=1&grid_code=51010400104", headers=tokens["ada"]).json()["features"][0]["id"]
    assert client.get(f"/incidents/{zhang}", headers=tokens["wu"]).status_code == 404
    assert client.post(f"/incidents/{zhang}/advance", headers=tokens["wu"], json={"to": "handled"}).status_code == 404
    r = client.post(f"/incidents/{iid}/advance", headers=tokens["dan"], json={"to": "escalated"})
    assert r.status_code == 200 and r.json()["to_state"] == "escalated"
    bad = client.post(f"/incidents/{iid}/advance", headers=tokens["dan"], json={"to": "closed"})
    assert bad.status_code == 409 and "assigned" in bad.json()["detail"]
    ev = client.get(f"/incidents/{iid}/events", headers=tokens["dan"]).json()
    assert [e["to_state"] for e in ev] == ["reported", "escalated"] and ev[-1]["actor"] == "dan"


def test_only_planners_and_admins_plan_routes_or_edit_grids(client, tokens):  # noqa: ANN001
    for user in ("dan", "wu", "vic", "anonymous"):
        h = tokens[user]
        for path, body in (("/routes/plan", {"grids": ["51010400101"]}), ("/grids/draw", {}),
                           ("/grids/merge", {"codes": ["51010400101", "51010400102"]}),
                           ("/grids/51010400101/split", {"parts": 2}), ("/grids/rebalance", {"codes": ["51010400101"]}),
                           ("/grids/move-blocks", {"to": "51010400101", "items": [1]})):
            r = client.post(path, json=body, headers=h)
            assert r.status_code == 403, (user, path, r.text)


def test_viewers_get_no_worker_names(client, tokens):  # noqa: ANN001
    for user, sees in (("vic", False), ("anonymous", False), ("pia", True), ("dan", True)):
        feats = client.get("/grids", headers=tokens[user]).json()["features"]
        assert feats and all(("worker" in f["properties"]) == sees for f in feats)
        body = client.get("/lookup?lon=104.06&lat=30.66", headers=tokens[user]).json()
        assert body["grid"] is not None and ("worker" in body["grid"]) == sees
    # the same rule on rows given as dicts (visible_frame's other form): a viewer's rows lose the
    # worker and the station, and keep every other field
    from gridpatrol.api.auth import visible_frame
    from gridpatrol.layers.users import ANONYMOUS

    rows = [f["properties"] for f in client.get("/grids", headers=tokens["ada"]).json()["features"]]
    assert rows and all("worker" in r and "station_lon" in r for r in rows)
    hidden = {"worker", "station_lon", "station_lat"}
    assert visible_frame(ANONYMOUS, "grids", rows) == [{k: v for k, v in r.items() if k not in hidden} for r in rows]
    assert all(set(r) - hidden for r in visible_frame(ANONYMOUS, "grids", rows))


def test_refusals_say_who_may_not_and_which_roles_may(client, tokens):  # noqa: ANN001
    """A 403 tells the caller who they are to the server (an anonymous caller is told so, not
    "role viewer") and which roles may do it."""
    anon = client.get("/cameras?limit=1", headers=tokens["anonymous"])
    assert anon.status_code == 403
    assert anon.json()["detail"].startswith("anonymous users may not ")
    assert anon.json()["detail"].endswith("(roles allowed: admin, dispatcher)")
    vic = client.get("/cameras?limit=1", headers=tokens["vic"])
    assert vic.status_code == 403 and vic.json()["detail"].startswith("role 'viewer' may not ")
    assert vic.json()["detail"].endswith("(roles allowed: admin, dispatcher)")


def test_a_map_click_shows_incidents_and_cameras_only_to_roles_that_read_them(client, tokens):  # noqa: ANN001
    """/lookup at an incident's place: the incidents section is in the answer for the roles that
    read incidents (admin, dispatcher, worker) and left out for planners, viewers and anonymous
    callers; the cameras section only for admin and dispatcher."""
    inc = client.get("/incidents?limit=1", headers=tokens["ada"]).json()["features"][0]
    lon, lat = inc["geometry"]["coordinates"][:2]
    at = datetime.fromisoformat(inc["properties"]["occurred_at"]) + timedelta(days=1)
    params = {"lon": lon, "lat": lat, "at": at.isoformat(), "days": 30, "radius_m": 1000}
    for name, incidents, cameras in (("ada", True, True), ("dan", True, True), ("wu", True, False),
                                     ("pia", False, False), ("vic", False, False), ("anonymous", False, False)):
        body = client.get("/lookup", params=params, headers=tokens[name]).json()
        assert ("incidents" in body) == incidents and ("cameras" in body) == cameras, (name, sorted(body))
    assert client.get("/lookup", params=params, headers=tokens["ada"]).json()["incidents"]


def test_lookup_per_role_equals_the_numpy_path(client, tokens, loaded_store_url):  # noqa: ANN001
    """Every user's /lookup answer (on PostGIS: one statement on the asyncio pool) is exactly the
    numpy path of layers.incidents cut down to the role's view, at camera spots and between them."""
    from gridpatrol.api.auth import lookup_view
    from gridpatrol.layers import users
    from gridpatrol.layers.incidents import lookup_json
    from gridpatrol.layers.store import open_store

    store = open_store(loaded_store_url)
    try:
        cams = client.get("/cameras?limit=10000", headers=tokens["ada"]).json()["features"]
        spots = [_point_in_view(c) for c in cams[::60]] + [(104.06 + 0.003 * k, 30.66 + 0.002 * k) for k in range(5)]
        at = "2019-01-01T00:00:00+00:00"
        found = {"incidents": 0, "cameras": 0}
        for name in [*ROLE_USERS.values(), CLEARED_DISPATCHER, "anonymous"]:
            principal = users.ANONYMOUS if name == "anonymous" else users.get_user(store, name)
            view = lookup_view(principal)
            for lon, lat in spots:
                r = client.get("/lookup", params={"lon": lon, "lat": lat, "at": at, "days": 365, "radius_m": 1000},
                               headers=tokens[name])
                assert r.status_code == 200, r.text
                want = json.loads(lookup_json(store, lon, lat, datetime.fromisoformat(at), radius_m=1000, days=365,
                                              view=view, python=True))
                assert r.json() == want, (name, lon, lat)
                found["incidents"] += len(want.get("incidents", []))
                found["cameras"] += len(want.get("cameras", []))
    finally:
        store.dispose()
    assert found["incidents"] > 10 and found["cameras"] > 10  # the spots exercised both sections


def test_lookup_fast_path_answers_plain_clicks_like_the_route(client, tokens, loaded_store_url, fast_path_answers):  # noqa: ANN001
    """Plain clicks (lon, lat, radius_m, days) are answered by api.routes.lookup.LookupFastPath
    on PostGIS; the answer per user is the numpy path's, as for the route. Odd requests go to the
    route: its validation messages are unchanged."""
    from gridpatrol.api.auth import lookup_view
    from gridpatrol.api.routes import lookup as lookup_mod
    from gridpatrol.layers import users
    from gridpatrol.layers.incidents import lookup_json
    from gridpatrol.layers.store import open_store

    assert lookup_mod._fast_args(b"lon=104.1&lat=30.6&radius_m=500&days=30&crs=gcj02") == {
        "lon": 104.1, "lat": 30.6, "radius_m": 500.0, "days": 30.0, "crs": "gcj02"}
    for q in (b"lon=104.1", b"lon=104.1&lat=30.6&lat=30.7", b"lon=181&lat=30", b"lon=nan&lat=30", b"lon=1&lat=2&days=0",
              b"lon=1&lat=2&at=2018-01-01", b"lon=1&lat=2&crs=bd09", b"lon=1e400&lat=2", b"lon=%201&lat=2"):
        assert lookup_mod._fast_args(q) is None, q
    answered = fast_path_answers
    store = open_store(loaded_store_url)
    try:
        cams = client.get("/cameras?limit=10000", headers=tokens["ada"]).json()["features"]
        spots = [_point_in_view(c) for c in cams[::100]]
        for name in [*ROLE_USERS.values(), CLEARED_DISPATCHER, "anonymous"]:
            principal = users.ANONYMOUS if name == "anonymous" else users.get_user(store, name)
            for lon, lat in spots:
                r = client.get("/lookup", params={"lon": lon, "lat": lat, "radius_m": 1000, "days": 3650},
                               headers=tokens[name])
                assert r.status_code == 200, r.text
                got = r.json()
                want = json.loads(lookup_json(store, lon, lat, datetime.fromisoformat(got["at"]), radius_m=1000,
                                              days=3650, view=lookup_view(principal), python=True))
                assert got == want, (name, lon, lat)
    finally:
        store.dispose()
    if "postgresql" in loaded_store_url:
        assert sum(answered) > len(answered) // 2  # after each user's first request, from the caches
    else:
        assert not any(answered)  # GeoPackage: always the route
    bad = client.get("/lookup?lon=200&lat=30", headers=tokens["dan"])
    assert bad.status_code == 422 and "lon" in bad.text
