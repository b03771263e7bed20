"""Every date/time column is written as an exact instant on both stores, and on GeoPackage as the
standard's ISO 8601 text (YYYY-MM-DDTHH:MM:SS.SSSZ), so GDAL and QGIS read it without a warning;
a store written by an older version is rewritten by a migration step."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import geopandas as gpd
import pandas as pd
import shapely
from gridpatrol.layers import migrations, users
from gridpatrol.layers.models import (
    LAYERS,
    AuditEntry,
    Base,
    GridPlan,
    IncidentEvent,
    UtcDateTime,
)
from gridpatrol.layers.store import gpkg_path, open_store
from sqlalchemy import insert, text

from tests.gdal_check import read_every_table

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CHINA = timezone(timedelta(hours=8))
# 20:15 in Beijing on New Year's Eve is 12:15 UTC the same day; the microseconds go to milliseconds.
WHEN = datetime(2018, 12, 31, 20, 15, 7, 123456, tzinfo=CHINA)
WHEN_MS = WHEN.replace(microsecond=123000)


def _datetime_columns() -> list[tuple[str, str]]:
    return [(t.name, c.name) for t in Base.metadata.sorted_tables for c in t.columns if isinstance(c.type, UtcDateTime)]


def _write_every_kind(store) -> None:  # noqa: ANN001
    """One row in every table with a date/time column, each written the way the product writes it."""
    users.create_user(store, "ada", "admin", "test-password-123")
    from gridpatrol.layers import jobs
    from gridpatrol.layers.plan_params import RebalanceParams

    job_id = jobs.create(store, "rebalance", RebalanceParams(codes=["g1", "g2"]), created_by="ada", lock_key=None)
    with store.begin() as conn:  # what a job keeps for its owner (a patrol report's XLSX), as a worker writes it
        jobs.save_output(conn, job_id, "考核表.xlsx", "application/octet-stream", b"x")
    import numpy as np
    from gridpatrol.gis.tracks import Track
    from gridpatrol.layers.tracks import save_track

    stamps = 1.8e9 + np.arange(3) * 10.0
    save_track(store, Track(104.0 + np.arange(3) * 1e-4, np.full(3, 30.6), stamps, np.full(3, np.nan)),
               worker="wu", source="api", raw=b"x")
    from gridpatrol.gis.partition.empty_bound import EmptyBound
    from gridpatrol.layers.empty_bounds import save_bounds

    save_bounds(store, {"d" * 64: ("510104", EmptyBound(1, None, "cp-sat"))})  # as draw-grids keeps a bound
    box = shapely.box(104.0, 30.6, 104.01, 30.61)
    with store.begin() as conn:
        plan = conn.execute(insert(GridPlan).values(name="p", created_at=WHEN).returning(GridPlan.id)).scalar_one()
        store.insert_gdf(conn, "routes", gpd.GeoDataFrame(
            {"plan_id": [plan], "grid_code": "g1", "mode": "walk", "length_m": 1.0, "required_m": 1.0,
             "lower_bound_m": 1.0, "duration_s": 1.0, "created_at": [WHEN]},
            geometry=[shapely.LineString([(104.0, 30.6), (104.001, 30.6)])], crs=4326))
        store.insert_gdf(conn, "incidents", gpd.GeoDataFrame(
            {"occurred_at": pd.to_datetime([WHEN]), "category": "治安", "state_since": [WHEN]},
            geometry=[shapely.Point(104.0, 30.6)], crs=4326))
        inc = conn.execute(text("SELECT max(id) FROM incidents")).scalar_one()
        conn.execute(insert(IncidentEvent).values(incident_id=inc, seq=1, to_state="reported", at=WHEN))
        store.insert_gdf(conn, "imports", gpd.GeoDataFrame(
            {"kind": ["osm"], "source_path": "x", "source_sha256": "0", "source_bytes": 2**40,
             "started_at": [WHEN], "finished_at": [WHEN]}, geometry=[shapely.MultiPolygon([box])], crs=4326))
        # Users are written by create_user (at the current time): set them as an update would. The
        # audit log is append-only: its entries keep the time create_user wrote (checked apart).
        conn.execute(Base.metadata.tables["users"].update().values(created_at=WHEN, tokens_revoked_at=WHEN))
        conn.execute(Base.metadata.tables["jobs"].update().values(  # as a worker's updates would
            created_at=WHEN, started_at=WHEN, finished_at=WHEN, heartbeat_at=WHEN))
        conn.execute(Base.metadata.tables["job_files"].update().values(created_at=WHEN))
        conn.execute(Base.metadata.tables["tracks"].update().values(start_at=WHEN, end_at=WHEN, created_at=WHEN))
        conn.execute(Base.metadata.tables["track_chunks"].update().values(received_at=WHEN))
        conn.execute(Base.metadata.tables["empty_bounds"].update().values(created_at=WHEN))
        # A phone report's key and photo, as POST /m/reports writes them.
        conn.execute(insert(Base.metadata.tables["incident_reports"]).values(
            reporter="wu", client_key="k1", incident_id=inc, received_at=WHEN))
        conn.execute(insert(Base.metadata.tables["incident_photos"]).values(
            incident_id=inc, seq=1, mime="image/jpeg", width=1, height=1, data=b"x", created_at=WHEN))


def _check_values(store) -> None:  # noqa: ANN001
    with store.engine.connect() as conn:
        for table, col in _datetime_columns():
            if table == "gp_schema_version":
                continue
            got = conn.execute(Base.metadata.tables[table].select().with_only_columns(
                Base.metadata.tables[table].c[col])).scalars().all()
            if table == AuditEntry.__tablename__:  # written now, to the millisecond (the hash chain's time)
                assert got and all(v.microsecond % 1000 == 0 and v.utcoffset() == timedelta(0) for v in got), got
                continue
            assert got and all(v == WHEN_MS or (not store.is_gpkg and v == WHEN) for v in got), (table, col, got)
            assert all(v.utcoffset() == timedelta(0) for v in got), (table, col, got)


def _check_gpkg_text_and_gdal(store) -> None:  # noqa: ANN001
    with store.engine.connect() as conn:
        for table, col in _datetime_columns():
            raw = conn.exec_driver_sql(f"SELECT {col} FROM {table} WHERE {col} IS NOT NULL").scalars().all()
            assert raw and all(isinstance(v, str) and ISO.match(v) for v in raw), (table, col, raw)
    path = gpkg_path(store.url)
    store.dispose()
    tables = read_every_table(path)
    assert {t for t, _ in _datetime_columns()} <= set(tables)
    for table, col in _datetime_columns():
        if table in ("gp_schema_version", AuditEntry.__tablename__):
            continue
        vals = pd.to_datetime(tables[table][col], utc=True)
        assert (vals == pd.Timestamp(WHEN_MS)).all(), (table, col, vals.tolist())
    assert tables["imports"]["source_bytes"].iloc[0] == 2**40


def test_every_datetime_column_is_an_instant_and_iso_text_on_gpkg(store_url):
    store = open_store(store_url)
    _write_every_kind(store)
    _check_values(store)
    if store.is_gpkg:
        _check_gpkg_text_and_gdal(store)
    store.dispose()


def test_an_older_gpkg_store_is_rewritten_by_the_migration(gpkg_url):
    store = open_store(gpkg_url)
    _write_every_kind(store)
    with store.begin() as conn:  # the text older versions wrote: naive UTC with a space and microseconds
        # Older stores had no append-only triggers on the audit log (schema step 5 adds them again).
        for op in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS audit_log_no_{op}"))
        for table, col in _datetime_columns():
            conn.execute(text(f"UPDATE {table} SET {col} = '2018-12-31 12:15:07.123456' WHERE {col} IS NOT NULL"))
        conn.execute(text("DELETE FROM gp_schema_version WHERE version >= 4"))
    store.dispose()
    store = open_store(gpkg_url)
    with store.engine.connect() as conn:
        assert migrations.current_version(conn) == migrations.CURRENT_VERSION
    _check_values(store)
    _check_gpkg_text_and_gdal(store)
    assert "incidents" in LAYERS
