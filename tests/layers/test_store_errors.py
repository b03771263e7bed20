"""A store or replica that is down or misconfigured is reported in one line that says what and where, and never
shows the password of its URL (layers.store.db_error_line, used by open_store, `serve`'s replica check and the
API's 503)."""
from __future__ import annotations

import os
import subprocess

import psycopg
import pytest
from gridpatrol.api.deps import store_unavailable
from gridpatrol.gis.errors import StoreError
from gridpatrol.layers.store import db_error_line, open_store

from tests.api.live_server import CLI, E2E_SECRET_KEY, ROOT, free_port

SECRET = "Hunter2-s3cret"


def test_a_store_that_does_not_answer_names_host_and_port_not_the_password() -> None:
    port = free_port()
    with pytest.raises(StoreError) as caught:
        open_store(f"postgresql+psycopg://gp:{SECRET}@127.0.0.1:{port}/test")
    msg = str(caught.value)
    assert f"gp:***@127.0.0.1:{port}/test" in msg and "Connection refused" in msg, msg
    assert SECRET not in msg and "\n" not in msg, msg


def test_a_driver_error_that_quotes_the_password_is_masked() -> None:
    # libpq quotes a bad percent escape of the URL it was given: the password itself.
    dsn = f"postgresql://gp:{SECRET}%zz@127.0.0.1:{free_port()}/test"
    with pytest.raises(psycopg.Error) as caught:
        psycopg.connect(dsn, connect_timeout=5)
    assert SECRET in str(caught.value)  # the driver's own text has it
    line = db_error_line(caught.value, dsn)
    assert line.startswith("invalid percent-encoded token") and SECRET not in line, line
    api_msg = str(store_unavailable(caught.value, dsn))
    assert api_msg.startswith("the store is unavailable (invalid percent-encoded token") and SECRET not in api_msg


def test_serve_refuses_a_replica_that_is_down_in_one_line_without_its_password(pg_url: str) -> None:
    port = free_port()
    replica = f"postgresql://gp:{SECRET}@127.0.0.1:{port}/test"
    env = {**os.environ, "GRIDPATROL_REPLICA_DB": replica, "GRIDPATROL_SECRET_KEY": E2E_SECRET_KEY}
    run = subprocess.run([*CLI, "--db", pg_url, "serve", "--port", str(free_port())], cwd=ROOT, capture_output=True,
                         text=True, env=env, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode != 0, out
    assert SECRET not in out, out
    line = next((ln for ln in out.splitlines() if "does not answer" in ln), out)
    assert "replica_db" in line and f"127.0.0.1:{port}" in line and "Connection refused" in line, out
