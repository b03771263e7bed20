"""Pieces every file import shares: replacing rows by key, text cells, the bad-rows error, the import record."""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.layers.models import SRID, utcnow
from gridpatrol.layers.plan_base import record_write
from gridpatrol.layers.store import Store
from sqlalchemy import Connection, Table, and_, delete, or_

if TYPE_CHECKING:
    from gridpatrol.layers.cameras import RowProblem

def load_json_table(data: bytes, label: str) -> tuple[str, Any]:
    """A JSON file of records: ``("features", doc)`` for a GeoJSON FeatureCollection, ``("records",
    rows)`` for a flat array of objects; anything else is an :class:`InputError` naming ``label``."""
    try:
        doc = json.loads(data.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{label} is not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{label}: JSON nested too deeply",
                         hint="send a GeoJSON FeatureCollection or a flat array of records") from None
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        if not isinstance(doc.get("features"), list):
            raise InputError(f"{label}: a FeatureCollection needs a 'features' array")
        return "features", doc
    if isinstance(doc, list) and all(isinstance(r, dict) for r in doc):
        return "records", doc
    raise InputError(f"{label}: expected a GeoJSON FeatureCollection or a JSON array of records")


def chunks(seq: list, n: int = 500) -> Iterable[list]:
    """``seq`` in lists of at most ``n`` (SQL parameter limits)."""
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def delete_by_keys(conn: Connection, table: Table, cols: list[str], keys: list[tuple]) -> None:
    """Delete rows whose key columns match ``keys`` (so a re-import replaces, not duplicates)."""
    if not keys:
        return
    for part in chunks(keys):
        if len(cols) == 1:
            cond = table.c[cols[0]].in_([k[0] for k in part])
        else:
            cond = or_(*[and_(*[table.c[c] == v for c, v in zip(cols, k)]) for k in part])
        conn.execute(delete(table).where(cond))


def text_cells(s: pd.Series) -> pd.Series:
    """Cells as stripped text, blanks as ""."""
    return s.astype(object).where(s.notna(), "").astype(str).str.strip()


def bad_rows_error(path: Path, problems: list[RowProblem], what: str) -> InputError:
    """The InputError listing the bad rows of ``path`` (the first 25) when nothing was imported."""
    shown = "\n  ".join(str(p) for p in problems[:25])
    more = f"\n  … and {len(problems) - 25} more" if len(problems) > 25 else ""
    n_rows = len({p.row for p in problems})
    return InputError(
        f"{n_rows} bad {what} row(s); nothing was imported:\n  {shown}{more}",
        where=str(path), hint="fix the rows, or pass --skip-bad to import the good rows and list the bad ones",
    )


def record_import(store: Store, conn: Connection, kind: str, path: Path, sha: str, started: Any,
                   counts: dict, dropped: dict, options: dict, geoms: gpd.GeoSeries) -> None:
    """Record an import (file, hash, options, counts, the hull of what it brought) in the imports table."""
    hull = shapely.convex_hull(shapely.union_all(geoms.values)).buffer(1e-5)
    rec = gpd.GeoDataFrame([{
        "kind": kind, "source_path": str(path.resolve()), "source_sha256": sha,
        "source_bytes": path.stat().st_size, "options_json": json.dumps(options, ensure_ascii=False, default=str),
        "counts_json": json.dumps(counts), "dropped_json": json.dumps(dropped, ensure_ascii=False),
        "started_at": started, "finished_at": utcnow(),
    }], geometry=[shapely.MultiPolygon([hull]) if hull.geom_type == "Polygon" else hull], crs=f"EPSG:{SRID}")
    store.insert_gdf(conn, "imports", rec)
    record_write(conn, {"import": kind})  # a job running this import ends in this same transaction
