"""Token revocation: a password change or reset, deactivation and reactivation, logout everywhere
(API) and ``gridpatrol user --revoke-tokens`` / ``set-password`` (CLI, another process) make the
tokens a user was issued before fail with 401; a token issued right after works, other users are
unaffected; a store from before (schema version 2) is upgraded in place. On both stores."""
from __future__ import annotations

import time

import jwt
import pytest
from sqlalchemy import inspect, text

from tests.api.api_seed import PASSWORD
from tests.api.test_users_admin import _cli, _login, _new_user
from tests.conftest import poll_until
from tests.migration_helpers import column_names, reopen_as_upgraded


def _revoked(client, headers: dict[str, str]) -> None:  # noqa: ANN001
    """``headers``' token is refused everywhere with the revocation message."""
    for path in ("/auth/me", "/incidents?limit=1", "/ogc/collections/roads/items?limit=1"):
        r = client.get(path, headers=headers)
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert "access token revoked" in r.json()["detail"], r.text
    r = client.post("/auth/logout", headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def _works(client, headers: dict[str, str], name: str) -> None:  # noqa: ANN001
    r = client.get("/auth/me", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name


def _others_unaffected(client, tokens) -> None:  # noqa: ANN001
    for name in ("ada", "dan", "wu"):
        _works(client, tokens[name], name)


def _audit(client, tokens, target: str) -> list[dict]:  # noqa: ANN001
    log = client.get("/auth/audit?limit=1000", headers=tokens["ada"]).json()
    return [e for e in log if e["target"] == target]


def test_changing_own_password_revokes_every_earlier_token(client, tokens):  # noqa: ANN001
    phone = _new_user(client, tokens, "rita", "worker")
    desk = _login(client, "rita")
    _works(client, phone, "rita")  # both cached in this process before the change
    _works(client, desk, "rita")
    r = client.post("/auth/me/password", headers=desk,
                    json={"old_password": PASSWORD, "new_password": "rita-new-pass-1"})
    assert r.status_code == 200, r.text
    assert "revoked" in r.json()["status"]
    _revoked(client, phone)
    _revoked(client, desk)
    fresh = _login(client, "rita", "rita-new-pass-1")  # issued right after, usually in the same second
    _works(client, fresh, "rita")
    assert client.get("/incidents?limit=1", headers=fresh).status_code == 200
    _others_unaffected(client, tokens)
    entry = next(e for e in _audit(client, tokens, "user:rita") if e["action"] == "change-own-password")
    assert entry["actor"] == "rita" and entry["detail"] == {"tokens": "revoked"}


def test_admin_password_reset_revokes_tokens(client, tokens):  # noqa: ANN001
    old = _new_user(client, tokens, "reza", "planner")
    _works(client, old, "reza")
    r = client.patch("/auth/users/reza", headers=tokens["ada"], json={"password": "reza-reset-pass-2"})
    assert r.status_code == 200, r.text
    assert r.json()["tokens_revoked_at"] is not None
    _revoked(client, old)
    _works(client, _login(client, "reza", "reza-reset-pass-2"), "reza")
    _others_unaffected(client, tokens)
    entry = next(e for e in _audit(client, tokens, "user:reza") if e["action"] == "update-user")
    assert entry["detail"] == {"password": "reset", "tokens": "revoked"}


def test_reactivating_a_user_does_not_revive_old_tokens(client, tokens):  # noqa: ANN001
    old = _new_user(client, tokens, "rea", "dispatcher")
    _works(client, old, "rea")
    assert client.patch("/auth/users/rea", headers=tokens["ada"], json={"active": False}).status_code == 200
    r = client.get("/auth/me", headers=old)
    assert r.status_code == 401 and "deactivated" in r.json()["detail"]
    assert client.patch("/auth/users/rea", headers=tokens["ada"], json={"active": True}).status_code == 200
    _revoked(client, old)
    _works(client, _login(client, "rea"), "rea")
    _others_unaffected(client, tokens)


def test_logout_everywhere(client, tokens):  # noqa: ANN001
    phone = _new_user(client, tokens, "lou", "dispatcher")
    desk = _login(client, "lou")
    # The map pages' cookie login: the cookie holds a token of the same user.
    page = client.post("/login", data={"username": "lou", "password": PASSWORD}, follow_redirects=False)
    client.cookies.clear()  # the shared test client must stay anonymous without headers
    assert page.status_code == 303
    cookie_token = page.cookies["gp_token"]
    as_page = {"Cookie": f"gp_token={cookie_token}"}
    _works(client, as_page, "lou")
    _works(client, phone, "lou")
    r = client.post("/auth/logout", headers=desk)
    assert r.status_code == 200, r.text
    assert r.json() == {"name": "lou", "status": "logged out: all tokens revoked"}
    # The response clears the map pages' login cookie.
    cleared = [v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith("gp_token=")]
    assert cleared and "max-age=0" in cleared[0].lower()
    for h in (phone, desk):
        _revoked(client, h)
    r = client.get("/auth/me", headers=as_page)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    _works(client, _login(client, "lou"), "lou")
    _others_unaffected(client, tokens)
    anon = client.post("/auth/logout")
    assert anon.status_code == 401
    entry = next(e for e in _audit(client, tokens, "user:lou") if e["action"] == "revoke-tokens")
    assert entry["actor"] == "lou"
    log = client.get("/auth/audit?limit=1000", headers=tokens["ada"]).text
    for h in (phone, desk):
        assert h["Authorization"].split()[1] not in log
    assert cookie_token not in log and PASSWORD not in log


def test_admin_revokes_a_users_tokens(client, tokens):  # noqa: ANN001
    old = _new_user(client, tokens, "ravi", "worker")
    _works(client, old, "ravi")
    r = client.patch("/auth/users/ravi", headers=tokens["ada"], json={"revoke_tokens": True})
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["active"]) == ("worker", True)
    _revoked(client, old)
    _works(client, _login(client, "ravi"), "ravi")
    entry = next(e for e in _audit(client, tokens, "user:ravi") if e["action"] == "update-user")
    assert entry["actor"] == "ada" and entry["detail"] == {"tokens": "revoked"}
    r = client.patch("/auth/users/ravi", headers=tokens["ada"], json={"revoke_tokens": False})
    assert r.status_code == 422 and "nothing to change" in r.json()["detail"]
    r = client.patch("/auth/users/ravi", headers=tokens["dan"], json={"revoke_tokens": True})
    assert r.status_code == 403
    listed = {u["name"]: u for u in client.get("/auth/users", headers=tokens["ada"]).json()}
    assert listed["ravi"]["tokens_revoked_at"] is not None and listed["wu"]["tokens_revoked_at"] is None


def test_map_click_fast_path_refuses_a_revoked_token(client, tokens, loaded_store_url):  # noqa: ANN001
    """An old token whose user logged out everywhere and in again (so this process holds a fresh
    user entry at the new version) is refused on /lookup; on PostGIS that click would otherwise be
    answered by the fast path (api.routes.lookup), not the route."""
    cam = client.get("/cameras?limit=1", headers=tokens["ada"]).json()["features"][0]
    lon, lat = cam["geometry"]["coordinates"][:2]
    click = {"lon": lon, "lat": lat, "radius_m": 500, "days": 30}
    old = _new_user(client, tokens, "flo", "dispatcher")
    assert client.get("/lookup", params=click, headers=old).status_code == 200
    assert client.get("/lookup", params=click, headers=old).status_code == 200  # verified token, fresh user
    assert client.post("/auth/logout", headers=old).status_code == 200
    new = _login(client, "flo")
    assert client.get("/lookup", params=click, headers=new).status_code == 200
    r = client.get("/lookup", params=click, headers=old)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert client.get("/lookup", params=click, headers=tokens["dan"]).status_code == 200


def test_cli_revoke_tokens_and_set_password_reach_the_running_server(client, tokens, loaded_store_url, tmp_path):  # noqa: ANN001
    """The CLI is another process: the running app refuses the old tokens once its user cache
    entry expires (deps.USER_TTL_S seconds), not later; new logins work at once."""
    from gridpatrol.api import deps

    old = _new_user(client, tokens, "cato", "dispatcher")
    _works(client, old, "cato")  # cached in this process
    res = _cli(loaded_store_url, "user", "cato", "--revoke-tokens")
    assert res.returncode == 0, res.stderr
    assert poll_until(lambda: client.get("/auth/me", headers=old).status_code == 401, deps.USER_TTL_S + 0.5)
    _revoked(client, old)
    second = _login(client, "cato")
    _works(client, second, "cato")
    pw = tmp_path / "pw.txt"
    pw.write_text("cato-cli-pass-3\n", encoding="utf-8")
    res = _cli(loaded_store_url, "set-password", "cato", "--password-file", str(pw))
    assert res.returncode == 0, res.stderr
    assert poll_until(lambda: client.get("/auth/me", headers=second).status_code == 401, deps.USER_TTL_S + 0.5)
    _revoked(client, second)
    _works(client, _login(client, "cato", "cato-cli-pass-3"), "cato")
    res = _cli(loaded_store_url, "user", "nobody-here", "--revoke-tokens")
    assert res.returncode != 0 and "nobody-here" in (res.stdout + res.stderr)
    actions = [e["action"] for e in _audit(client, tokens, "user:cato") if e["actor"] == "cli-admin"]
    assert "set-password" in actions and "update-user" in actions
    _others_unaffected(client, tokens)


def test_a_store_from_before_revocation_is_upgraded_and_keeps_its_users(store_url):
    """A schema-version-2 store (users without token_version and tokens_revoked_at) gains the
    columns on open; its users keep their passwords, and tokens from before the upgrade (no
    version claim) work until the first revocation."""
    from fastapi.testclient import TestClient
    from gridpatrol.api.app import create_app
    from gridpatrol.api.config import load_settings
    from gridpatrol.layers import migrations, users
    from gridpatrol.layers.store import open_store

    s = open_store(store_url)
    users.create_user(s, "old-admin", "admin", "old-admin-pass-1")
    users.create_user(s, "old-worker", "worker", "old-worker-pass-1")
    gpkg = s.is_gpkg

    def as_version_2(c):  # noqa: ANN001, ANN202
        if gpkg:
            # SQLite's DROP COLUMN re-checks the GeoPackage metadata triggers and fails on them:
            # rebuild the table as version 2 made it instead.
            c.execute(text("CREATE TEMP TABLE users_v2 AS SELECT id, name, role, password_hash, max_secrecy_level,"
                           " active, created_at FROM users"))
            c.execute(text("DROP TABLE users"))
            c.execute(text("CREATE TABLE users (id INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,"
                           " password_hash TEXT NOT NULL, max_secrecy_level INTEGER NOT NULL, active BOOLEAN NOT NULL,"
                           " created_at DATETIME NOT NULL, CONSTRAINT uq_users_name UNIQUE (name))"))
            c.execute(text("INSERT INTO users SELECT * FROM users_v2"))
            c.execute(text("DROP TABLE users_v2"))
        else:
            for col in ("token_version", "tokens_revoked_at"):
                c.execute(text(f"ALTER TABLE users DROP COLUMN {col}"))
        assert "token_version" not in {col["name"] for col in inspect(c).get_columns("users")}

    s = reopen_as_upgraded(s, store_url, 2, as_version_2)
    try:
        assert {"token_version", "tokens_revoked_at"} <= column_names(s, "users")
        with s.begin() as c:  # the step is idempotent
            migrations._v3_token_revocation(c)
        assert migrations.upgrade(s.engine) == 0
        assert users.authenticate(s, "old-worker", "old-worker-pass-1") is not None
        assert users.authenticate(s, "old-worker", "wrong-password-1") is None
        listed = {u["name"]: u for u in users.list_users(s)}
        assert set(listed) == {"old-admin", "old-worker"} and listed["old-worker"]["tokens_revoked_at"] is None
    finally:
        s.dispose()
    settings = load_settings(log_level="WARNING")
    now = int(time.time())
    legacy = jwt.encode({"sub": "old-worker", "role": "worker", "iat": now, "exp": now + 600, "iss": "gridpatrol"},
                        settings.secret_key, algorithm="HS256")
    app = create_app(store_url, settings=settings)
    try:
        with TestClient(app, raise_server_exceptions=False) as c:
            h = {"Authorization": f"Bearer {legacy}"}
            assert c.get("/auth/me", headers=h).json()["name"] == "old-worker"
            admin = _login(c, "old-admin", "old-admin-pass-1")
            assert c.patch("/auth/users/old-worker", headers=admin, json={"revoke_tokens": True}).status_code == 200
            r = c.get("/auth/me", headers=h)
            assert r.status_code == 401 and "revoked" in r.json()["detail"]
            _works(c, _login(c, "old-worker", "old-worker-pass-1"), "old-worker")
    finally:
        app.state.store.dispose()


@pytest.mark.parametrize("claim", ["x", -1, 1.5, True])
def test_tokens_with_a_bad_version_claim_are_invalid(client, app, claim):  # noqa: ANN001
    settings = app.state.settings
    now = int(time.time())
    forged = jwt.encode({"sub": "ada", "role": "admin", "iat": now, "exp": now + 600, "iss": "gridpatrol", "ver": claim},
                        settings.secret_key, algorithm="HS256")
    r = client.get("/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "invalid access token" in r.json()["detail"]
