"""Failed logins are limited per account and per client address in the store: 429 with Retry-After
(the right password too) on the API and the page login, lockouts in the audit log, a success resets
the account; reserved user names are refused and the audit log records who by user id. Both stores."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from gridpatrol.api.app import create_app
from gridpatrol.api.config import load_settings
from gridpatrol.layers import users
from gridpatrol.layers.store import open_store

PW = "right-password-1"


@pytest.fixture
def client(store_url):  # noqa: ANN001, ANN201
    store = open_store(store_url)
    for name, role in (("ada", "admin"), ("dan", "dispatcher"), ("wu", "worker")):
        users.create_user(store, name, role, PW)
    settings = load_settings(log_level="WARNING", login_max_failures_per_user=3, login_max_failures_per_address=8,
                             login_lockout_s=2)
    app = create_app(store_url, settings=settings, store=store)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.store = store
        yield c
    store.dispose()


def _api(c, name: str, pw: str):  # noqa: ANN001, ANN202
    return c.post("/auth/token", data={"username": name, "password": pw})


def _page(c, name: str, pw: str):  # noqa: ANN001, ANN202
    return c.post("/login", data={"username": name, "password": pw}, follow_redirects=False)


def test_account_locks_after_the_limit_even_for_the_right_password(client):  # noqa: ANN001
    assert [_api(client, "dan", "wrong-guess-1").status_code for _ in range(2)] == [401, 401]
    third = _page(client, "dan", "wrong-guess-1")  # the page login counts against the same account
    assert third.status_code == 429 and int(third.headers["Retry-After"]) == 2
    for attempt in (_api(client, "dan", PW), _page(client, "dan", PW)):
        assert attempt.status_code == 429, attempt.text
        assert 1 <= int(attempt.headers["Retry-After"]) <= 2
    assert "too many failed logins" in _api(client, "dan", PW).json()["detail"]
    # The page login answers with the login page and the wait, in Chinese, not the API's JSON.
    page = _page(client, "dan", PW)
    assert page.headers["content-type"].startswith("text/html"), page.text
    wait = int(page.headers["Retry-After"])
    assert f"登录失败次数过多，已暂时锁定：请在 {wait} 秒后重试。" in page.text and 'name="password"' in page.text
    assert _api(client, "ada", PW).status_code == 200  # another account is not locked
    locks = [e for e in users.read_audit(client.store) if e["action"] == "login-lockout"]
    assert [(e["target"], e["detail"]["failures"]) for e in locks] == [("user:dan", 3)]
    time.sleep(2.1)
    # Guessing on after the lock: the second lockout lasts twice as long.
    assert [_api(client, "dan", "wrong-guess-2").status_code for _ in range(3)] == [401, 401, 429]
    assert int(_api(client, "dan", PW).headers["Retry-After"]) == 4
    time.sleep(4.1)
    assert _api(client, "dan", PW).status_code == 200  # the lock ends; the right password works


def test_a_successful_login_resets_the_account_counter(client):  # noqa: ANN001
    for _ in range(2):
        assert _api(client, "wu", "wrong-guess-1").status_code == 401
    assert _api(client, "wu", PW).status_code == 200
    for _ in range(2):
        assert _api(client, "wu", "wrong-guess-1").status_code == 401
    assert _api(client, "wu", PW).status_code == 200


def test_an_address_spraying_many_accounts_is_locked(client):  # noqa: ANN001
    statuses = [_api(client, f"guess{i}", "wrong-guess-1").status_code for i in range(8)]
    assert statuses == [401] * 7 + [429]
    r = _api(client, "ada", PW)  # the right password from that address waits too
    assert r.status_code == 429 and "address" in r.text and int(r.headers["Retry-After"]) >= 1
    locks = [e["target"] for e in users.read_audit(client.store) if e["action"] == "login-lockout"]
    assert locks == ["address:testclient"]


@pytest.mark.parametrize("name", ["(anonymous)", "Anonymous", "ＡＮＯＮＹＭＯＵＳ", "cli", " ada2", "ada\u200b", "a\nb",
                                  "ADA"])
def test_reserved_and_ambiguous_user_names_are_refused(client, name):  # noqa: ANN001
    admin = {"Authorization": "Bearer " + _api(client, "ada", PW).json()["access_token"]}
    r = client.post("/auth/users", headers=admin, json={"name": name, "role": "viewer", "password": PW})
    assert r.status_code in (409, 422), r.text
    assert name not in {u["name"] for u in users.list_users(client.store)}


def test_the_audit_log_records_who_by_user_id(client):  # noqa: ANN001
    admin = {"Authorization": "Bearer " + _api(client, "ada", PW).json()["access_token"]}
    assert client.post("/auth/users", headers=admin, json={"name": "vic", "role": "viewer", "password": PW}).status_code == 201
    client.post("/auth/users", json={"name": "eve", "role": "admin", "password": PW})  # anonymous: refused
    entries = users.read_audit(client.store)
    ada_id = next(u for u in [users.get_user(client.store, "ada")] if u).user_id
    made = next(e for e in entries if e["action"] == "create-user" and e["target"] == "user:vic")
    assert (made["actor"], made["actor_id"]) == ("ada", ada_id)
    refused = next(e for e in entries if e["action"] == "POST /auth/users" and e["detail"]["status"] in (401, 403))
    assert (refused["actor"], refused["actor_id"]) == ("(anonymous)", None)
