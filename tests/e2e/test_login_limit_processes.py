"""The failed-login limit holds across two `gridpatrol serve` processes sharing one store (the
counters live in the store): guesses split over both lock the account in both. Both stores."""
from __future__ import annotations

import os
import subprocess

import httpx
import pytest

from tests.api.live_server import (
    CLI,
    PASSWORD,
    ROOT,
    cli,
    drop_schema,
    pg_schema_url,
    running_server,
)


@pytest.fixture(params=["gpkg", "postgis"])
def db(request, tmp_path):  # noqa: ANN001, ANN201
    if request.param == "gpkg":
        url = f"gpkg:///{tmp_path / 'store.gpkg'}"
        schema = None
    else:
        url, schema = pg_schema_url(request.getfixturevalue("pg_database"))
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    for name, role in (("ada", "admin"), ("dan", "dispatcher")):
        cli(url, "create-user", name, "--role", role, "--password-file", str(pw))
    refused = subprocess.run([*CLI, "--db", url, "create-user", "(anonymous)", "--role", "admin",
                              "--password-file", str(pw)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                             env=dict(os.environ))
    assert refused.returncode == 2 and "must not contain ( )" in refused.stderr, refused.stderr
    yield url
    if schema:
        drop_schema(request.getfixturevalue("pg_database"), schema)


def _token(base: str, name: str, password: str) -> httpx.Response:
    return httpx.post(base + "/auth/token", data={"username": name, "password": password}, timeout=60)


def test_guesses_split_over_two_server_processes_lock_the_account(db):  # noqa: ANN001
    with running_server(db) as a, running_server(db) as b:
        # The default limit: 5 failures per account in 15 minutes. Four, alternating, are answered 401.
        assert [_token(base, "dan", "wrong-guess-1").status_code for base in (a, b, a, b)] == [401] * 4
        fifth = _token(b, "dan", "wrong-guess-1")
        assert fifth.status_code == 429 and 890 <= int(fifth.headers["Retry-After"]) <= 900
        for base in (a, b):  # the right password waits in both processes
            r = _token(base, "dan", PASSWORD)
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0, r.text
            page = httpx.post(base + "/login", data={"username": "dan", "password": PASSWORD}, timeout=60)
            assert page.status_code == 429
        ok = _token(a, "ada", PASSWORD)
        assert ok.status_code == 200
        audit = httpx.get(a + "/auth/audit", headers={"Authorization": "Bearer " + ok.json()["access_token"]},
                          timeout=60).json()
        locks = [e for e in audit if e["action"] == "login-lockout"]
        assert [(e["target"], e["detail"]["failures"]) for e in locks] == [("user:dan", 5)]
        assert sum(1 for e in audit if e["action"] == "login" and e["detail"]["status"] == 429) == 3
    res = cli(db, "--lang", "en", "audit", "--verify")
    assert "entries verified" in res.stdout
