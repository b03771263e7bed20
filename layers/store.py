"""Open a store (GeoPackage file or PostGIS) by URL and move GeoDataFrames in and out of it."""
from __future__ import annotations

# pyogrio must be imported before mod_spatialite is loaded into the process: the other order
# segfaults when pyogrio later reads a file (GDAL and SpatiaLite share symbols).
import pyogrio  # noqa: F401  isort:skip

import contextlib
import functools
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from geoalchemy2 import functions as gfunc
from gridpatrol.gis.errors import InputError, NotFoundError, StoreError
from gridpatrol.layers import migrations
from gridpatrol.layers.models import LAYERS, SRID, Base
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Table,
    and_,
    column,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy import table as sql_table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles

DEFAULT_URL = "gpkg:///gridpatrol.gpkg"
SPATIALITE = os.environ.get("SPATIALITE_LIBRARY_PATH", "mod_spatialite")
os.environ.setdefault("SPATIALITE_LIBRARY_PATH", SPATIALITE)


@compiles(gfunc.ST_GeomFromEWKT, "geopackage")
def _gpkg_geom_from_ewkt(element, compiler, **kw):  # noqa: ANN001
    # GeoAlchemy2 binds geometries through GeomFromEWKT, which yields a SpatiaLite blob; the
    # GeoPackage standard (and QGIS) expects GPKG binary, so wrap every bind in AsGPB.
    return f"AsGPB(GeomFromEWKT({compiler.process(element.clauses, **kw)}))"


def _load_gpkg(dbapi_conn, _record) -> None:  # noqa: ANN001
    from geoalchemy2.admin.dialects.geopackage import init_geopackage

    # Not GeoAlchemy2's load_spatialite_gpkg: its AutoGpkgStart() writes VirtualGPKG wrapper
    # tables into the file on every connection. Amphibious mode is all the SQL needs (SpatiaLite
    # functions read GPKG blobs); AsGPB in binds writes proper GPKG geometries.
    dbapi_conn.enable_load_extension(True)
    dbapi_conn.load_extension(SPATIALITE)
    dbapi_conn.enable_load_extension(False)
    dbapi_conn.execute("SELECT EnableGpkgAmphibiousMode()")
    init_geopackage(dbapi_conn)
    cur = dbapi_conn.cursor()
    # GeoPackage application id ("GPKG") and version 1.2, so GDAL/QGIS accept the file cleanly.
    # Only when not yet set: rewriting the header would change the file on every open, and a
    # failed import must leave the store byte-for-byte as it was.
    if cur.execute("PRAGMA application_id").fetchone()[0] != 1196444487:
        cur.execute("PRAGMA application_id = 1196444487")
        cur.execute("PRAGMA user_version = 10200")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.execute("PRAGMA busy_timeout = 30000")
    cur.close()


def resolve_url(url: str | None = None) -> str:
    """The store URL to use: the argument, else ``GRIDPATROL_DB``, else ``./gridpatrol.gpkg``."""
    url = url or os.environ.get("GRIDPATROL_DB") or DEFAULT_URL
    if url.endswith(".gpkg") and "://" not in url:
        url = "gpkg:///" + url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def gpkg_path(url: str) -> Path | None:
    """The file path of a GeoPackage URL, or None for other stores."""
    if url.startswith("gpkg:///"):
        return Path(url[len("gpkg:///"):])
    return None


def libpq_conninfo(url: Any) -> str:
    """The libpq connection string of a PostgreSQL URL (str or SQLAlchemy URL), query options included.

    The one translation from the store's URL to what psycopg clients outside SQLAlchemy take (the async
    pool of the API, procrastinate's connector).
    """
    from psycopg.conninfo import make_conninfo
    from sqlalchemy.engine import make_url

    url = make_url(url) if isinstance(url, str) else url
    kw: dict[str, Any] = {"dbname": url.database, "user": url.username, "password": url.password,
                          "host": url.host, "port": url.port}
    kw.update({k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()})
    return make_conninfo(**{k: v for k, v in kw.items() if v is not None})

def hide_password(url: str) -> str:
    """``url`` (a store URL) with its password shown as ``***``, for messages and logs."""
    return re.sub(r"//([^:/@]*):[^@]*@", r"//\1:***@", url)


def _passwords(url: str) -> set[str]:
    """The password of ``url`` (a URL or a libpq ``key=value`` string) as written and as libpq reads it."""
    from urllib.parse import unquote

    found = set(re.findall(r"//[^:/@]*:([^@]*)@", url))
    found |= {unquote(p) for p in found}
    try:
        from psycopg.conninfo import conninfo_to_dict

        found.add(str(conninfo_to_dict(url.replace("postgresql+psycopg://", "postgresql://", 1)).get("password") or ""))
    except Exception:  # noqa: BLE001  a string libpq cannot read: the patterns above are all we know
        found |= {m.strip("'") for m in re.findall(r"\bpassword\s*=\s*('[^']*'|\S+)", url)}
    return {p for p in found if p}


def db_error_line(exc: BaseException, url: str | None = None) -> str:
    """The first line of database error ``exc`` for a one-line message: the driver's own error when
    SQLAlchemy wraps one, at most 200 characters, with the password of ``url`` (the store or replica URL
    or libpq string it was reaching) and of any URL in the text shown as ``***``."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    line = hide_password((text.splitlines() or [type(exc).__name__])[0])
    for secret in sorted(_passwords(url or ""), key=len, reverse=True):
        line = line.replace(secret, "***")
    return line[:200]


@dataclass
class Store:
    """An open store: a SQLAlchemy engine plus the dialect-specific spatial helpers."""

    url: str
    engine: Engine

    @property
    def dialect(self) -> str:
        """``"geopackage"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @property
    def is_gpkg(self) -> bool:
        return self.dialect == "geopackage"

    @functools.cached_property
    def postgres_dsn(self) -> str | None:
        """The libpq URL of a PostGIS store, for async clients (None on GeoPackage)."""
        if self.is_gpkg:
            return None
        return libpq_conninfo(self.engine.url)

    def display_url(self) -> str:
        """The URL without a password, for messages and ``info``."""
        return hide_password(self.url)

    @contextlib.contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction: committed on success, rolled back on any error."""
        with self.engine.begin() as conn:
            yield conn

    def first_row(self, stmt: Any, conn: Connection | None = None) -> Any:
        """The first row of ``stmt`` (None if none), on ``conn`` or on a connection of its own."""
        if conn is not None:
            return conn.execute(stmt).first()
        with self.engine.connect() as c:
            return c.execute(stmt).first()

    def table(self, name: str) -> Table:
        """The table of layer ``name``; NotFoundError lists the layers that exist."""
        model = LAYERS.get(name)
        if model is None:
            raise NotFoundError(
                f"unknown layer {name!r}", hint="layers: " + ", ".join(sorted(LAYERS))
            )
        return model.__table__

    def bbox_filter(self, table: Table, bbox: Sequence[float]):
        """A WHERE clause selecting rows of ``table`` whose geometry meets ``bbox``.

        ``bbox`` is (min_lon, min_lat, max_lon, max_lat) in WGS-84. The clause uses the spatial
        index on both stores: the GeoPackage R-tree through an explicit subquery (SpatiaLite does
        not use it otherwise), PostGIS's GiST index through ``&&``.
        """
        minx, miny, maxx, maxy = (float(v) for v in bbox)
        if self.is_gpkg:
            pk = table.primary_key.columns.values()[0]
            rtree = text(
                f"SELECT id FROM rtree_{table.name}_geom "
                "WHERE minx <= :bb_maxx AND maxx >= :bb_minx AND miny <= :bb_maxy AND maxy >= :bb_miny"
            ).bindparams(bb_minx=minx, bb_miny=miny, bb_maxx=maxx, bb_maxy=maxy)
            return pk.in_(rtree.columns(column("id", Integer)))
        env = func.ST_MakeEnvelope(minx, miny, maxx, maxy, SRID)
        return table.c.geom.op("&&")(env)

    def read_layer(
        self,
        name: str,
        *,
        bbox: Sequence[float] | None = None,
        where: Any = None,
        conn: Connection | None = None,
    ) -> gpd.GeoDataFrame:
        """Rows of layer ``name`` as a GeoDataFrame in EPSG:4326 (index: the row id)."""
        table = self.table(name)
        cols = [c for c in table.columns if c.name != "geom"]
        stmt = select(*cols, func.ST_AsBinary(table.c.geom).label("geom_wkb"))
        conds = []
        if bbox is not None:
            conds.append(self.bbox_filter(table, bbox))
        if where is not None:
            conds.append(where)
        if conds:
            stmt = stmt.where(and_(*conds))
        stmt = stmt.order_by(table.c.id)
        with contextlib.ExitStack() as stack:
            c = conn if conn is not None else stack.enter_context(self.engine.connect())
            rows = c.execute(stmt).all()
        df = pd.DataFrame(rows, columns=[c.name for c in cols] + ["geom_wkb"])
        wkb = df.pop("geom_wkb").to_numpy(dtype=object)
        geoms = shapely.from_wkb([bytes(w) if w is not None else None for w in wkb])
        gdf = gpd.GeoDataFrame(df, geometry=geoms, crs=f"EPSG:{SRID}")
        return gdf.set_index("id", drop=False).rename_axis(None)

    def insert_gdf(self, conn: Connection, name: str, gdf: gpd.GeoDataFrame) -> int:
        """Insert ``gdf`` (EPSG:4326; columns named as the table's) into layer ``name``.

        Columns the table lacks are ignored; returns the number of rows inserted.
        """
        if gdf is None or len(gdf) == 0:
            return 0
        table = self.table(name) if name in LAYERS else Base.metadata.tables[name]
        if gdf.crs is not None and not gdf.crs.equals(f"EPSG:{SRID}"):
            gdf = gdf.to_crs(SRID)
        names = [c.name for c in table.columns if c.name not in ("id", "geom")]
        present = [n for n in names if n in gdf.columns]
        wkt = shapely.to_wkt(gdf.geometry.values, rounding_precision=-1)
        ewkt = [None if w is None else "SRID=4326;" + w for w in wkt]
        data = gdf[present].astype(object).where(pd.notna(gdf[present]), None)
        records = data.to_dict("records")
        for rec, g in zip(records, ewkt):
            rec["geom"] = g
            for k, v in rec.items():
                if isinstance(v, np.generic):
                    rec[k] = v.item()
        chunk = 5000
        for i in range(0, len(records), chunk):
            conn.execute(table.insert(), records[i : i + chunk])
        return len(records)

    def count(self, name: str, *, where: Any = None) -> int:
        """Number of rows in layer ``name`` (only those matching ``where``, a row filter, if given)."""
        table = self.table(name)
        stmt = select(func.count()).select_from(table)
        if where is not None:
            stmt = stmt.where(where)
        with self.engine.connect() as c:
            return int(c.execute(stmt).scalar_one())

    def extent(self, name: str, *, where: Any = None) -> tuple[float, float, float, float] | None:
        """(min_lon, min_lat, max_lon, max_lat) of layer ``name``, None when empty.

        With ``where`` (a row filter, e.g. what a user may see) only the matching rows count: an
        extent over hidden rows would show where they are."""
        table = self.table(name)
        if self.is_gpkg:
            # The R-tree holds every row's box: min/max over it (for the rows that match) is
            # cheaper than reading the geometries.
            rtree = sql_table(f"rtree_{table.name}_geom", column("id", Integer), column("minx"), column("miny"),
                              column("maxx"), column("maxy"))
            stmt = select(func.min(rtree.c.minx), func.min(rtree.c.miny), func.max(rtree.c.maxx), func.max(rtree.c.maxy))
            if where is not None:
                stmt = stmt.where(rtree.c.id.in_(select(table.c.id).where(where)))
        else:
            ext = func.ST_Extent(table.c.geom)
            stmt = select(func.ST_XMin(ext), func.ST_YMin(ext), func.ST_XMax(ext), func.ST_YMax(ext))
            if where is not None:
                stmt = stmt.where(where)
        with self.engine.connect() as c:
            row = c.execute(stmt).one()
        if row[0] is None:
            return None
        return tuple(float(v) for v in row)  # type: ignore[return-value]

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def open_store(url: str | None = None, *, create: bool = True) -> Store:
    """Open (and on first use create, then migrate) the store at ``url``.

    ``gpkg:///path.gpkg`` (the default ``./gridpatrol.gpkg``) is the embedded GeoPackage store;
    ``postgresql+psycopg://user@host/db`` is PostGIS. With ``create=False`` a missing
    GeoPackage file is an error instead of being created.
    """
    url = resolve_url(url)
    if url.startswith("gpkg:///"):
        path = gpkg_path(url)
        assert path is not None
        if not create and not path.exists():
            raise NotFoundError(f"store {path} does not exist", hint="import data first, e.g. gridpatrol import-osm")
        if path.exists() and path.is_dir():
            raise InputError(f"store path {path} is a directory, not a GeoPackage file")
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise StoreError(f"{path} is not a GeoPackage (SQLite) file", hint="pass another --db")
        import pysqlite3.dbapi2 as sqlite  # sqlite3 of the stdlib cannot load extensions

        engine = create_engine(url, module=sqlite, connect_args={"timeout": 30})
        event.listen(engine, "connect", _load_gpkg)
    elif url.startswith("postgresql+psycopg://"):
        engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
    else:
        raise InputError(
            f"unsupported store URL {url!r}",
            hint="use a .gpkg path, gpkg:///path.gpkg or postgresql+psycopg://user@host/db",
        )
    store = Store(url=url, engine=engine)
    try:
        migrations.upgrade(store.engine)
    except SQLAlchemyError as exc:
        engine.dispose()
        raise StoreError(f"cannot open store {store.display_url()}: {db_error_line(exc, url)}") from None
    return store
