"""GeoAlchemy2 models of every layer: one set of tables for the GeoPackage and PostGIS stores."""
from __future__ import annotations

from datetime import datetime, timezone

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, UserDefinedType

SRID = 4326
# Row ids are 32-bit integers in both stores: larger numbers are refused at the edges, not sent to SQL.
MAX_ID = 2**31 - 1

# GeoPackage readers (GDAL, QGIS) know only the GPKG column types: TEXT, INTEGER, REAL/FLOAT,
# BOOLEAN, DATETIME, BLOB. VARCHAR, BIGINT and JSON make GDAL skip the column, so strings are
# Text everywhere and 64-bit ids become plain INTEGER (64-bit in SQLite anyway) on GeoPackage.
BigInt = BigInteger().with_variant(Integer(), "geopackage", "sqlite")


GPKG_DIALECTS = ("geopackage", "sqlite")

# PostGIS only (schema version 15): point layers also hold their position as a PostgreSQL
# ``point`` (a stored generated column, not in the models, so no read or write sees it), indexed
# by GiST with the id and the role filter's columns included. A bbox page then finds, counts and
# orders its rows by an index-only scan, without visiting a heap row per match
# (layers.features.items_where). Per layer: the columns the index includes.
POINT_XY_COLUMN = "geom_xy"
POINT_XY_LAYERS = {"cameras": ("id", "secrecy_level"), "incidents": ("id", "grid_code")}


class _GpkgDateTime(UserDefinedType):
    """A GeoPackage DATETIME column whose values are passed as text (formatted by UtcDateTime)."""

    cache_ok = True

    def get_col_spec(self, **kw) -> str:  # noqa: ANN003
        return "DATETIME"


def gpkg_datetime_text(value: datetime) -> str:
    """``value`` as GeoPackage DATETIME text, ISO 8601 ``YYYY-MM-DDTHH:MM:SS.SSSZ`` in UTC (naive counts as UTC)."""
    t = value.astimezone(timezone.utc) if value.tzinfo else value
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class UtcDateTime(TypeDecorator):
    """A timezone-aware instant: timestamptz on PostGIS, ISO 8601 UTC text (``…T…Z``, milliseconds)
    on GeoPackage as the standard requires (GDAL and QGIS warn about anything else)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect):  # noqa: ANN001, ANN201
        if dialect.name in GPKG_DIALECTS:
            return dialect.type_descriptor(_GpkgDateTime())
        return dialect.type_descriptor(DateTime(timezone=True))

    def process_bind_param(self, value, dialect):  # noqa: ANN001, ANN201
        if value is None or dialect.name not in GPKG_DIALECTS:
            return value
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return gpkg_datetime_text(value)

    def process_result_value(self, value, dialect):  # noqa: ANN001, ANN201
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def geom(kind: str) -> Geometry:
    """A WGS-84 geometry column of ``kind`` with a spatial index."""
    return Geometry(kind, srid=SRID, spatial_index=True)


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    """One row per applied migration step."""

    __tablename__ = "gp_schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    description: Mapped[str] = mapped_column(Text)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ImportRecord(Base):
    """Metadata of every import: source, checksum, counts, what was dropped, and when."""

    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)  # osm, areas, cameras, incidents, grids
    source_path: Mapped[str] = mapped_column(Text)
    source_sha256: Mapped[str] = mapped_column(Text)
    source_bytes: Mapped[int] = mapped_column(BigInt)
    options_json: Mapped[str] = mapped_column(Text, default="{}")
    counts_json: Mapped[str] = mapped_column(Text, default="{}")
    dropped_json: Mapped[str] = mapped_column(Text, default="{}")
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime())
    # The area the import covers (the extract's bounds, or the --boundary polygon).
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=True)


class Area(Base):
    """Administrative areas: county, district, street/town, community (and the extract)."""

    __tablename__ = "areas"
    __table_args__ = (UniqueConstraint("level", "code", name="uq_areas_level_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    level: Mapped[str] = mapped_column(Text)  # county | district | street | community | extract
    parent_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    area_m2: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=False)


class Road(Base):
    """Street segments between graph nodes (OSM node ids): the routable street graph."""

    __tablename__ = "roads"
    __table_args__ = (
        UniqueConstraint("osm_id", "seq", name="uq_roads_osm_seq"),
        Index("ix_roads_osm_id", "osm_id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osm_id: Mapped[int] = mapped_column(BigInt)
    seq: Mapped[int] = mapped_column(Integer)  # segment number within the way
    u: Mapped[int] = mapped_column(BigInt)  # OSM node id at the start
    v: Mapped[int] = mapped_column(BigInt)  # OSM node id at the end
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    name_zh: Mapped[str | None] = mapped_column(Text, nullable=True)
    name_en: Mapped[str | None] = mapped_column(Text, nullable=True)
    highway: Mapped[str] = mapped_column(Text)
    oneway: Mapped[bool] = mapped_column(Boolean, default=False)
    # OSM access tags (schema version 2): who may use the way; routes leave out what a mode may not.
    access: Mapped[str | None] = mapped_column(Text, nullable=True)
    foot: Mapped[str | None] = mapped_column(Text, nullable=True)
    motor_vehicle: Mapped[str | None] = mapped_column(Text, nullable=True)
    length_m: Mapped[float] = mapped_column(Float)
    geom = mapped_column(geom("LINESTRING"), nullable=False)


class Building(Base):
    """Building footprints with households (estimated from footprint × levels unless given)."""

    __tablename__ = "buildings"
    __table_args__ = (
        UniqueConstraint("osm_type", "osm_id", name="uq_buildings_osm"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osm_type: Mapped[str] = mapped_column(Text)  # way | relation | landuse (estimate) | user
    osm_id: Mapped[int] = mapped_column(BigInt)
    building: Mapped[str | None] = mapped_column(Text, nullable=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    levels: Mapped[float | None] = mapped_column(Float, nullable=True)
    levels_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    footprint_m2: Mapped[float] = mapped_column(Float)
    households: Mapped[float] = mapped_column(Float, default=0.0)
    households_estimated: Mapped[bool] = mapped_column(Boolean, default=True)
    # "footprint" (footprint × levels), "landuse" (residential area without mapped buildings),
    # or "given" (the planner's own number).
    estimate_method: Mapped[str] = mapped_column(Text, default="footprint")
    population: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Where households come from (schema version 7): "register" (the county's register, see
    # layers/registers.py), "osm_tag" (building:flats) or "estimate". While a register supplies
    # them, households_osm/population_osm keep the values it replaced (restored by --replace).
    household_source: Mapped[str | None] = mapped_column(Text, nullable=True, default="estimate")
    households_osm: Mapped[float | None] = mapped_column(Float, nullable=True)
    population_osm: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=False)


class Barrier(Base):
    """Rivers, canals, railways and walls: lines grids should follow and routes cannot cross."""

    __tablename__ = "barriers"
    __table_args__ = (UniqueConstraint("osm_type", "osm_id", name="uq_barriers_osm"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osm_type: Mapped[str] = mapped_column(Text)
    osm_id: Mapped[int] = mapped_column(BigInt)
    kind: Mapped[str] = mapped_column(Text)  # river | canal | stream | railway | wall | water …
    subkind: Mapped[str | None] = mapped_column(Text, nullable=True)  # the OSM tag value
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    geom = mapped_column(geom("GEOMETRY"), nullable=False)


class Place(Base):
    """A named OSM place node (place=village, hamlet, town, …): rural grids name settlements after it."""

    __tablename__ = "places"
    __table_args__ = (UniqueConstraint("osm_id", name="uq_places_osm"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osm_id: Mapped[int] = mapped_column(BigInt)
    place: Mapped[str] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    geom = mapped_column(geom("POINT"), nullable=False)


class PlaceArea(Base):
    """A named village or hamlet mapped as an area (OSM place=village/hamlet/… polygons, or named
    landuse=residential): rural grids name the settlements inside it after it (schema version 14)."""

    __tablename__ = "place_areas"
    __table_args__ = (UniqueConstraint("osm_type", "osm_id", name="uq_place_areas_osm"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    osm_type: Mapped[str] = mapped_column(Text)  # way | relation
    osm_id: Mapped[int] = mapped_column(BigInt)
    place: Mapped[str] = mapped_column(Text)  # the place=* value, or "landuse=residential"
    name: Mapped[str] = mapped_column(Text)
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=False)


class Camera(Base):
    """Skynet (天网), Sharp Eyes (雪亮) and other cameras, with their field of view."""

    __tablename__ = "cameras"
    # ix_cameras_range_m: the longest range (max over an index) bounds every in-view search.
    __table_args__ = (UniqueConstraint("code", name="uq_cameras_code"), Index("ix_cameras_range_m", "range_m"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(Text)  # GB/T 28181 20-digit device code, or osm:<id>
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    project: Mapped[str] = mapped_column(Text, default="other")  # skynet | sharp_eyes | other
    azimuth_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    fov_deg: Mapped[float | None] = mapped_column(Float, nullable=True)
    range_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    height_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    camera_type: Mapped[str] = mapped_column(Text, default="fixed")  # fixed | dome | ptz
    status: Mapped[str] = mapped_column(Text, default="online")  # online | offline | fault
    secrecy_level: Mapped[int] = mapped_column(Integer, default=0)
    owner_unit: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    osm_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    geom = mapped_column(geom("POINT"), nullable=False)


class GridPlan(Base):
    """A version of the grid layout; drawing or importing grids creates a new plan."""

    __tablename__ = "grid_plans"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    created_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    method: Mapped[str] = mapped_column(Text, default="draw")  # draw | import | edit
    parent_plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    metrics_json: Mapped[str] = mapped_column(Text, default="{}")
    note: Mapped[str | None] = mapped_column(Text, nullable=True)


class Block(Base):
    """Atomic units of a plan (street blocks), the pieces grids are made of."""

    __tablename__ = "blocks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(Integer, ForeignKey("grid_plans.id"), index=True)
    block_id: Mapped[int] = mapped_column(Integer)  # stable id within the plan
    area_code: Mapped[str] = mapped_column(Text)
    grid_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    households: Mapped[float] = mapped_column(Float, default=0.0)
    buildings: Mapped[int] = mapped_column(Integer, default=0)
    street_m: Mapped[float] = mapped_column(Float, default=0.0)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    # persons (buildings' population, as households are counted); NULL in plans stored before it was kept
    population: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=False)


class Grid(Base):
    """A grid (网格) of a plan with its workload metrics."""

    __tablename__ = "grids"
    __table_args__ = (UniqueConstraint("plan_id", "code", name="uq_grids_plan_code"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int] = mapped_column(Integer, ForeignKey("grid_plans.id"), index=True)
    code: Mapped[str] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    name: Mapped[str | None] = mapped_column(Text, nullable=True)
    households: Mapped[float] = mapped_column(Float, default=0.0)
    buildings: Mapped[int] = mapped_column(Integer, default=0)
    street_m: Mapped[float] = mapped_column(Float, default=0.0)
    area_m2: Mapped[float] = mapped_column(Float, default=0.0)
    polsby_popper: Mapped[float] = mapped_column(Float, default=0.0)
    population: Mapped[float | None] = mapped_column(Float, nullable=True)  # as blocks.population
    exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(Text, nullable=True)
    station_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    station_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(geom("MULTIPOLYGON"), nullable=False)


class Route(Base):
    """A planned patrol route for a grid (or any polygon)."""

    __tablename__ = "routes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    plan_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    grid_code: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(Text, default="coverage")  # coverage | visit
    mode: Mapped[str] = mapped_column(Text)  # walk | drive
    worker_index: Mapped[int] = mapped_column(Integer, default=0)
    shift: Mapped[int | None] = mapped_column(Integer, nullable=True, default=1)  # 1…n: the grid's coverage cut into shifts
    length_m: Mapped[float] = mapped_column(Float)
    required_m: Mapped[float] = mapped_column(Float)
    lower_bound_m: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    directions_json: Mapped[str] = mapped_column(Text, default="[]")
    stats_json: Mapped[str] = mapped_column(Text, default="{}")
    geom = mapped_column(geom("LINESTRING"), nullable=False)


class Incident(Base):
    """An event in the governance closed loop (发现 → … → 回访 → closed)."""

    __tablename__ = "incidents"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    external_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime(), index=True)
    category: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    reporter: Mapped[str | None] = mapped_column(Text, nullable=True)
    state: Mapped[str] = mapped_column(Text, default="reported")
    state_since: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic locking of transitions
    grid_code: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker: Mapped[str | None] = mapped_column(Text, nullable=True)
    duplicate_of: Mapped[int | None] = mapped_column(Integer, nullable=True)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    geom = mapped_column(geom("POINT"), nullable=False)


class IncidentEvent(Base):
    """An appended transition of an incident: who moved it where, when, and why."""

    __tablename__ = "incident_events"
    __table_args__ = (UniqueConstraint("incident_id", "seq", name="uq_incident_events_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    from_state: Mapped[str | None] = mapped_column(Text, nullable=True)
    to_state: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class User(Base):
    """A user of the service with one role."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("name", name="uq_users_name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)  # admin | planner | dispatcher | worker | viewer
    password_hash: Mapped[str] = mapped_column(Text)
    max_secrecy_level: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    # Schema version 3. Tokens carry the version they were issued at and are refused once it moves
    # on (password change or reset, deactivation/reactivation, logout everywhere): a counter, not
    # a time, so revocation does not depend on clocks or on the second a token was issued in.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0", nullable=False)
    tokens_revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuditEntry(Base):
    """Every write through the service: who, when, what. Append-only (see layers/audit.py)."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    actor: Mapped[str | None] = mapped_column(Text, nullable=True)  # the name, for reading
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text, nullable=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    # Schema version 4: who by user id (None: anonymous, the command line or the system), and the
    # hash chain: each entry's SHA-256 covers its fields and the previous entry's hash.
    actor_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(Text, nullable=True)
    hash: Mapped[str | None] = mapped_column(Text, nullable=True)


class LoginThrottle(Base):
    """Failed logins per account (``user:NAME``) or client address (``addr:IP``), shared by every
    server process: failures in the current window, and until when logins are refused."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start_s: Mapped[float] = mapped_column(Float)  # seconds since the epoch
    locked_until_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # since the last success: the delay doubles



class IncidentReport(Base):
    """A report sent from the phone page: its client key (one incident per key and reporter) and the incident made."""

    __tablename__ = "incident_reports"
    __table_args__ = (UniqueConstraint("reporter", "client_key", name="uq_incident_reports_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reporter: Mapped[str] = mapped_column(Text)
    client_key: Mapped[str] = mapped_column(Text)
    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class IncidentPhoto(Base):
    """A photo of an incident (JPEG re-encoded on the server), shown only to those who may see the incident."""

    __tablename__ = "incident_photos"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(Integer, ForeignKey("incidents.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Job(Base):
    """Long work queued by a user (draw-grids, plan-routes, rebalance): its state, progress, result."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    state: Mapped[str] = mapped_column(Text, default="queued")  # queued | running | done | failed | cancelled
    created_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The lease: a running job whose heartbeat is older than the lease was lost with its worker.
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    step: Mapped[str | None] = mapped_column(Text, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    lock_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    queue_id: Mapped[int | None] = mapped_column(BigInt, nullable=True)  # procrastinate's job id (PostGIS)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class JobFile(Base):
    """A file of a job (schema version 13): the upload an import job reads (role ``input``, stored with
    the job row when it is queued, so a worker on any machine reads it from the store) or what a job
    made for its owner (role ``output``, e.g. a patrol report's XLSX)."""

    __tablename__ = "job_files"
    __table_args__ = (UniqueConstraint("job_id", "role", name="uq_job_files_job_role"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(Integer, ForeignKey("jobs.id"), index=True)
    role: Mapped[str] = mapped_column(Text)  # input | output
    name: Mapped[str] = mapped_column(Text)  # a safe file name (no directories)
    media_type: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class Track(Base):
    """A recorded GPS track (schema version 8): one row per track, its fixes as a LineString with the
    times (UTC epoch seconds) and accuracies (m) as JSON arrays aligned with the vertices."""

    __tablename__ = "tracks"
    __table_args__ = (UniqueConstraint("client_id", name="uq_tracks_client_id"), Index("ix_tracks_worker_start", "worker", "start_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(Text)  # the phone's track uuid, or one made at import
    worker: Mapped[str] = mapped_column(Text)
    device: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(Text)  # gpx | phone | api
    route_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    start_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    end_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    n_points: Mapped[int] = mapped_column(Integer, default=0)
    times_json: Mapped[str] = mapped_column(Text, default="[]")
    acc_json: Mapped[str] = mapped_column(Text, default="[]")
    fingerprint: Mapped[str | None] = mapped_column(Text, nullable=True, index=True)
    flags_json: Mapped[str] = mapped_column(Text, default="[]")  # why the track is not counted
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    geom = mapped_column(geom("LINESTRING"), nullable=True)  # null while a track has one fix


class TrackChunk(Base):
    """A chunk of a track as uploaded (schema version 8): kept so a repeated upload is recognised."""

    __tablename__ = "track_chunks"
    __table_args__ = (UniqueConstraint("track_id", "seq", name="uq_track_chunks_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(Integer, ForeignKey("tracks.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    points_json: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class EmptyBoundRow(Base):
    """A planning area's proven least number of grids of 0 households (schema version 16), kept by the digest
    of everything its proof read (gis.partition.empty_bound.area_bound_digest: the blocks' households, the
    caps and their block columns, which blocks touch, seed, work, model version), not by plan: it holds for
    every plan of those blocks. Written by draw-grids, read before solving again (layers.empty_bounds)."""

    __tablename__ = "empty_bounds"
    digest: Mapped[str] = mapped_column(Text, primary_key=True)  # hex SHA-256
    area_code: Mapped[str] = mapped_column(Text)  # which area it was proven for (for people reading the table)
    lower: Mapped[int] = mapped_column(Integer)
    relaxed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    method: Mapped[str] = mapped_column(Text)  # cp-sat | capacity
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


# Layers a user can name on the command line (export, info) and their tables.
LAYERS: dict[str, type[Base]] = {
    "areas": Area,
    "roads": Road,
    "buildings": Building,
    "barriers": Barrier,
    "places": Place,
    "place_areas": PlaceArea,
    "cameras": Camera,
    "blocks": Block,
    "grids": Grid,
    "routes": Route,
    "incidents": Incident,
    "imports": ImportRecord,
}
