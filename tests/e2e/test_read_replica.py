"""A province's read-heavy traffic on a streaming replica (`replica_db`), against a real hot standby.

The test makes its own small PostgreSQL primary and a streaming replica of it (initdb, pg_basebackup -R,
as the postgres system user, on free ports), so nothing of the machine's cluster is changed. The proof
that the map click and the OGC item pages read from the replica: with the replica's replay paused, a
camera imported into the store is listed by /cameras (the store) but not found by the map click (/lookup,
route and fast path) or the OGC items of a server with `replica_db`, while a server without it finds it at once; once replay resumes,
the first server finds it too. A replica setting the store cannot use is refused before serving.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.live_server import CLI, E2E_SECRET_KEY, PASSWORD, cli, free_port, login, running_server
from tests.conftest import missing_dependency, poll_until

LON, LAT = 104.0650, 30.6570  # central Chengdu


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found or not shutil.which("runuser"):
        missing_dependency("PostgreSQL server binaries (initdb, pg_basebackup) or runuser")
    return Path(found[-1]).parent


def _as_postgres(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True, check=check,
                          timeout=120)


def _psql(port: int, sql: str, db: str = "gp") -> str:
    out = _as_postgres(str(_pg_bin() / "psql"), "-h", "127.0.0.1", "-p", str(port), "-d", db, "-AtXqc", sql)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def primary_and_replica() -> Iterator[tuple[str, str, int]]:
    """(store URL on the primary, the same on the replica, the replica's port); both stopped afterwards."""
    bin_ = _pg_bin()
    root = Path(tempfile.mkdtemp(prefix="gp-replica-"))
    shutil.chown(root, "postgres")
    primary, replica = root / "primary", root / "replica"
    p1, p2 = free_port(), free_port()
    started: list[Path] = []
    try:
        _as_postgres(str(bin_ / "initdb"), "-D", str(primary), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        with open(primary / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"\nport = {p1}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{root}'\n"
                    "wal_level = replica\nmax_wal_senders = 4\nfsync = off\n")
        with open(primary / "pg_hba.conf", "a", encoding="utf-8") as f:
            f.write("\nhost replication all 127.0.0.1/32 trust\n")
        _as_postgres(str(bin_ / "pg_ctl"), "-D", str(primary), "-l", str(root / "primary.log"), "-w", "start")
        started.append(primary)
        _psql(p1, "CREATE DATABASE gp", db="postgres")
        _as_postgres(str(bin_ / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(p1), "-U", "postgres", "-D", str(replica),
                     "-R", "-X", "stream")
        with open(replica / "postgresql.conf", "a", encoding="utf-8") as f:
            f.write(f"\nport = {p2}\nhot_standby = on\n")
        _as_postgres(str(bin_ / "pg_ctl"), "-D", str(replica), "-l", str(root / "replica.log"), "-w", "start")
        started.append(replica)
        assert _psql(p2, "SELECT pg_is_in_recovery()") == "t"
        yield (f"postgresql+psycopg://postgres@127.0.0.1:{p1}/gp", f"postgresql+psycopg://postgres@127.0.0.1:{p2}/gp", p2)
    finally:
        for d in reversed(started):
            _as_postgres(str(bin_ / "pg_ctl"), "-D", str(d), "-m", "immediate", "stop", check=False)
        shutil.rmtree(root, ignore_errors=True)


def _camera_csv(path: Path, code: str, dlon: float) -> Path:
    path.write_text("code,name,project,lon,lat,type,range_m\n"
                    f"{code},只读副本测试{code[-2:]},skynet,{LON + dlon:.6f},{LAT:.6f},dome,150\n", encoding="utf-8")
    return path


def _clicked(base: str, h: dict[str, str]) -> set[str]:
    """The cameras of a map click (GET /lookup), asked three ways: the route (a token this process has not
    seen yet, or an extra parameter) and the fast path (a known token) must agree."""
    seen = []
    for extra in ("", "", "&at=2026-12-01T08:00:00%2B08:00"):
        r = httpx.get(f"{base}/lookup?lon={LON}&lat={LAT}{extra}", headers=h, timeout=30)
        assert r.status_code == 200, r.text
        seen.append(frozenset(c["code"] for c in r.json()["cameras"]))
    assert len(set(seen)) == 1, seen
    return set(seen[0])


def _ogc(base: str, h: dict[str, str]) -> set[str]:
    r = httpx.get(f"{base}/ogc/collections/cameras/items?limit=100", headers=h, timeout=30)
    assert r.status_code == 200, r.text
    return {f["properties"]["code"] for f in r.json()["features"]}


def _listed(base: str, h: dict[str, str]) -> set[str]:
    r = httpx.get(f"{base}/cameras?limit=100", headers=h, timeout=30)
    assert r.status_code == 200, r.text
    return {f["properties"]["code"] for f in r.json()["features"]}


def test_the_map_click_and_ogc_items_read_from_the_replica(primary_and_replica, tmp_path) -> None:  # noqa: ANN001
    store, replica, rport = primary_and_replica
    pw = tmp_path / "pw.txt"
    pw.write_text(PASSWORD + "\n", encoding="utf-8")
    cli(store, "create-user", "ada", "--role", "admin", "--password-file", str(pw))
    first, second = "51010400001310000001", "51010400001310000002"
    cli(store, "import-cameras", str(_camera_csv(tmp_path / "a.csv", first, 0.0001)))
    assert poll_until(lambda: _psql(rport, f"SELECT count(*) FROM cameras WHERE code = '{first}'") == "1", 60, 0.2)
    _psql(rport, "SELECT pg_wal_replay_pause()")
    cli(store, "import-cameras", str(_camera_csv(tmp_path / "b.csv", second, -0.0001)))

    with running_server(store, env={"GRIDPATROL_REPLICA_DB": replica}) as on_replica, running_server(store) as plain:
        h = login(on_replica, "ada")
        assert _listed(on_replica, h) == {first, second}  # the store itself has both
        assert _clicked(on_replica, h) == {first}  # the paused replica has not replayed the second
        assert _ogc(on_replica, h) == {first}
        h2 = login(plain, "ada")
        assert _clicked(plain, h2) == {first, second} and _ogc(plain, h2) == {first, second}
        _psql(rport, "SELECT pg_wal_replay_resume()")
        assert poll_until(lambda: _clicked(on_replica, h) == {first, second}, 60, 0.2)
        assert _ogc(on_replica, h) == {first, second}


def test_a_replica_the_store_cannot_use_is_refused_before_serving(primary_and_replica, tmp_path) -> None:  # noqa: ANN001
    store, replica, _ = primary_and_replica
    port = str(free_port())
    cases = [
        (f"gpkg:///{tmp_path / 's.gpkg'}", replica, "GeoPackage"),
        (store, replica.rsplit("/", 1)[0] + "/postgres", "does not hold this store's tables"),
        (store, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gp", "does not answer"),
        (store, "mysql://x@y/z", "PostgreSQL URL"),
    ]
    for db, rep, needle in cases:
        env = {**os.environ, "GRIDPATROL_REPLICA_DB": rep, "GRIDPATROL_SECRET_KEY": E2E_SECRET_KEY}
        run = subprocess.run([*CLI, "--db", db, "serve", "--port", port], capture_output=True, text=True, env=env,
                             timeout=120)
        assert run.returncode != 0, (rep, run.stdout, run.stderr)
        assert needle in run.stdout + run.stderr, (rep, run.stderr[-2000:])
