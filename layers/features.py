"""Features of the layers as GeoJSON for the OGC collections: item pages, single items, counts, schema."""
from __future__ import annotations

import json
import math
from collections.abc import Collection
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.models import POINT_XY_COLUMN, POINT_XY_LAYERS
from gridpatrol.layers.store import Store
from sqlalchemy import BigInteger, ColumnElement, Table, Text, and_, func, literal_column, select

# The time column the OGC ``datetime`` parameter filters on, per layer.
TIME_COLUMN = {"incidents": "occurred_at", "routes": "created_at", "imports": "started_at"}
Box = tuple[float, float, float, float]
TimeRange = tuple[datetime | None, datetime | None]
# numberMatched is counted exactly up to this many rows; beyond it the count is left out (OGC API
# – Features makes it optional) rather than visiting every matching row of a large layer.
EXACT_COUNT_MAX = 100_000


def visible_columns(table: Table, hidden: Collection[str] = ()) -> list:
    """The columns of ``table`` without the geometry and without the ``hidden`` field names."""
    return [c for c in table.columns if c.name != "geom" and c.name not in hidden]


def is_int64(col) -> bool:  # noqa: ANN001
    """Whether integer column ``col`` may hold values beyond 32 bits (OSM ids, node ids, any id)."""
    return isinstance(col.type, BigInteger) or col.name == "id" or col.name.endswith("_id")


def property_schema(col) -> dict[str, Any]:  # noqa: ANN001
    """JSON Schema of one column as the items encode it (times as RFC 3339 text, 64-bit ids as int64)."""
    try:
        py = col.type.python_type
    except NotImplementedError:
        py = str
    if py is bool:
        out: dict[str, Any] = {"type": "boolean"}
    elif py is int:
        # GDAL's OAPIF driver (QGIS) makes 32-bit fields of plain integers and clamps bigger values.
        out = {"type": "integer", "format": "int64"} if is_int64(col) else {"type": "integer", "format": "int32"}
    elif py in (float, Decimal):
        out = {"type": "number"}
    elif py is datetime:
        out = {"type": "string", "format": "date-time"}
    elif py is date:
        out = {"type": "string", "format": "date"}
    elif py in (dict, list):
        out = {"type": "object" if py is dict else "array"}
    else:
        out = {"type": "string"}
    if col.nullable and col.name != "id":
        out["nullable"] = True  # may be null (kept out of "type", which GDAL reads as one word)
    return out


def properties_schema(table: Table, hidden: Collection[str] = ()) -> dict[str, dict[str, Any]]:
    """JSON Schema of every property a feature of ``table`` carries (the id is the feature's, not a property)."""
    return {c.name: property_schema(c) for c in visible_columns(table, hidden) if c.name != "id"}


def geometry_type(table: Table) -> str | None:
    """The geometry type of ``table`` (``"POINT"``, ``"MULTIPOLYGON"``, …), None if it has none or any."""
    kind = getattr(table.c.geom.type, "geometry_type", None) if "geom" in table.c else None
    return str(kind).upper() if kind else None


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc)


def items_where(store: Store, layer: str, table: Table, *, role_where: ColumnElement[bool] | None = None,
                hidden: Collection[str] = (), bbox: Box | None = None, time_range: TimeRange | None = None,
                equals: dict[str, str] | None = None) -> ColumnElement[bool] | None:
    """The WHERE clause of an items request (None: every row): the caller's row filter, bbox (index
    filter, then exact test), time range on the layer's time column, property equality as text."""
    conds = [] if role_where is None else [role_where]
    if bbox is not None:
        if store.is_gpkg:
            conds.append(store.bbox_filter(table, bbox))
            conds.append(func.ST_Intersects(func.GeomFromGPB(table.c.geom), func.BuildMbr(*bbox, 4326)) == 1)
        elif _point_index(layer, bbox):
            x0, y0, x1, y1 = (float(v) for v in bbox)
            conds.append(literal_column(f"{table.name}.{POINT_XY_COLUMN}").op("<@")(
                func.box(func.point(x0, y0), func.point(x1, y1))))
        else:
            # ST_Intersects brings its own ``&&`` (index support function); a second ``&&`` would
            # square the planner's estimate of the matching rows, and with 14 rows expected instead
            # of 3,900 it walks the GiST index where the primary key serves an ordered page better.
            conds.append(func.ST_Intersects(table.c.geom, func.ST_MakeEnvelope(*bbox, 4326)))
    if time_range is not None:
        col_name = TIME_COLUMN.get(layer)
        if col_name is None:
            raise InputError(f"layer {layer!r} has no time; datetime applies to {', '.join(TIME_COLUMN)}")
        col = table.c[col_name]
        start, end = time_range
        if start is not None:
            conds.append(col >= _utc(start))
        if end is not None:
            conds.append(col <= _utc(end))
    for key, value in (equals or {}).items():
        # A hidden field is as unknown as a missing one: filtering on it would tell its values.
        if key not in table.c or key == "geom" or key in hidden:
            props = ", ".join(c.name for c in visible_columns(table, hidden))
            raise InputError(f"unknown query parameter {key!r} for layer {layer!r}",
                             hint=f"filter by one of: {props}; or bbox, datetime, limit, offset")
        conds.append(func.cast(table.c[key], type_=Text()) == value)
    return and_(*conds) if conds else None


def _point_index(layer: str, bbox: Box) -> bool:
    """Whether a PostGIS bbox filter of ``layer`` reads the covering index of its point column
    (models.POINT_XY_LAYERS): ``geom_xy <@ box`` is the same rows as ST_Intersects(geom, envelope),
    found, counted and ordered by id without a heap visit each. A box of one point is an empty
    envelope to ST_Intersects (no row), so it is left to ST_Intersects."""
    return layer in POINT_XY_LAYERS and (bbox[0] < bbox[2] or bbox[1] < bbox[3])


def _bbox_sql(table: Table, layer: str, bbox: Box) -> tuple[str, dict[str, float]]:
    """:func:`items_where`'s PostGIS bbox condition as SQL text and psycopg parameters (built
    without SQLAlchemy: the item pages' hot path)."""
    params = {f"gp_{k}": float(v) for k, v in zip(("x0", "y0", "x1", "y1"), bbox)}
    if _point_index(layer, bbox):
        return (f"{table.name}.{POINT_XY_COLUMN} <@ box(point(%(gp_x0)s, %(gp_y0)s), point(%(gp_x1)s, %(gp_y1)s))",
                params)
    return f"ST_Intersects({table.name}.geom, ST_MakeEnvelope(%(gp_x0)s, %(gp_y0)s, %(gp_x1)s, %(gp_y1)s, 4326))", params


def _props(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, datetime):
            v = (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).isoformat()
        elif isinstance(v, float) and not math.isfinite(v):
            v = None
        elif isinstance(v, (bytes, memoryview)):
            continue
        out[k] = v
    return out


def _features(rows: list) -> list[dict[str, Any]]:
    geoms = shapely.from_wkb([bytes(r.geom_wkb) if r.geom_wkb is not None else None for r in rows])
    out = []
    for r, g in zip(rows, geoms):
        m = dict(r._mapping)
        m.pop("geom_wkb")
        fid = m.pop("id")
        out.append({"type": "Feature", "id": fid,
                    "geometry": json.loads(shapely.to_geojson(g)) if g is not None else None,
                    "properties": _props(m)})
    return out


def count_matched(store: Store, layer: str, table: Table, **where: Any) -> int | None:
    """How many rows of ``layer`` match an items request's filters (:func:`items_where`); None
    beyond :data:`EXACT_COUNT_MAX`."""
    cond = items_where(store, layer, table, **where)
    inner = select(literal_column("1")).select_from(table)
    if cond is not None:
        inner = inner.where(cond)
    stmt = select(func.count()).select_from(inner.limit(EXACT_COUNT_MAX + 1).subquery())
    with store.engine.connect() as conn:
        n = int(conn.execute(stmt).scalar_one())
    return n if n <= EXACT_COUNT_MAX else None


def _query_rows(store: Store, layer: str, table: Table, *, seek: ColumnElement[bool] | None = None,
                limit: int, offset: int, **where: Any) -> list[dict[str, Any]]:
    cond = items_where(store, layer, table, **where)
    conds = [c for c in (cond, seek) if c is not None]
    stmt = select(*visible_columns(table, where.get("hidden", ())), func.ST_AsBinary(table.c.geom).label("geom_wkb"))
    if conds:
        stmt = stmt.where(and_(*conds))
    stmt = stmt.order_by(table.c.id).limit(limit).offset(offset)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return _features(rows)


def query_items(store: Store, layer: str, *, role_where: ColumnElement[bool] | None = None,
                hidden: Collection[str] = (), bbox: Box | None = None, time_range: TimeRange | None = None,
                equals: dict[str, str] | None = None, limit: int = 100, offset: int = 0,
                ) -> tuple[list[dict[str, Any]], int]:
    """GeoJSON features of ``layer`` (rows matching ``role_where``, without ``hidden`` fields) and
    the number matched, ordered by id so that offsets page stably.

    ``bbox`` (WGS-84) selects features whose geometry intersects it; ``time_range`` filters the
    layer's time column; ``equals`` compares columns as text."""
    table = store.table(layer)
    where = items_where(store, layer, table, role_where=role_where, hidden=hidden, bbox=bbox,
                        time_range=time_range, equals=equals)
    stmt = select(*visible_columns(table, hidden), func.ST_AsBinary(table.c.geom).label("geom_wkb"))
    count_stmt = select(func.count()).select_from(table)
    if where is not None:
        stmt, count_stmt = stmt.where(where), count_stmt.where(where)
    stmt = stmt.order_by(table.c.id).limit(limit).offset(offset)
    with store.engine.connect() as conn:
        matched = int(conn.execute(count_stmt).scalar_one())
        rows = conn.execute(stmt).all() if offset < matched else []
    return _features(rows), matched


def _properties_sql(table: Table, hidden: Collection[str]) -> str:
    """SQL of a row's properties (alias ``p``) as jsonb: every visible column but id and geometry.

    The same text ``to_jsonb(p) - ARRAY[…]`` gives (each value converted alike, keys sorted as
    jsonb sorts them), without converting the geometry to GeoJSON and parsing it only to drop it."""
    pairs = [f"'{c.name}', p.\"{c.name}\"" for c in visible_columns(table, hidden) if c.name != "id"]
    if not pairs:
        return "'{}'::jsonb"
    # jsonb_build_object takes at most 100 arguments (50 pairs).
    return " || ".join(f"jsonb_build_object({', '.join(pairs[i:i + 50])})" for i in range(0, len(pairs), 50))


# Compiled WHERE clauses by the clause's structure (SQLAlchemy's cache key, which leaves the bound
# values out): an item page compiles its filters once per shape, not once per request.
_COMPILED: dict[tuple[str, Any], Any] = {}


def compiled_where(where: ColumnElement[bool], dialect: Any) -> tuple[str, dict[str, Any]]:  # noqa: ANN401
    """The SQL text of ``where`` for ``dialect`` and this clause's bound values, as
    ``where.compile(dialect=dialect)`` gives them; compiled once per shape of clause."""
    key = where._generate_cache_key()
    if key is None:  # a clause SQLAlchemy cannot cache
        compiled = where.compile(dialect=dialect)
        return str(compiled), compiled.params
    hit = _COMPILED.get((dialect.name, key.key))
    if hit is None:
        if len(_COMPILED) > 1000:
            _COMPILED.clear()
        hit = _COMPILED[(dialect.name, key.key)] = where.compile(dialect=dialect, cache_key=key)
    return str(hit), hit.construct_params(extracted_parameters=key.bindparams)


def page_statement(store: Store, layer: str, *, role_where: ColumnElement[bool] | None = None,
                   hidden: Collection[str] = (), bbox: Box | None = None, time_range: TimeRange | None = None,
                   equals: dict[str, str] | None = None, limit: int = 100, offset: int = 0,
                   after: int | None = None, count: bool = True) -> tuple[str, dict[str, Any]]:
    """:func:`items_page` on PostGIS as one statement and its (psycopg) parameters: the features
    built as GeoJSON text in the database. Run it with :data:`PAGE_SETTINGS` (times in UTC) and
    read its one row with :func:`page_result`.

    Coordinates keep 15 decimals (they read back as the same doubles); times are RFC 3339 in UTC."""
    table = store.table(layer)
    where = items_where(store, layer, table, role_where=role_where, hidden=hidden, time_range=time_range,
                        equals=equals)
    params: dict[str, Any] = {"gp_limit": int(limit) + 1, "gp_offset": 0 if after is not None else int(offset),
                              "gp_cap": EXACT_COUNT_MAX + 1}
    conds = []
    if where is not None:
        text, values = compiled_where(where, store.engine.dialect)
        conds.append(f"({text})")
        params.update(values)
    if bbox is not None:
        text, values = _bbox_sql(table, layer, bbox)
        conds.append(text)
        params.update(values)
    cond = " AND ".join(conds) or "true"
    seek = ""
    if after is not None:
        # With a bbox, ``id + 0``: a bitmap of every id after the cursor (most of the table, 165 ms
        # at a million rows) ANDed with the GiST bitmap costs more than the GiST matches sorted.
        seek, params["gp_after"] = f" AND id{' + 0' if bbox is not None else ''} > %(gp_after)s", int(after)
    name = table.name
    # Text, not json values: the geometry is not parsed again on the way. The id is the
    # feature's own; the hidden fields are left out.
    feature = ("'{\"type\": \"Feature\", \"id\": ' || p.id || ', \"geometry\": ' || "
               f"COALESCE(ST_AsGeoJSON(p.geom, 15), 'null') || ', \"properties\": ' || "
               f"({_properties_sql(table, hidden)}) || '}}'")
    body = (f"(SELECT '[' || COALESCE(string_agg({feature}, ', ' ORDER BY p.id), '') || ']' "
            f"FROM {name} p WHERE p.id IN (SELECT id FROM pg WHERE n <= %(gp_limit)s - 1))")
    last = "(SELECT max(id) FROM pg WHERE n <= %(gp_limit)s - 1)"
    # The page's ids (one more than the page, to know whether a next page exists), then the rows.
    if bbox is not None and count and after is None:
        # The matching ids come from the GiST index once and serve both the count and the page.
        sql = (f"WITH m AS MATERIALIZED (SELECT id FROM {name} WHERE {cond}), "
               "pg AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM "
               "(SELECT id FROM m ORDER BY id LIMIT %(gp_limit)s OFFSET %(gp_offset)s) s) "
               f"SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM pg), {last}, {body}")
    else:
        # The planner picks the primary key walk or the GiST index, as for the same raw SQL. The
        # exact count stops after EXACT_COUNT_MAX rows (None beyond).
        counted = f"(SELECT count(*) FROM (SELECT 1 FROM {name} WHERE {cond} LIMIT %(gp_cap)s) c)" if count else "NULL"
        sql = (f"WITH pg AS MATERIALIZED (SELECT id, row_number() OVER (ORDER BY id) AS n FROM "
               f"(SELECT id FROM {name} WHERE {cond}{seek} ORDER BY id LIMIT %(gp_limit)s OFFSET %(gp_offset)s) s) "
               f"SELECT {counted}, (SELECT count(*) FROM pg), {last}, {body}")
    return sql, params


# The session settings :func:`page_statement` runs with. Times are written in UTC. A page is
# 100-odd rows: compiling it (JIT, 40 ms at a cost above jit_above_cost) or starting parallel
# workers (while the other clients wait for the cores) never pays.
PAGE_SETTINGS = {"TimeZone": "UTC", "jit": "off", "max_parallel_workers_per_gather": "0"}


def page_result(row: tuple, limit: int) -> tuple[str, int | None, int, int | None]:
    """:func:`items_page`'s answer from the row of :func:`page_statement`."""
    matched, fetched, last_id, feats = row
    matched = None if matched is None or matched > EXACT_COUNT_MAX else int(matched)
    return feats, matched, min(int(fetched), int(limit)), int(last_id) if int(fetched) > int(limit) else None


def _page_sql(store: Store, layer: str, **kw: Any) -> tuple[str, int | None, int, int | None]:
    sql, params = page_statement(store, layer, **kw)
    with store.engine.connect() as conn:
        for key, value in PAGE_SETTINGS.items():
            conn.exec_driver_sql(f"SET LOCAL {key} = '{value}'")
        return page_result(conn.exec_driver_sql(sql, params).one(), kw["limit"])


def items_page(store: Store, layer: str, *, role_where: ColumnElement[bool] | None = None,
               hidden: Collection[str] = (), bbox: Box | None = None, time_range: TimeRange | None = None,
               equals: dict[str, str] | None = None, limit: int = 100, offset: int = 0,
               after: int | None = None, count: bool = True) -> tuple[str, int | None, int, int | None]:
    """One page of :func:`query_items` as a JSON array text: (features, number matched, number
    returned, the page's last id if more rows follow, else None).

    ``after`` (keyset paging) starts after that id instead of skipping ``offset`` rows. The number
    matched is None when ``count`` is false or more than :data:`EXACT_COUNT_MAX` rows match."""
    kw = {"role_where": role_where, "hidden": hidden, "bbox": bbox, "time_range": time_range, "equals": equals,
          "limit": limit, "offset": offset}
    if not store.is_gpkg:
        return _page_sql(store, layer, after=after, count=count, **kw)
    table = store.table(layer)
    seek = None if after is None else table.c.id > int(after)
    feats = _query_rows(store, layer, table, seek=seek, **{**kw, "limit": limit + 1,
                                                         "offset": 0 if after is not None else offset})
    matched = count_matched(store, layer, table, **{k: kw[k] for k in ("role_where", "hidden", "bbox", "time_range",
                                                                        "equals")}) if count else None
    more = feats[limit - 1]["id"] if len(feats) > limit else None
    return json.dumps(feats[:limit], ensure_ascii=False), matched, min(len(feats), limit), more


def get_item(store: Store, layer: str, feature_id: int, *, role_where: ColumnElement[bool] | None = None,
             hidden: Collection[str] = ()) -> dict[str, Any] | None:
    """Feature ``feature_id`` of ``layer`` as GeoJSON, None if it does not exist or ``role_where`` hides it."""
    table = store.table(layer)
    conds = [table.c.id == feature_id] + ([] if role_where is None else [role_where])
    stmt = select(*visible_columns(table, hidden), func.ST_AsBinary(table.c.geom).label("geom_wkb")).where(and_(*conds))
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return _features(rows)[0] if rows else None


_XSD_TYPES = {"integer": "int", "number": "double", "boolean": "boolean", "string": "string"}
_XSD_GEOMETRY = {"POINT": "Point", "LINESTRING": "LineString", "POLYGON": "Polygon", "MULTIPOINT": "MultiPoint",
                 "MULTILINESTRING": "MultiLineString", "MULTIPOLYGON": "MultiPolygon"}


def properties_xsd(table: Table, layer: str, hidden: Collection[str] = ()) -> str:
    """A GML 3.2 application schema (XSD) of ``layer``'s features: the same properties as
    :func:`properties_schema`, with 64-bit integers as ``xs:long``.

    GDAL's OAPIF driver (3.12) reads JSON Schema integers as 32-bit whatever their ``format``;
    from an XML schema it takes ``xs:long`` as a 64-bit field."""
    rows = []
    for name, spec in properties_schema(table, hidden).items():
        if spec.get("format") == "int64":
            kind = "long"
        elif spec.get("format") in ("date-time", "date"):
            kind = "dateTime" if spec["format"] == "date-time" else "date"
        else:
            kind = _XSD_TYPES.get(spec["type"], "string")
        optional = ' minOccurs="0" nillable="true"' if spec.get("nullable") else ""
        rows.append(f'        <xs:element name="{name}" type="xs:{kind}"{optional}/>')
    geom = _XSD_GEOMETRY.get(geometry_type(table) or "", "Geometry")
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:gml="http://www.opengis.net/gml/3.2"',
        '           xmlns:gp="urn:gridpatrol:features" targetNamespace="urn:gridpatrol:features"',
        '           elementFormDefault="qualified" version="1.0">',
        '  <xs:import namespace="http://www.opengis.net/gml/3.2"/>',
        f'  <xs:element name="{layer}" type="gp:{layer}Type" substitutionGroup="gml:AbstractFeature"/>',
        f'  <xs:complexType name="{layer}Type">',
        '    <xs:complexContent>',
        '      <xs:extension base="gml:AbstractFeatureType">',
        '        <xs:sequence>',
        f'        <xs:element name="geometry" type="gml:{geom}PropertyType" minOccurs="0" nillable="true"/>',
        *rows,
        '        </xs:sequence>',
        '      </xs:extension>',
        '    </xs:complexContent>',
        '  </xs:complexType>',
        '</xs:schema>',
        '',
    ])
