"""User administration over the API and the CLI: role and secrecy changes, deactivation (tokens stop
working), password reset and change, the last-admin rule, audit entries; on both stores."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from tests.api.api_seed import PASSWORD
from tests.api.login import bearer
from tests.conftest import poll_until

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).parent / "gridpatrol")]


def _login(client, name: str, password: str = PASSWORD) -> dict[str, str]:  # noqa: ANN001
    return bearer(client, name, password)


def _new_user(client, tokens, name: str, role: str, **extra) -> dict[str, str]:  # noqa: ANN001, ANN003
    r = client.post("/auth/users", headers=tokens["ada"], json={"name": name, "role": role, "password": PASSWORD, **extra})
    assert r.status_code == 201, r.text
    return _login(client, name)


def _users(client, tokens) -> dict[str, dict]:  # noqa: ANN001
    r = client.get("/auth/users", headers=tokens["ada"])
    assert r.status_code == 200
    return {u["name"]: u for u in r.json()}


def test_list_shows_active_flag(client, tokens):  # noqa: ANN001
    listed = _users(client, tokens)
    assert listed["ada"]["active"] is True and listed["dan"]["active"] is True
    assert all("password_hash" not in u for u in listed.values())


def test_role_and_secrecy_change_apply_at_once(client, tokens):  # noqa: ANN001
    h = _new_user(client, tokens, "rolf", "viewer")
    assert client.get("/cameras?limit=1", headers=h).status_code == 403
    # Used once, so the user is in this process's cache before the change.
    assert client.get("/auth/me", headers=h).json()["role"] == "viewer"
    r = client.patch("/auth/users/rolf", headers=tokens["ada"], json={"role": "dispatcher", "max_secrecy_level": 2})
    assert r.status_code == 200, r.text
    assert (r.json()["role"], r.json()["max_secrecy_level"], r.json()["active"]) == ("dispatcher", 2, True)
    me = client.get("/auth/me", headers=h).json()
    assert (me["role"], me["max_secrecy_level"]) == ("dispatcher", 2)
    # The old token (claiming "viewer") now sees cameras up to level 2 and no higher.
    levels = {f["properties"]["secrecy_level"]
              for f in client.get("/cameras?limit=10000", headers=h).json()["features"]}
    assert levels == {0, 1, 2}
    r = client.patch("/auth/users/rolf", headers=tokens["ada"], json={"role": "worker"})
    assert r.status_code == 200
    assert client.get("/cameras?limit=1", headers=h).status_code == 403
    assert _users(client, tokens)["rolf"]["role"] == "worker"


def test_deactivate_stops_tokens_at_once_and_reactivate(client, tokens):  # noqa: ANN001
    h = _new_user(client, tokens, "dex", "dispatcher")
    assert client.get("/incidents?limit=1", headers=h).status_code == 200
    r = client.patch("/auth/users/dex", headers=tokens["ada"], json={"active": False})
    assert r.status_code == 200 and r.json()["active"] is False
    for method, path in (("GET", "/auth/me"), ("GET", "/incidents?limit=1"), ("GET", "/cameras?limit=1"),
                         ("GET", "/ogc/collections/roads/items?limit=1")):
        res = client.request(method, path, headers=h)
        assert res.status_code == 401, (path, res.status_code, res.text)
        assert "deactivated" in res.json()["detail"]
    w = client.post("/incidents", headers=h, json={"lon": 104.07, "lat": 30.67, "category": "治安"})
    assert w.status_code == 401
    bad = client.post("/auth/token", data={"username": "dex", "password": PASSWORD})
    assert bad.status_code == 401
    assert _users(client, tokens)["dex"]["active"] is False
    r = client.patch("/auth/users/dex", headers=tokens["ada"], json={"active": True})
    assert r.status_code == 200 and r.json()["active"] is True
    assert client.get("/incidents?limit=1", headers=_login(client, "dex")).status_code == 200


def test_admin_resets_password(client, tokens):  # noqa: ANN001
    _new_user(client, tokens, "pete", "planner")
    r = client.patch("/auth/users/pete", headers=tokens["ada"], json={"password": "brand-new-pass-7"})
    assert r.status_code == 200, r.text
    assert client.post("/auth/token", data={"username": "pete", "password": PASSWORD}).status_code == 401
    _login(client, "pete", "brand-new-pass-7")
    weak = client.patch("/auth/users/pete", headers=tokens["ada"], json={"password": "short"})
    assert weak.status_code == 422 and "password" in weak.json()["detail"]


def test_change_own_password(client, tokens):  # noqa: ANN001
    h = _new_user(client, tokens, "olga", "worker")
    wrong = client.post("/auth/me/password", headers=h, json={"old_password": "not-my-password", "new_password": "olga-new-pass-1"})
    assert wrong.status_code == 403 and "old password is wrong" in wrong.json()["detail"]
    _login(client, "olga")  # unchanged
    same = client.post("/auth/me/password", headers=h, json={"old_password": PASSWORD, "new_password": PASSWORD})
    assert same.status_code == 422 and "differ" in same.json()["detail"]
    weak = client.post("/auth/me/password", headers=h, json={"old_password": PASSWORD, "new_password": "olga"})
    assert weak.status_code == 422
    ok = client.post("/auth/me/password", headers=h, json={"old_password": PASSWORD, "new_password": "olga-new-pass-1"})
    assert ok.status_code == 200, ok.text
    assert client.post("/auth/token", data={"username": "olga", "password": PASSWORD}).status_code == 401
    _login(client, "olga", "olga-new-pass-1")
    anon = client.post("/auth/me/password", json={"old_password": "x", "new_password": "y-long-enough-1"})
    assert anon.status_code == 401
    # Nobody's password or hash ends up in the audit log.
    log = client.get("/auth/audit?limit=1000", headers=tokens["ada"]).text
    assert "olga-new-pass-1" not in log and PASSWORD not in log and "$argon2" not in log


def test_last_active_admin_cannot_be_demoted_or_deactivated(client, tokens):  # noqa: ANN001
    for body in ({"role": "planner"}, {"active": False}):
        r = client.patch("/auth/users/ada", headers=tokens["ada"], json=body)
        assert r.status_code == 409, r.text
        assert "last active admin" in r.json()["detail"]
    assert _users(client, tokens)["ada"]["role"] == "admin" and _users(client, tokens)["ada"]["active"]
    # With a second admin, ada may be demoted; then the other cannot deactivate himself.
    h2 = _new_user(client, tokens, "adam", "admin")
    r = client.patch("/auth/users/ada", headers=h2, json={"role": "dispatcher"})
    assert r.status_code == 200
    r = client.patch("/auth/users/adam", headers=h2, json={"active": False})
    assert r.status_code == 409 and "last active admin" in r.json()["detail"]
    r = client.patch("/auth/users/ada", headers=h2, json={"role": "admin"})
    assert r.status_code == 200
    assert client.get("/auth/users", headers=tokens["ada"]).status_code == 200
    r = client.patch("/auth/users/adam", headers=tokens["ada"], json={"active": False})
    assert r.status_code == 200


def test_two_admins_demoting_each_other_at_once_leave_one(loaded_store_url):  # noqa: ANN001
    """The last-admin rule holds under a race: of two simultaneous demotions exactly one wins."""
    from gridpatrol.gis.errors import ConflictError
    from gridpatrol.layers import users
    from gridpatrol.layers.models import User
    from gridpatrol.layers.store import open_store
    from sqlalchemy import func, select

    store = open_store(loaded_store_url)
    try:
        for trial in range(3):
            a, b = f"race-a{trial}", f"race-b{trial}"
            # Only these two are admins during the race.
            with store.begin() as c:
                admins = c.execute(select(User.name).where(User.role == "admin", User.active.is_(True))).scalars().all()
            users.create_user(store, a, "admin", PASSWORD)
            users.create_user(store, b, "admin", PASSWORD)
            for n in admins:
                users.update_user(store, n, role="planner", actor="test")
            results: dict[str, str] = {}
            gate = threading.Barrier(2)

            def demote(who: str, target: str) -> None:
                gate.wait()
                try:
                    users.update_user(store, target, role="viewer", actor=who)
                    results[who] = "ok"
                except ConflictError:
                    results[who] = "refused"

            ts = [threading.Thread(target=demote, args=(a, b)), threading.Thread(target=demote, args=(b, a))]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            assert sorted(results.values()) == ["ok", "refused"], results
            with store.engine.connect() as c:
                n_admins = c.execute(select(func.count()).select_from(User).where(
                    User.role == "admin", User.active.is_(True))).scalar_one()
            assert n_admins == 1
            for n in admins:
                users.update_user(store, n, role="admin", actor="test")
            for n in (a, b):
                users.update_user(store, n, role="viewer", active=False, actor="test")
    finally:
        store.dispose()


def test_user_admin_rights_errors_and_audit(client, tokens):  # noqa: ANN001
    for user in ("pia", "dan", "wu", "vic", "anonymous"):
        r = client.patch("/auth/users/vic", headers=tokens[user], json={"role": "admin"})
        assert r.status_code == 403 and "may not" in r.json()["detail"], (user, r.text)
    assert _users(client, tokens)["vic"]["role"] == "viewer"
    r = client.patch("/auth/users/nobody-here", headers=tokens["ada"], json={"active": False})
    assert r.status_code == 404 and "nobody-here" in r.json()["detail"]
    r = client.patch("/auth/users/vic", headers=tokens["ada"], json={"role": "king"})
    assert r.status_code == 422 and "role" in r.json()["detail"]
    r = client.patch("/auth/users/vic", headers=tokens["ada"], json={})
    assert r.status_code == 422 and "nothing to change" in r.json()["detail"]
    r = client.patch("/auth/users/vic", headers=tokens["ada"], json={"max_secrecy_level": 12})
    assert r.status_code == 422
    r = client.patch("/auth/users/vic", headers=tokens["ada"], json={"max_secrecy_level": 1})
    assert r.status_code == 200
    log = client.get("/auth/audit?limit=1000", headers=tokens["ada"]).json()
    entry = next(e for e in log if e["action"] == "update-user" and e["target"] == "user:vic")
    assert entry["actor"] == "ada" and entry["detail"] == {"max_secrecy_level": {"from": 0, "to": 1}}
    http = [(e["actor"], e["detail"].get("status")) for e in log if e["action"] == "PATCH /auth/users/vic"]
    assert ("ada", 200) in http and ("pia", 403) in http and ("ada", 422) in http


def _cli(db: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--db", db, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "USER": "cli-admin"})


def test_cli_user_command_and_running_server(client, tokens, loaded_store_url, tmp_path):  # noqa: ANN001
    """``gridpatrol user`` (another process) changes the store; the running app applies it once its
    user cache entry expires (deps.USER_TTL_S seconds), not later."""
    from gridpatrol.api import deps

    h = _new_user(client, tokens, "cleo", "dispatcher")
    assert client.get("/auth/me", headers=h).status_code == 200  # now cached in this process
    res = _cli(loaded_store_url, "user", "cleo", "--disable")
    assert res.returncode == 0, res.stderr
    assert poll_until(lambda: client.get("/auth/me", headers=h).status_code == 401, deps.USER_TTL_S + 0.5)
    res = _cli(loaded_store_url, "user", "cleo", "--enable", "--role", "planner", "--max-secrecy", "3")
    assert res.returncode == 0, res.stderr
    pw = tmp_path / "pw.txt"
    pw.write_text("cleo-cli-pass-9\n", encoding="utf-8")
    assert _cli(loaded_store_url, "user", "cleo", "--password-file", str(pw)).returncode == 0
    me = client.get("/auth/me", headers=_login(client, "cleo", "cleo-cli-pass-9")).json()
    assert (me["role"], me["max_secrecy_level"]) == ("planner", 3)
    listing = _cli(loaded_store_url, "--lang", "en", "users")
    assert listing.returncode == 0 and "active" in listing.stdout and "cleo" in listing.stdout
    # The last admin is refused on the command line too, with the message and a non-zero exit.
    res = _cli(loaded_store_url, "user", "ada", "--disable")
    assert res.returncode != 0 and "last active admin" in (res.stdout + res.stderr)
    res = _cli(loaded_store_url, "user", "nobody-here", "--role", "viewer")
    assert res.returncode != 0 and "nobody-here" in (res.stdout + res.stderr)
    log = client.get("/auth/audit?actor=cli-admin&limit=100", headers=tokens["ada"]).json()
    assert {e["action"] for e in log} == {"update-user"} and len(log) >= 3
