"""The audit log is append-only and hash-chained: the store refuses UPDATE/DELETE, `gridpatrol audit
--verify` finds an edit or a gap, concurrent writers do not fork the chain, and a store from before
the chain (schema 3) is upgraded in place. On both stores."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from gridpatrol.layers import audit, migrations, users
from gridpatrol.layers.audit import AuditChainBroken
from gridpatrol.layers.store import open_store
from sqlalchemy import text

from tests.api.live_server import CLI, ROOT
from tests.migration_helpers import column_names, reopen_as_upgraded

ENV = dict(os.environ)


def _fill(store, n: int = 6) -> None:  # noqa: ANN001
    ada = users.create_user(store, "ada", "admin", "ada-password-1")
    for i in range(n):
        users.record_audit(store, ada, "POST /incidents", "/incidents", {"i": i, "text": "发现 井盖缺失"})


def _gridpatrol(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--db", url, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV)


def _untrigger(conn, is_gpkg: bool) -> None:  # noqa: ANN001
    """What only someone with the database file or owner rights can do: switch the refusal off."""
    if is_gpkg:
        conn.execute(text("DROP TRIGGER audit_log_no_update"))
        conn.execute(text("DROP TRIGGER audit_log_no_delete"))
    else:
        conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))


def test_entries_chain_and_verify(store, store_url):  # noqa: ANN001
    _fill(store)
    report = audit.verify(store)
    assert report.entries == 7  # create-user + 6
    entries = users.read_audit(store, limit=10)
    assert entries[0]["hash"] == report.head_hash and entries[-1]["actor"] == "cli"
    assert {e["actor_id"] for e in entries if e["actor"] == "ada"} == {1}  # who, by user id
    res = _gridpatrol(store_url, "--lang", "en", "audit", "--verify")
    assert res.returncode == 0, res.stderr
    assert "7 entries verified" in res.stdout


def test_the_store_refuses_update_and_delete_of_audit_entries(store):  # noqa: ANN001
    _fill(store, 2)
    before = users.read_audit(store)
    statements = ["UPDATE audit_log SET actor = 'eve'", "DELETE FROM audit_log WHERE id = 2",
                  "DELETE FROM audit_log"] + ([] if store.is_gpkg else ["TRUNCATE audit_log"])
    for sql in statements:
        with pytest.raises(Exception, match="append-only"):
            with store.begin() as c:
                c.execute(text(sql))
    assert users.read_audit(store) == before


@pytest.mark.parametrize("damage,bad_id,words", [
    ("UPDATE audit_log SET detail_json = '{\"i\": 99}' WHERE id = 3", 3, "was changed"),
    ("UPDATE audit_log SET actor_id = NULL WHERE id = 4", 4, "was changed"),
    ("DELETE FROM audit_log WHERE id = 5", 6, "removed or changed"),
    ("DELETE FROM audit_log WHERE id = 1", 2, "removed or changed"),
])
def test_an_edit_or_a_gap_is_found_and_named(store, store_url, damage, bad_id, words):  # noqa: ANN001
    _fill(store)
    with store.begin() as c:
        _untrigger(c, store.is_gpkg)
        c.execute(text(damage))
    with pytest.raises(AuditChainBroken, match=f"audit entry {bad_id} .*{words}"):
        audit.verify(store)
    res = _gridpatrol(store_url, "audit", "--verify")
    assert res.returncode == AuditChainBroken.exit_code
    assert f"audit entry {bad_id} " in res.stderr and "Traceback" not in res.stderr


WRITER = textwrap.dedent("""
    import sys
    from gridpatrol.layers import users
    from gridpatrol.layers.store import open_store
    s = open_store(sys.argv[1])
    for i in range(int(sys.argv[3])):
        users.record_audit(s, None, "concurrent", sys.argv[2], {"i": i})
    s.dispose()
""")


def test_two_processes_appending_at_once_do_not_fork_the_chain(store, store_url):  # noqa: ANN001
    _fill(store, 1)
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, store_url, f"p{k}", "60"], cwd=ROOT, env=ENV,
                              stderr=subprocess.PIPE, text=True) for k in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, p.stderr.read()
    report = audit.verify(store)
    assert report.entries == 2 + 120
    ids = [e["id"] for e in users.read_audit(store, limit=1000)]
    assert ids == list(range(122, 0, -1))


def test_a_store_from_before_the_chain_is_upgraded_in_place(store_url):  # noqa: ANN001
    s = open_store(store_url)
    _fill(s, 3)
    gpkg = s.is_gpkg

    def as_version_3(c):  # noqa: ANN001, ANN202  (no chain columns, no triggers)
        _untrigger(c, gpkg)
        c.execute(text("DROP INDEX uq_audit_log_prev_hash"))
        c.execute(text("CREATE TEMP TABLE audit_v3 AS SELECT id, at, actor, action, target, detail_json FROM audit_log"))
        c.execute(text("DROP TABLE audit_log"))
        at = "DATETIME" if gpkg else "TIMESTAMP WITH TIME ZONE"
        c.execute(text(f"CREATE TABLE audit_log (id INTEGER NOT NULL PRIMARY KEY, at {at}, actor TEXT, action TEXT "
                       "NOT NULL, target TEXT, detail_json TEXT NOT NULL)"))
        c.execute(text("INSERT INTO audit_log SELECT * FROM audit_v3"))
        c.execute(text("DROP TABLE audit_v3"))
        c.execute(text("DROP TABLE login_throttle"))

    s = reopen_as_upgraded(s, store_url, 3, as_version_3)
    try:
        assert {"actor_id", "prev_hash", "hash"} <= column_names(s, "audit_log")
        assert audit.verify(s).entries == 4  # the old entries were chained in id order
        users.record_audit(s, None, "after-upgrade", None, {})
        assert audit.verify(s).entries == 5
        with pytest.raises(Exception, match="append-only"):
            with s.begin() as c:
                c.execute(text("DELETE FROM audit_log"))
        assert migrations.upgrade(s.engine) == 0
    finally:
        s.dispose()
