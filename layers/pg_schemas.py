"""Throw-away PostGIS stores: a new schema on a PostgreSQL database and the store URL that uses it,
and dropping it again (the benchmarks' and the tests' fresh stores)."""
from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text


def schema_url(db_url: str, schema: str) -> str:
    """The store URL of ``schema`` on the database at ``db_url`` (its search_path: the schema, then public)."""
    return db_url + ("&" if "?" in db_url else "?") + f"options=-csearch_path%3D{schema},public"


def new_schema(db_url: str, prefix: str, *, postgis: bool = False) -> tuple[str, str]:
    """Create a schema named ``prefix`` and random hex on the database at ``db_url`` (with
    ``postgis``: first the PostGIS extension if missing); (its store URL, its name)."""
    schema = prefix + uuid.uuid4().hex[:10]
    eng = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        if postgis:
            c.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        c.execute(text(f"CREATE SCHEMA {schema}"))
    eng.dispose()
    return schema_url(db_url, schema), schema


def drop_schema(db_url: str, schema: str) -> None:
    """Drop ``schema`` (if it exists) with everything in it from the database at ``db_url``."""
    eng = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    eng.dispose()
