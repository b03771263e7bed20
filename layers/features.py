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
from gridpatrol.layers.store import Store
from sqlalchemy import BigInteger, ColumnElement, Table, Text, and_, func, select

# The time column the OGC ``datetime`` parameter filters on, per layer.
TIME_COLUMN = {"incidents": "occurred_at", "routes": "created_at", "imports": "started_at"}
Box = tuple[float, float, float, float]
TimeRange = tuple[datetime | None, datetime | None]


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
        conds.append(store.bbox_filter(table, bbox))
        if store.is_gpkg:
            conds.append(func.ST_Intersects(func.GeomFromGPB(table.c.geom), func.BuildMbr(*bbox, 4326)) == 1)
        else:
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


def _page_sql(store: Store, layer: str, *, role_where: ColumnElement[bool] | None, hidden: Collection[str],
              bbox: Box | None, time_range: TimeRange | None, equals: dict[str, str] | None,
              limit: int, offset: int) -> tuple[str, int, int]:
    """:func:`items_page` on PostGIS, the features built as GeoJSON text in the database in one statement.

    With a bbox the matching ids come from the GiST index once (a materialized CTE) and serve
    both the count and the page. Coordinates keep 15 decimals (they read back as the same
    doubles); times are RFC 3339 in UTC."""
    table = store.table(layer)
    where = items_where(store, layer, table, role_where=role_where, hidden=hidden, bbox=bbox,
                        time_range=time_range, equals=equals)
    params: dict[str, Any] = {"gp_limit": int(limit), "gp_offset": int(offset)}
    cond = "true"
    if where is not None:
        compiled = where.compile(dialect=store.engine.dialect)
        cond = str(compiled)
        params.update(compiled.params)
    name = table.name
    # The geometry, the id (the feature's own) and the hidden fields (plain column names of the
    # model) are taken out of the properties.
    drop = ", ".join(f"'{c}'" for c in sorted({"geom", "id", *hidden}))
    # Text, not json values: the geometry is not parsed again on the way.
    feature = ("'{\"type\": \"Feature\", \"id\": ' || p.id || ', \"geometry\": ' || "
               f"COALESCE(ST_AsGeoJSON(p.geom, 15), 'null') || ', \"properties\": ' || (to_jsonb(p) - ARRAY[{drop}]) || '}}'")
    if bbox is not None:
        sql = (f"WITH m AS MATERIALIZED (SELECT id FROM {name} WHERE {cond}), "
               "pg AS (SELECT id FROM m ORDER BY id LIMIT %(gp_limit)s OFFSET %(gp_offset)s) "
               "SELECT (SELECT count(*) FROM m), (SELECT count(*) FROM pg), "
               f"(SELECT '[' || COALESCE(string_agg({feature}, ', ' ORDER BY p.id), '') || ']' "
               f"FROM {name} p WHERE p.id IN (SELECT id FROM pg))")
    else:
        sql = (f"WITH pg AS MATERIALIZED (SELECT * FROM {name} WHERE {cond} "
               "ORDER BY id LIMIT %(gp_limit)s OFFSET %(gp_offset)s) "
               f"SELECT (SELECT count(*) FROM {name} WHERE {cond}), (SELECT count(*) FROM pg), "
               f"(SELECT '[' || COALESCE(string_agg({feature}, ', ' ORDER BY p.id), '') || ']' FROM pg p)")
    with store.engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL TimeZone = 'UTC'")
        matched, returned, features = conn.exec_driver_sql(sql, params).one()
    return features, int(matched), int(returned)


def items_page(store: Store, layer: str, *, role_where: ColumnElement[bool] | None = None,
               hidden: Collection[str] = (), bbox: Box | None = None, time_range: TimeRange | None = None,
               equals: dict[str, str] | None = None, limit: int = 100, offset: int = 0) -> tuple[str, int, int]:
    """One page of :func:`query_items` as a JSON array text: (features, number matched, number returned)."""
    kw = {"role_where": role_where, "hidden": hidden, "bbox": bbox, "time_range": time_range, "equals": equals,
          "limit": limit, "offset": offset}
    if not store.is_gpkg:
        return _page_sql(store, layer, **kw)
    feats, matched = query_items(store, layer, **kw)
    return json.dumps(feats, ensure_ascii=False), matched, len(feats)


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
