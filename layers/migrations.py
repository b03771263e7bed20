"""Versioned schema migrations: numbered steps applied in order, recorded in the store."""
from __future__ import annotations

from collections.abc import Callable

from gridpatrol.gis.errors import StoreError
from gridpatrol.layers.models import GPKG_DIALECTS, Base, SchemaVersion, UtcDateTime
from sqlalchemy import Connection, DateTime, Engine, MetaData, inspect, select, text


def _fresh_metadata() -> MetaData:
    # GeoAlchemy2's create hooks edit the Table objects (the GeoPackage hooks drop the GiST
    # index definitions, for example); with both stores in one process, each create must work
    # on its own copy or the second store silently loses its spatial indexes.
    md = MetaData()
    for table in Base.metadata.sorted_tables:
        table.to_metadata(md)
    return md


def _v1_initial(conn: Connection) -> None:
    _fresh_metadata().create_all(conn)


def _v2_road_access(conn: Connection) -> None:
    # Version 1 creates tables from the current models, so a new store has the columns already;
    # a store made before them gets them here (empty until the streets are imported again).
    have = {c["name"] for c in inspect(conn).get_columns("roads")}
    for col in ("access", "foot", "motor_vehicle"):
        if col not in have:
            conn.execute(text(f"ALTER TABLE roads ADD COLUMN {col} TEXT"))


def _v3_token_revocation(conn: Connection) -> None:
    # As in version 2: new stores have the columns from the models; older ones get them here.
    # Existing users start at token version 0, which is what tokens without the claim count as.
    have = {c["name"] for c in inspect(conn).get_columns("users")}
    if "token_version" not in have:
        conn.execute(text("ALTER TABLE users ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0"))
    if "tokens_revoked_at" not in have:
        kind = DateTime(timezone=True).compile(dialect=conn.dialect)
        conn.execute(text(f"ALTER TABLE users ADD COLUMN tokens_revoked_at {kind}"))


def _v4_iso_datetimes(conn: Connection) -> None:
    # GeoPackage DATETIME must be ISO 8601 "YYYY-MM-DDTHH:MM:SS.SSSZ" (UTC); earlier versions wrote
    # "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC), which GDAL reads with a warning per value. PostGIS
    # keeps timestamptz: nothing to rewrite there.
    if conn.dialect.name not in GPKG_DIALECTS:
        return
    insp = inspect(conn)
    for table in Base.metadata.sorted_tables:
        if not insp.has_table(table.name):
            continue
        have = {c["name"] for c in insp.get_columns(table.name)}
        for col in table.columns:
            if isinstance(col.type, UtcDateTime) and col.name in have:
                conn.execute(text(f"UPDATE {table.name} SET {col.name} = strftime('%Y-%m-%dT%H:%M:%fZ', {col.name}) "
                                  f"WHERE {col.name} IS NOT NULL AND {col.name} NOT GLOB "
                                  "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z'"))


def _v5_trust(conn: Connection) -> None:
    # As in version 2: new stores have the columns and the table from the models; older ones get
    # them here. Entries written before get their place in the hash chain, in id order.
    from gridpatrol.layers import audit
    from gridpatrol.layers.models import LoginThrottle

    have = {c["name"] for c in inspect(conn).get_columns("audit_log")}
    for col, kind in (("actor_id", "INTEGER"), ("prev_hash", "TEXT"), ("hash", "TEXT")):
        if col not in have:
            conn.execute(text(f"ALTER TABLE audit_log ADD COLUMN {col} {kind}"))
    LoginThrottle.__table__.to_metadata(MetaData()).create(conn, checkfirst=True)
    audit.chain_existing(conn)
    audit.make_append_only(conn)


def _v6_route_shifts(conn: Connection) -> None:
    # As in version 2: new stores have the column from the models; older ones get it here. A
    # route stored before shifts existed is the one shift of its grid.
    have = {c["name"] for c in inspect(conn).get_columns("routes")}
    if "shift" not in have:
        conn.execute(text("ALTER TABLE routes ADD COLUMN shift INTEGER"))
    conn.execute(text("UPDATE routes SET shift = 1 WHERE shift IS NULL"))


def _v7_household_source(conn: Connection) -> None:
    # As in version 2: new stores have the columns from the models; older ones get them here.
    # Buildings stored before registers existed got their households from OSM: a building:flats
    # tag (households_estimated false) or an estimate.
    have = {c["name"] for c in inspect(conn).get_columns("buildings")}
    for col, kind in (("household_source", "TEXT"), ("households_osm", "REAL"), ("population_osm", "REAL")):
        if col not in have:
            conn.execute(text(f"ALTER TABLE buildings ADD COLUMN {col} {kind}"))
    conn.execute(text("UPDATE buildings SET household_source = CASE WHEN households_estimated "
                      "THEN 'estimate' ELSE 'osm_tag' END WHERE household_source IS NULL"))


def _v9_phone_reports(conn: Connection) -> None:
    # New stores get the tables from the models (version 1); older ones here.
    from gridpatrol.layers.models import Incident, IncidentPhoto, IncidentReport

    md = MetaData()  # incidents only for the foreign keys (it exists: checkfirst leaves it alone)
    for model in (Incident, IncidentReport, IncidentPhoto):
        model.__table__.to_metadata(md)
    md.create_all(conn, checkfirst=True)


def _v10_jobs(conn: Connection) -> None:
    # As in version 5: new stores have the table from the models; older ones get it here. On
    # PostGIS the queue itself is procrastinate's schema (tables procrastinate_*), applied once
    # into the store's own schema (the first on the search path), beside the jobs table.
    from gridpatrol.layers.models import Job

    Job.__table__.to_metadata(MetaData()).create(conn, checkfirst=True)
    if conn.dialect.name == "postgresql" and not inspect(conn).has_table("procrastinate_jobs"):
        from procrastinate.schema import SchemaManager

        # psycopg reads "%" as a placeholder: doubled, as procrastinate itself applies it.
        conn.exec_driver_sql(SchemaManager.get_schema().replace("%", "%%"))


def _v8_tracks(conn: Connection) -> None:
    # New stores have the tables from the models (version 1); older ones get them here.
    from gridpatrol.layers.models import Track, TrackChunk

    md = _fresh_metadata()
    for model in (Track, TrackChunk):
        md.tables[model.__tablename__].create(conn, checkfirst=True)


def _v11_block_population(conn: Connection) -> None:
    # New stores have the columns from the models; plans stored before keep NULL (a plan
    # balanced on population is drawn anew).
    for table in ("blocks", "grids"):
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        if "population" not in have:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN population REAL"))


def _v12_places(conn: Connection) -> None:
    # New stores have the table from the models (version 1); older ones get it here (empty until
    # the extract is imported again).
    from gridpatrol.layers.models import Place

    _fresh_metadata().tables[Place.__tablename__].create(conn, checkfirst=True)


def _v13_job_files(conn: Connection) -> None:
    # New stores have the table from the models (version 1); older ones get it here.
    from gridpatrol.layers.models import JobFile

    md = _fresh_metadata()
    md.tables[JobFile.__tablename__].create(conn, checkfirst=True)


def _v14_place_areas(conn: Connection) -> None:
    # New stores have the table from the models (version 1); older ones get it here (empty until
    # the extract is imported again).
    from gridpatrol.layers.models import PlaceArea

    _fresh_metadata().tables[PlaceArea.__tablename__].create(conn, checkfirst=True)


def _v15_point_xy(conn: Connection) -> None:
    # PostGIS only: the generated point column and its covering GiST index (models.POINT_XY_LAYERS).
    # Exact for points: ``geom_xy <@ box`` is ST_Intersects(geom, envelope) (both include the
    # border; <@ of a point in a box compares the doubles exactly, no float4 index boxes).
    if conn.dialect.name != "postgresql":
        return
    from gridpatrol.layers.models import POINT_XY_COLUMN, POINT_XY_LAYERS

    for table, include in POINT_XY_LAYERS.items():
        # (Not inspect(): SQLAlchemy does not know the point type and would warn about it.)
        conn.execute(text(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {POINT_XY_COLUMN} point "
                          f"GENERATED ALWAYS AS (point(ST_X(geom), ST_Y(geom))) STORED"))
        conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_{table}_{POINT_XY_COLUMN} ON {table} "
                          f"USING gist ({POINT_XY_COLUMN}) INCLUDE ({', '.join(include)})"))


def _v16_empty_bounds(conn: Connection) -> None:
    # New stores have the table from the models (version 1); older ones get it here (empty: the
    # next draw-grids fills it, check-grids solves as before until then).
    from gridpatrol.layers.models import EmptyBoundRow

    _fresh_metadata().tables[EmptyBoundRow.__tablename__].create(conn, checkfirst=True)


# (version, description, step). A later release appends steps; never edit a released one.
STEPS: list[tuple[int, str, Callable[[Connection], None]]] = [
    (1, "initial schema: areas, roads, buildings, barriers, cameras, grids, routes, incidents, users", _v1_initial),
    (2, "roads: OSM access, foot and motor_vehicle tags", _v2_road_access),
    (3, "users: token version and time of the last revocation", _v3_token_revocation),
    (4, "GeoPackage: every date/time value as ISO 8601 UTC text (YYYY-MM-DDTHH:MM:SS.SSSZ)", _v4_iso_datetimes),
    (5, "audit log: actor id, hash chain, append-only; login throttle", _v5_trust),
    (6, "routes: shift number (a grid's coverage cut into shifts of at most M minutes)", _v6_route_shifts),
    (7, "buildings: household_source (register / osm_tag / estimate), households and population before a register", _v7_household_source),
    (8, "tracks: recorded GPS tracks per worker and the chunks uploaded from phones", _v8_tracks),
    (9, "incident reports from the phone page (client keys) and incident photos", _v9_phone_reports),
    (10, "jobs: queued long work (state, progress, result); PostGIS: procrastinate's queue tables", _v10_jobs),
    (11, "blocks and grids: population (persons), for plans balanced on population or a weighted workload", _v11_block_population),
    (12, "places: named OSM place nodes (village, hamlet, …) that rural grids name settlements after", _v12_places),
    (13, "job files: the upload an import job reads and what a job made for its owner (a report's XLSX)", _v13_job_files),
    (14, "place areas: villages and hamlets mapped as polygons (place=*, named landuse=residential) for rural names",
     _v14_place_areas),
    (15, "PostGIS: cameras and incidents: position as a point with a covering GiST index (index-only bbox pages)", _v15_point_xy),
    (16, "empty bounds: each planning area's proven least number of grids of 0 households, by the digest of its "
     "inputs", _v16_empty_bounds),
]
CURRENT_VERSION = STEPS[-1][0]


def current_version(conn: Connection) -> int:
    """The schema version of the store behind ``conn`` (0 for an empty store)."""
    if not inspect(conn).has_table(SchemaVersion.__tablename__):
        return 0
    v = conn.execute(select(SchemaVersion.version).order_by(SchemaVersion.version.desc())).first()
    return int(v[0]) if v else 0


def schema_version(engine: Engine) -> int:
    """Connect and read the schema version: raises if the store does not answer."""
    with engine.connect() as conn:
        conn.execute(select(1))
        return current_version(conn)


def upgrade(engine: Engine) -> int:
    """Bring the store to ``CURRENT_VERSION``; returns the number of steps applied.

    A store written by a newer gridpatrol is refused rather than touched.
    """
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Two processes opening a fresh database at once must not both create the schema.
            conn.execute(text("SELECT pg_advisory_xact_lock(74201)"))
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        have = current_version(conn)
        if have > CURRENT_VERSION:
            raise StoreError(
                f"the store has schema version {have}, newer than this gridpatrol ({CURRENT_VERSION})",
                hint="upgrade gridpatrol",
            )
        applied = 0
        for version, description, step in STEPS:
            if version <= have:
                continue
            step(conn)
            conn.execute(SchemaVersion.__table__.insert().values(version=version, description=description))
            applied += 1
        return applied
