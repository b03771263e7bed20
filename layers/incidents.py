"""Incident register in the store: create/import with grid and worker, closed-loop transitions with optimistic locking, overdue list, map-click lookup."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.cameras import DEFAULT_RANGE_M, degree_box, distance_bearing
from gridpatrol.gis.crs import check_lonlat
from gridpatrol.gis.errors import ConflictError, InputError, NotFoundError
from gridpatrol.gis.incidents import (
    DUPLICATE_RADIUS_M,
    DUPLICATE_WINDOW_S,
    OPEN_STATES,
    STATES,
    check_incident_time,
    check_transition,
    find_duplicates,
    normalize_state,
    overdue,
    time_window,
    utc,
)
from gridpatrol.gis.plausible import implausible
from gridpatrol.layers.cameras import (
    Progress,
    RowProblem,
    apply_mapping,
    candidate_cameras,
    check_coordinates,
    convert_crs,
    evaluate_cameras,
    max_range_m,
    parse_mapping,
    read_records,
)
from gridpatrol.layers.csvtext import encoding_note
from gridpatrol.layers.import_records import bad_rows_error, record_import, text_cells
from gridpatrol.layers.importing import ImportResult, file_sha256
from gridpatrol.layers.inside_areas import outside_areas, outside_message
from gridpatrol.layers.models import SRID, Grid, Incident, IncidentEvent, utcnow
from gridpatrol.layers.names import clean_name, name_problem
from gridpatrol.layers.store import Store
from gridpatrol.layers.visibility import CURRENT_GRIDS_OF_SQL, worker_rows
from sqlalchemy import Connection, and_, func, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

INCIDENT_COLUMNS = ("occurred_at", "time", "category", "description", "source", "reporter", "lon", "lat",
                    "external_id", "state")
LOOKUP_RADIUS_M = 200.0
LOOKUP_DAYS = 90.0


# ---------------------------------------------------------------------------------------------
# Grids.

def _sql_nulls(rec: dict[str, Any]) -> dict[str, Any]:
    """``rec`` with pandas' missing markers (NaN, NaT, NA) as SQL NULL: PostgreSQL would store a
    float NaN in a text column as the string 'NaN'."""
    return {k: (None if v is not None and not isinstance(v, (str, bytes, list, dict)) and pd.isna(v) else v)
            for k, v in rec.items()}


def grids_at(store: Store, conn: Connection, lon: np.ndarray, lat: np.ndarray) -> pd.DataFrame:
    """Grid code, name and worker of the newest plan at each point (None outside every grid)."""
    from gridpatrol.layers.models import GridPlan

    lon = np.atleast_1d(np.asarray(lon, float))
    lat = np.atleast_1d(np.asarray(lat, float))
    codes = np.full(len(lon), None, dtype=object)
    names = codes.copy()
    workers = codes.copy()
    if len(lon):
        bbox = (lon.min(), lat.min(), lon.max(), lat.max())
        t = Grid.__table__
        newest = select(func.max(GridPlan.__table__.c.id)).scalar_subquery()
        rows = conn.execute(
            select(t.c.code, t.c.name, t.c.worker, func.ST_AsBinary(t.c.geom))
            .where(and_(t.c.plan_id == newest, store.bbox_filter(t, bbox)))
            .order_by(t.c.code)
        ).all()
        if rows:
            geoms = shapely.from_wkb([bytes(r[3]) for r in rows])
            pts = shapely.points(lon, lat)
            if len(lon) == 1:  # a map click: a handful of candidate grids, no tree needed
                hit = np.flatnonzero(shapely.intersects(geoms, pts[0]))
                p, g = np.zeros(len(hit[:1]), dtype=np.int64), hit[:1]
            else:
                p, g = shapely.STRtree(geoms).query(pts, predicate="intersects")
                # A point on a shared edge belongs to the grid with the smaller code: one answer.
                order = np.lexsort((g, p))
                p, g = p[order], g[order]
                first = np.r_[True, p[1:] != p[:-1]]
                p, g = p[first], g[first]
            codes[p] = np.array([r[0] for r in rows], dtype=object)[g]
            names[p] = np.array([r[1] for r in rows], dtype=object)[g]
            workers[p] = np.array([r[2] for r in rows], dtype=object)[g]
    # dtype=object keeps None for "no grid" (pandas 3 would infer strings and turn None into NaN).
    return pd.DataFrame({"grid_code": codes, "grid_name": names, "worker": workers}, dtype=object)


# ---------------------------------------------------------------------------------------------
# Creating and importing.

def _open_nearby(store: Store, conn: Connection, lon: np.ndarray, lat: np.ndarray,
                 t0: datetime, t1: datetime) -> pd.DataFrame:
    """Open stored incidents near the points (bbox + DUPLICATE_RADIUS_M) between t0 and t1."""
    t = Incident.__table__
    b0 = degree_box(float(np.min(lon)), float(np.min(lat)), DUPLICATE_RADIUS_M)
    b1 = degree_box(float(np.max(lon)), float(np.max(lat)), DUPLICATE_RADIUS_M)
    rows = conn.execute(
        select(t.c.id, t.c.occurred_at, t.c.category, t.c.state, func.ST_X(t.c.geom), func.ST_Y(t.c.geom))
        .where(and_(store.bbox_filter(t, (b0[0], b0[1], b1[2], b1[3])), t.c.state.in_(OPEN_STATES),
                    t.c.occurred_at >= t0, t.c.occurred_at <= t1))
    ).all()
    return pd.DataFrame(rows, columns=["id", "occurred_at", "category", "state", "lon", "lat"])


def _insert_incidents(store: Store, conn: Connection, rows: pd.DataFrame, actor: str | None) -> list[int]:
    """Insert incidents (with their first event) and return their ids in row order."""
    t = Incident.__table__
    recs = []
    for r in rows.itertuples(index=False):
        recs.append({
            "external_id": r.external_id, "occurred_at": r.occurred_at, "category": r.category,
            "description": r.description, "source": r.source, "reporter": r.reporter, "state": r.state,
            "state_since": r.state_since, "version": 1, "grid_code": r.grid_code, "worker": r.worker,
            "duplicate_of": None, "synthetic": bool(r.synthetic), "geom": f"SRID={SRID};POINT({r.lon!r} {r.lat!r})",
        })
    recs = [_sql_nulls(r) for r in recs]
    ids: list[int] = []
    for i in range(0, len(recs), 2000):
        res = conn.execute(t.insert().returning(t.c.id, sort_by_parameter_order=True), recs[i:i + 2000])
        ids.extend(int(x) for x in res.scalars().all())
    events = [{"incident_id": i, "seq": 1, "from_state": None, "to_state": s, "actor": actor,
               "note": "imported" if s != "reported" else "reported", "at": since}
              for i, s, since in zip(ids, rows["state"], rows["state_since"])]
    for i in range(0, len(events), 5000):
        conn.execute(IncidentEvent.__table__.insert(), events[i:i + 5000])
    return ids


def _flag_duplicates(store: Store, conn: Connection, rows: pd.DataFrame, ids: list[int]) -> pd.Series:
    """Set incidents.duplicate_of for new rows that duplicate an open incident; returns it."""
    window = timedelta(seconds=DUPLICATE_WINDOW_S)
    t0 = rows["occurred_at"].min() - window
    t1 = rows["occurred_at"].max() + window
    existing = _open_nearby(store, conn, rows["lon"].to_numpy(), rows["lat"].to_numpy(), t0, t1)
    existing = existing[~existing["id"].isin(ids)]
    new = rows.assign(id=ids)
    new = new[new["state"].isin(OPEN_STATES)]
    dup = find_duplicates(new, existing) if len(new) else pd.Series(dtype="Int64")
    dup = dup.dropna()
    t = Incident.__table__
    for row_idx, ref in dup.items():
        conn.execute(update(t).where(t.c.id == int(new.loc[row_idx, "id"])).values(duplicate_of=int(ref)))
    return dup


def create_incident(
    store: Store, *, lon: float, lat: float, category: str, occurred_at: datetime | None = None,
    description: str | None = None, source: str | None = None, reporter: str | None = None,
    actor: str | None = None, crs: str | None = "wgs84", external_id: str | None = None,
    synthetic: bool = False, check: Callable[[Connection, str | None], None] | None = None,
    also: Callable[[Connection, int], None] | None = None,
) -> dict[str, Any]:
    """Register a new incident (state reported 发现) at (lon, lat) in ``crs``.

    The grid and its worker of the newest plan are attached; an open incident of the same
    category within 50 m and 24 h is recorded in ``duplicate_of``. Returns the stored fields.
    In the same transaction, ``check(conn, grid_code)`` may refuse (raise) before the insert and
    ``also(conn, incident_id)`` writes what belongs with the incident (a report key, photos).
    """
    if not category or not str(category).strip():
        raise InputError("an incident needs a category", hint="e.g. 矛盾纠纷, 治安, 消防安全, 环境卫生")
    category = clean_name(category, "category")
    x, y = convert_crs(np.array([float(lon)]), np.array([float(lat)]), crs)
    if not (-180 <= x[0] <= 180 and -90 <= y[0] <= 90):
        raise InputError(f"({lon}, {lat}) is not a longitude/latitude")
    bad, cause = implausible([lon], [lat], x, y, crs)
    if bad[0]:
        raise InputError(f"({lon}, {lat}) lands at ({x[0]:.4f}, {y[0]:.4f}): {cause}")
    if outside_areas(store, x, y)[0]:
        raise InputError(f"({x[0]:.5f}, {y[0]:.5f}) {outside_message(1, 1)}")
    when = check_incident_time(occurred_at)
    with store.begin() as conn:
        g = grids_at(store, conn, x, y)
        if check is not None:
            check(conn, g["grid_code"][0])
        rows = pd.DataFrame([{
            "external_id": external_id, "occurred_at": when, "category": str(category).strip(),
            "description": description, "source": source, "reporter": reporter, "state": "reported",
            "state_since": when, "grid_code": g["grid_code"][0], "worker": g["worker"][0],
            "synthetic": synthetic, "lon": float(x[0]), "lat": float(y[0]),
        }])
        ids = _insert_incidents(store, conn, rows, actor)
        dup = _flag_duplicates(store, conn, rows, ids)
        if also is not None:
            also(conn, ids[0])
    out = rows.iloc[0].to_dict()
    out.update(id=ids[0], version=1, duplicate_of=int(dup.iloc[0]) if len(dup) else None)
    return out


def _one_time(text: str, tz: str) -> pd.Timestamp:
    """One date/time text in UTC (naive: local time in ``tz``); NaT if unreadable or out of range."""
    try:
        t = pd.Timestamp(text)
        if not 1900 <= t.year <= 2200:
            return pd.NaT
        return (t.tz_localize(tz, ambiguous=False, nonexistent="shift_forward") if t.tzinfo is None else t).tz_convert("UTC")
    except (ValueError, TypeError, OverflowError):
        return pd.NaT


def parse_times(df: pd.DataFrame, tz: str) -> tuple[pd.Series, pd.Series]:
    """occurred_at (+ optional time of day) → UTC timestamps, and a mask of unparseable cells."""
    raw = df["occurred_at"]
    num = pd.to_numeric(raw, errors="coerce")
    is_num = num.notna()
    out = pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]")
    if is_num.any():
        # Epoch numbers: milliseconds (as in Open Baltimore's CrimeDate) when large, else seconds;
        # beyond what a timestamp can hold (years 1677–2262) they stay unparsed (a bad row).
        unit_ms = num.abs() > 1e11
        num = num.where(np.isfinite(num) & (num.abs() < np.where(unit_ms, 9e12, 9e9)))
        ms = pd.to_datetime(num.where(unit_ms), unit="ms", utc=True)
        s = pd.to_datetime(num.where(~unit_ms & is_num), unit="s", utc=True)
        out = out.where(~(is_num & unit_ms), ms).where(~(is_num & ~unit_ms), s)
    text = text_cells(raw)
    txt_mask = ~is_num & (text != "")
    if txt_mask.any():
        try:
            parsed = pd.to_datetime(text.where(txt_mask), errors="coerce", utc=False, format="mixed")
        except ValueError:  # different UTC offsets (or some with, some without): one value at a time
            parsed = pd.Series([_one_time(v, tz) if m else pd.NaT for v, m in zip(text, txt_mask)],
                               index=df.index, dtype="datetime64[ns, UTC]")
        # Years such as 0001 or 9999 parse at a coarser unit than nanoseconds and overflow later.
        parsed = parsed.where((parsed.dt.year >= 1900) & (parsed.dt.year <= 2200)).dt.as_unit("ns")
        if getattr(parsed.dt, "tz", None) is None:
            # The repeated hour when clocks go back is read as standard time (the second pass).
            parsed = parsed.dt.tz_localize(tz, ambiguous=np.zeros(len(parsed), dtype=bool),
                                           nonexistent="shift_forward").dt.tz_convert("UTC")
        else:
            parsed = parsed.dt.tz_convert("UTC")
        out = out.where(~txt_mask, parsed)
    if "time" in df:
        # A separate time of day: the date part is a calendar day, the time is local time in tz.
        tod = pd.to_timedelta(text_cells(df["time"]).where(text_cells(df["time"]) != "", "00:00:00"), errors="coerce")
        day = out.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
        out = (day + tod).dt.tz_localize(tz, ambiguous=np.zeros(len(day), dtype=bool),
                                         nonexistent="shift_forward").dt.tz_convert("UTC")
        bad = (text_cells(raw) == "") | out.isna()
        return out, bad & (text_cells(raw) != "")
    return out, out.isna() & (text != "")


def import_incidents(
    store: Store, path: str | Path, *, crs: str | None = "wgs84", mapping: str | Mapping[str, str] | None = None,
    state: str = "reported", tz: str = "UTC", source: str | None = None, skip_bad: bool = False,
    actor: str | None = None, progress: Progress | None = None, encoding: str | None = None,
) -> ImportResult:
    """Import incidents from CSV, JSON (array of records, e.g. Open Baltimore crime) or GeoJSON.

    Columns (rename with ``mapping``): occurred_at (ISO text or epoch s/ms), optional time (time of
    day, local in ``tz``), category, description, source, reporter, lon, lat, external_id, state.
    Records without coordinates are skipped and listed in ``dropped["no_coordinates"]``; other
    bad rows (unparseable time, unknown state) fail the whole import unless ``skip_bad``.
    Grids/workers are attached and duplicates flagged as for :func:`create_incident`.
    """
    path = Path(path)
    say = progress or (lambda _m: None)
    started = utcnow()
    default_state = normalize_state(state)
    raw, line0 = read_records(path, crs=crs, encoding=encoding, known=INCIDENT_COLUMNS)
    df = apply_mapping(raw, parse_mapping(mapping), INCIDENT_COLUMNS, path)
    for col in ("occurred_at", "category", "lon", "lat"):
        if col not in df:
            raise InputError(f"{path}: required column {col!r} missing{encoding_note(raw)}",
                             hint="rename with --map, e.g. --map occurred_at=CrimeDate,time=CrimeTime,"
                                  "category=Description,lon=Longitude,lat=Latitude")
    coord_problems: list[RowProblem] = []
    lon, lat = check_coordinates(df, line0, coord_problems, crs)
    problems: list[RowProblem] = []
    times, bad_time = parse_times(df, tz)
    lo, hi = time_window()
    cat = text_cells(df["category"])
    st = text_cells(df["state"]) if "state" in df else pd.Series("", index=df.index)
    for i in range(len(df)):
        n, line = i + 1, (line0 + i if line0 else None)
        if bad_time.iloc[i]:
            problems.append(RowProblem(n, line, f"time {df['occurred_at'].iloc[i]!r} is not a date/time"
                                                f" from {lo.date()} to a day from now"))
        elif pd.isna(times.iloc[i]):
            problems.append(RowProblem(n, line, "missing time (occurred_at)"))
        elif not lo <= times.iloc[i] <= hi:
            problems.append(RowProblem(n, line, f"time {times.iloc[i].isoformat()} (occurred_at) is before "
                                                f"{lo.date()} or more than a day in the future: check the year"
                                                " and the time zone"))
        if cat.iloc[i] == "":
            problems.append(RowProblem(n, line, "missing category"))
        elif (bad_name := name_problem(cat.iloc[i], "category")) is not None:
            problems.append(RowProblem(n, line, bad_name))
        if st.iloc[i]:
            try:
                normalize_state(st.iloc[i])
            except InputError:
                problems.append(RowProblem(n, line, f"state {st.iloc[i]!r} is unknown"))
    if problems and not skip_bad:
        raise bad_rows_error(path, problems, "incident")
    no_coords = [p for p in coord_problems if "missing" in p.message]
    bad_coords = [p for p in coord_problems if "missing" not in p.message]
    if bad_coords and not skip_bad:
        raise bad_rows_error(path, bad_coords, "incident")
    skip = {p.row for p in problems + coord_problems}
    good = np.array([i + 1 not in skip for i in range(len(df))], dtype=bool)
    if not good.any():
        raise InputError(f"{path}: no incident rows to import",
                         hint=f"{len(no_coords)} rows have no coordinates" if no_coords else None)
    wlon, wlat = convert_crs(lon[good], lat[good], crs)
    far = outside_areas(store, wlon, wlat)
    if far.any():
        why = outside_message(int(far.sum()), len(wlon))
        far_rows = [RowProblem(int(i) + 1, line0 + int(i) if line0 else None,
                               f"coordinates ({lo:.5f}, {la:.5f}) {why}")
                    for i, lo, la in zip(np.flatnonzero(good)[far], wlon[far], wlat[far])]
        if not skip_bad or far.all():
            raise bad_rows_error(path, far_rows, "incident")
        bad_coords += far_rows
        good[np.flatnonzero(good)[far]] = False
        wlon, wlat = wlon[~far], wlat[~far]
    states = st[good].map(lambda s: normalize_state(s) if s else default_state)
    rows = pd.DataFrame({
        "external_id": (text_cells(df["external_id"])[good].replace("", None).to_numpy() if "external_id" in df else None),
        "occurred_at": times[good].dt.to_pydatetime(),
        "category": cat[good].to_numpy(),
        "description": (text_cells(df["description"])[good].replace("", None).to_numpy() if "description" in df else None),
        "source": (text_cells(df["source"])[good].replace("", None).to_numpy() if "source" in df else (source or f"file:{path.name}")),
        "reporter": (text_cells(df["reporter"])[good].replace("", None).to_numpy() if "reporter" in df else None),
        "state": states.to_numpy(),
        "synthetic": False,
        "lon": wlon, "lat": wlat,
    })
    rows["state_since"] = rows["occurred_at"]
    sha = file_sha256(path)
    say(f"writing {len(rows)} incidents")
    with store.begin() as conn:
        g = grids_at(store, conn, wlon, wlat)
        rows["grid_code"] = g["grid_code"].to_numpy()
        rows["worker"] = g["worker"].to_numpy()
        ids = _insert_incidents(store, conn, rows, actor)
        dup = _flag_duplicates(store, conn, rows, ids)
        counts = {"incidents": len(ids), "duplicates": int(len(dup)), "no_coordinates": len(no_coords),
                  "bad_rows": len({p.row for p in problems + bad_coords}),
                  "in_grid": int(rows["grid_code"].notna().sum())}
        dropped = {"no_coordinates": [str(p) for p in no_coords],
                   "bad_rows": [str(p) for p in sorted(problems + bad_coords, key=lambda p: p.row)]}
        record_import(store, conn, "incidents", path, sha, started, counts,
                       {k: v[:1000] for k, v in dropped.items()},
                       {"crs": crs, "map": parse_mapping(mapping), "state": default_state, "tz": tz},
                       gpd.GeoSeries(shapely.points(wlon, wlat), crs=SRID))
    warnings = []
    if no_coords:
        warnings.append(f"{len(no_coords)} record(s) without coordinates were not imported: "
                        + ", ".join(str(p.row) for p in no_coords[:20]) + (" …" if len(no_coords) > 20 else ""))
    return ImportResult(source=str(path), sha256=sha, counts=counts, dropped=dropped, warnings=warnings)


# ---------------------------------------------------------------------------------------------
# The closed loop.

def advance_incident(
    store: Store, incident_id: int, to_state: str, *, actor: str | None = None, note: str | None = None,
    at: datetime | None = None, expected_version: int | None = None,
    on_read: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Move an incident to ``to_state`` and append the event, atomically.

    Optimistic locking: the update only applies if ``incidents.version`` is still the one read,
    so of two racing transitions exactly one wins and the other gets a ConflictError (no event is
    lost or written twice). ``expected_version``: refuse if the caller's copy is stale.
    ``on_read`` is called between the read and the write (tests use it to force a race).
    Returns ``id, from_state, to_state, version, seq``.
    """
    to = normalize_state(to_state)
    when = check_incident_time(at, "the transition time")
    t, ev = Incident.__table__, IncidentEvent.__table__
    try:
        with store.begin() as conn:
            row = conn.execute(select(t.c.state, t.c.version).where(t.c.id == int(incident_id))).first()
            if row is None:
                raise NotFoundError(f"incident {incident_id} does not exist")
            state, version = row
            if expected_version is not None and int(expected_version) != int(version):
                raise ConflictError(f"incident {incident_id} changed since you loaded it (version {version}, "
                                    f"yours {expected_version})", hint="reload it and try again")
            check_transition(state, to, note)
            if on_read is not None:
                on_read()
            res = conn.execute(
                update(t).where(and_(t.c.id == int(incident_id), t.c.version == version))
                .values(state=to, state_since=when, version=version + 1)
            )
            if res.rowcount != 1:
                raise ConflictError(f"incident {incident_id} was moved by someone else at the same time",
                                    hint="reload it and try again")
            conn.execute(ev.insert().values(incident_id=int(incident_id), seq=version + 1, from_state=state,
                                            to_state=to, actor=actor, note=note, at=when))
    except OperationalError as exc:
        if "locked" in str(exc).lower() or "deadlock" in str(exc).lower() or "serializ" in str(exc).lower():
            raise ConflictError(f"incident {incident_id} is being changed by someone else",
                                hint="try again") from None
        raise
    except IntegrityError:
        raise ConflictError(f"incident {incident_id} was moved by someone else at the same time",
                            hint="reload it and try again") from None
    return {"id": int(incident_id), "from_state": state, "to_state": to, "version": version + 1, "seq": version + 1}


def incident_events(store: Store, incident_id: int) -> pd.DataFrame:
    """The events of an incident in order (seq, from_state, to_state, actor, note, at)."""
    ev = IncidentEvent.__table__
    with store.engine.connect() as c:
        rows = c.execute(select(ev.c.seq, ev.c.from_state, ev.c.to_state, ev.c.actor, ev.c.note, ev.c.at)
                         .where(ev.c.incident_id == int(incident_id)).order_by(ev.c.seq)).all()
    return pd.DataFrame(rows, columns=["seq", "from_state", "to_state", "actor", "note", "at"])


def overdue_incidents(store: Store, *, now: datetime | None = None,
                      deadlines: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Open incidents past the deadline of their current state, most overdue first."""
    t = Incident.__table__
    with store.engine.connect() as c:
        rows = c.execute(select(t.c.id, t.c.category, t.c.state, t.c.state_since, t.c.occurred_at, t.c.grid_code,
                                t.c.worker, t.c.description).where(t.c.state.in_(OPEN_STATES))).all()
    df = pd.DataFrame(rows, columns=["id", "category", "state", "state_since", "occurred_at", "grid_code",
                                     "worker", "description"])
    df["state_since"] = pd.to_datetime(df["state_since"], utc=True)
    res = overdue(df, now=utc(now), deadlines=deadlines)
    res["state_zh"] = res["state"].map(STATES)
    return res.reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Map click.

@dataclass(frozen=True)
class LookupView:
    """What a map click may show (the API derives it from the user's role; the CLI sees all).

    ``incidents_of``: only incidents in the grids of the current plan this worker is
    responsible for (see :mod:`layers.visibility`). ``camera_max_secrecy``: only cameras up to this secrecy level (None: all).
    Sections that are not shown are left out of the answer, not emptied.
    """

    worker_names: bool = True
    incidents: bool = True
    incidents_of: str | None = None
    cameras: bool = True
    camera_max_secrecy: int | None = None


FULL_VIEW = LookupView()

# The exact local geometry of gis.cameras (ECEF → east/north of the first point, WGS-84) in SQL,
# written out with the same operations in the same order as the numpy code, so both stores
# decide "in view" and "within the radius" alike (they can differ only in the last bit of a
# sine, i.e. for a point exactly on a sector's edge).
_A, _E2 = 6378137.0, (1 / 298.257223563) * (2 - 1 / 298.257223563)
_ENU_SQL = """
 , LATERAL (
  SELECT sqrt(e * e + n * n) dist, degrees(atan2(e, n)) b0
  FROM (SELECT -sl * dx + cl * dy e, -sp * cl * dx - sp * sl * dy + cp * dz n
        FROM (SELECT sl, cl, sp, cp, %(px)s - k * cp * cl dx, %(py)s - k * cp * sl dy, %(pz)s - k * %(f)s * sp dz
              FROM (SELECT sin(l) sl, cos(l) cl, sin(p) sp, cos(p) cp, %(a)s / sqrt(1 - %(e2)s * sin(p) * sin(p)) k
                    FROM (SELECT radians(ST_X({g})) l, radians(ST_Y({g})) p OFFSET 0) t OFFSET 0) u
              OFFSET 0) v OFFSET 0) w OFFSET 0) q"""

_STATES_JSON = json.dumps(STATES, ensure_ascii=False)
_GRID_SQL = """(SELECT json_build_object('code', code, 'name', name{worker})::text
  FROM grids
  WHERE plan_id = (SELECT max(id) FROM grid_plans) AND geom && ST_Point(%(lon)s, %(lat)s, 4326)
    AND ST_Intersects(geom, ST_Point(%(lon)s, %(lat)s, 4326))
  ORDER BY code LIMIT 1)"""

# Candidates come from the GiST index alone (a materialized CTE, so that a generic plan cannot
# prefer another index); the time window, role filter and exact radius follow.
_INCIDENTS_SQL = """(
  WITH c AS MATERIALIZED (
    SELECT * FROM incidents WHERE geom && ST_MakeEnvelope(%(ix0)s, %(iy0)s, %(ix1)s, %(iy1)s, 4326))
  SELECT COALESCE(json_agg(json_build_object(
           'id', i.id, 'category', i.category, 'state', i.state, 'state_zh', %(st)s::jsonb ->> i.state,
           'occurred_at', to_char(i.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
              || CASE WHEN to_char(i.occurred_at, 'US') = '000000' THEN '' ELSE to_char(i.occurred_at, '.US') END
              || '+00:00',
           'description', i.description, 'duplicate_of', i.duplicate_of, 'distance_m', round(q.dist::numeric, 1))
           ORDER BY q.dist, i.id), '[]')::text
  FROM c i {enu}
  WHERE i.occurred_at >= %(t0)s AND i.occurred_at <= %(t1)s AND q.dist <= %(rad)s{own})"""
_OWN_INCIDENTS_SQL = f"""
    AND i.grid_code IN ({CURRENT_GRIDS_OF_SQL})"""

# Cameras whose field of view contains the point, with gis.cameras.optics_arrays' defaults and
# sector_contains' test, ranked online first, then nearest. The search box is degree_box() of
# the longest range (read from the range index).
_CAMERAS_SQL = """(
  WITH r AS MATERIALIZED (
    SELECT GREATEST(COALESCE((SELECT max(range_m) FROM cameras), 0),
           CASE WHEN EXISTS (SELECT 1 FROM cameras WHERE range_m IS NULL) THEN %(dr)s ELSE 0 END) r),
  b AS MATERIALIZED (
    SELECT ST_MakeEnvelope(%(lon)s - x, %(lat)s - y, %(lon)s + x, %(lat)s + y, 4326) env
    FROM (SELECT r, degrees(r / %(m)s) * 1.001 + 1e-9 y FROM r) b
    , LATERAL (SELECT degrees(r / (%(a)s * cos(radians(LEAST(abs(%(lat)s) + y, 89.9))))) * 1.001 + 1e-9 x) d),
  c AS MATERIALIZED (
    SELECT * FROM cameras WHERE geom && (SELECT env FROM b){secrecy})
  SELECT COALESCE(json_agg(json_build_object(
           'code', c.code, 'name', c.name, 'project', c.project, 'distance_m', round(q.dist::numeric, 1),
           'bearing_deg', round(o.bearing::numeric, 1), 'in_view', true, 'online', o.status = 'online',
           'status', o.status, 'camera_type', c.camera_type, 'secrecy_level', c.secrecy_level,
           'azimuth_deg', c.azimuth_deg, 'fov_deg', c.fov_deg, 'range_m', c.range_m,
           'lon', ST_X(c.geom), 'lat', ST_Y(c.geom))
           ORDER BY o.status = 'online' DESC, q.dist, c.code), '[]')::text
  FROM c {enu}
  , LATERAL (
    SELECT c.azimuth_deg az, lower(btrim(c.camera_type, %(ws)s)) IN ('dome', 'speed_dome', 'panorama', 'ptz') dome,
           c.azimuth_deg IS NULL OR c.azimuth_deg = 'NaN' no_az,
           CASE WHEN q.b0 < 0 THEN q.b0 + 360.0 ELSE q.b0 END bearing,
           COALESCE(lower(btrim(c.status, %(ws)s)), 'online') status OFFSET 0) o
  , LATERAL (
    SELECT o.dome OR o.no_az OR COALESCE(c.fov_deg >= 360 AND c.fov_deg <> 'NaN', false) full_circle,
           CASE WHEN c.range_m IS NULL OR c.range_m = 'NaN' THEN CASE WHEN o.dome THEN %(rd)s ELSE %(rf)s END
                ELSE c.range_m END rng,
           CASE WHEN c.fov_deg IS NULL OR c.fov_deg = 'NaN' THEN %(fov)s ELSE c.fov_deg END fov,
           o.bearing - CASE WHEN o.az >= 0 AND o.az < 360 THEN o.az WHEN o.az >= 360 AND o.az < 720 THEN o.az - 360.0
                            WHEN o.az < 0 AND o.az >= -360 THEN o.az + 360.0
                            ELSE o.az - 360.0 * floor(o.az / 360.0) END + 180.0 s OFFSET 0) w
  WHERE q.dist <= w.rng
    AND (w.full_circle OR q.dist = 0
         OR abs(CASE WHEN w.s < 0 THEN w.s + 360.0 WHEN w.s >= 360 THEN w.s - 360.0 ELSE w.s END - 180.0) <= w.fov / 2.0))"""
_SECRECY_SQL = " AND secrecy_level <= %(sec)s"


@lru_cache(maxsize=32)
def _pg_lookup_sql(worker_names: bool, incidents: bool, own_incidents: bool, cameras: bool, secrecy: bool) -> str:
    """The PostGIS map-click statement for one combination of visible sections (one round trip:
    grid, incidents and cameras, with the role filters, the exact tests, the ranking and the JSON
    built in the database; hidden sections are not in it at all)."""
    parts = [_GRID_SQL.format(worker=", 'worker', worker" if worker_names else "")]
    parts.append(_INCIDENTS_SQL.format(enu=_ENU_SQL.format(g="i.geom"), own=_OWN_INCIDENTS_SQL if own_incidents else "")
                 if incidents else "NULL")
    parts.append(_CAMERAS_SQL.format(enu=_ENU_SQL.format(g="c.geom"), secrecy=_SECRECY_SQL if secrecy else "")
                 if cameras else "NULL")
    # Whitespace squeezed: psycopg caches the conversion of statements up to 4096 characters.
    return re.sub(r"\s+", " ", "SELECT " + ", ".join(parts)).strip()


def _ecef(lon: float, lat: float) -> tuple[float, float, float]:
    """gis.cameras.ecef of one point in plain floats (the same operations, without numpy's
    per-call overhead on a single point)."""
    lam, phi = math.radians(lon), math.radians(lat)
    sphi, cphi = math.sin(phi), math.cos(phi)
    n = _A / math.sqrt(1 - _E2 * sphi * sphi)
    return n * cphi * math.cos(lam), n * cphi * math.sin(lam), n * (1 - _E2) * sphi


def _lookup_params(lon: float, lat: float, when: datetime, radius_m: float, days: float,
                   view: LookupView) -> dict[str, Any]:
    from gridpatrol.gis.cameras import DEFAULT_FOV_DEG, M_MIN

    px, py, pz = _ecef(lon, lat)
    # gis.cameras.degree_box in plain floats: a generous box, the exact radius test follows.
    dlat = math.degrees(radius_m / M_MIN) * 1.001 + 1e-9
    dlon = math.degrees(radius_m / (_A * math.cos(math.radians(min(abs(lat) + dlat, 89.9))))) * 1.001 + 1e-9
    ix0, iy0, ix1, iy1 = lon - dlon, lat - dlat, lon + dlon, lat + dlat
    return {
        "lon": lon, "lat": lat, "px": px, "py": py, "pz": pz, "a": _A, "e2": _E2, "f": 1 - _E2, "m": M_MIN,
        "ws": " \t\n\r\f\v",
        "dr": max(DEFAULT_RANGE_M.values()), "rd": DEFAULT_RANGE_M["dome"], "rf": DEFAULT_RANGE_M["fixed"],
        "fov": DEFAULT_FOV_DEG, "ix0": ix0, "iy0": iy0, "ix1": ix1, "iy1": iy1, "t0": when - timedelta(days=days),
        "t1": when, "rad": float(radius_m), "st": _STATES_JSON, "own": view.incidents_of, "sec": view.camera_max_secrecy,
    }


def lookup_statement(lon: float, lat: float, when: datetime, *, radius_m: float = LOOKUP_RADIUS_M,
                     days: float = LOOKUP_DAYS, view: LookupView = FULL_VIEW) -> tuple[str, dict[str, Any]]:
    """The PostGIS map-click statement and its parameters (psycopg ``%(name)s`` style), for
    callers that run it on their own (async) connection. Its one row: grid, incidents and
    cameras as JSON text (None for a section ``view`` hides); :func:`lookup_document` joins them."""
    sql = _pg_lookup_sql(view.worker_names, view.incidents, view.incidents_of is not None, view.cameras,
                         view.camera_max_secrecy is not None)
    return sql, _lookup_params(lon, lat, utc(when), radius_m, days, view)


def lookup_document(lon: float, lat: float, when: datetime, row: tuple, view: LookupView = FULL_VIEW) -> bytes:
    """The map-click answer as JSON bytes from the row of :func:`lookup_statement` (JSON text or
    already parsed values per section)."""
    def part(v: Any) -> str:
        if v is None:
            return "null"
        return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, allow_nan=False)

    out = [f'{{"lon":{json.dumps(lon)},"lat":{json.dumps(lat)},"at":"{utc(when).isoformat()}","grid":{part(row[0])}']
    if view.incidents:
        out.append(f',"incidents":{part(row[1]) if row[1] is not None else "[]"}')
    if view.cameras:
        out.append(f',"cameras":{part(row[2]) if row[2] is not None else "[]"}')
    out.append("}")
    return "".join(out).encode("utf-8")


def _lookup_python(store: Store, conn: Connection, lon: float, lat: float, when: datetime, radius_m: float,
                 days: float, view: LookupView) -> tuple:
    """The map click with index queries, then the exact tests in numpy (gis.cameras): the GeoPackage
    path (it runs on PostGIS too, which tests use to check the one-statement path against it).
    Returns the three sections like the PostGIS statement does."""
    g = grids_at(store, conn, np.array([lon]), np.array([lat])).iloc[0].to_dict()
    grid = None
    if g["grid_code"] is not None:
        grid = {"code": g["grid_code"], "name": g["grid_name"]}
        if view.worker_names:
            grid["worker"] = g["worker"]
    incidents = None
    if view.incidents:
        t = Incident.__table__
        cond = [store.bbox_filter(t, degree_box(lon, lat, radius_m)),
                t.c.occurred_at >= when - timedelta(days=days), t.c.occurred_at <= when]
        if view.incidents_of is not None:
            cond.append(worker_rows(t, view.incidents_of))
        rows = conn.execute(
            select(t.c.id, t.c.category, t.c.state, t.c.occurred_at, t.c.description, t.c.duplicate_of,
                   func.ST_X(t.c.geom), func.ST_Y(t.c.geom)).where(and_(*cond))).all()
        incidents = []
        if rows:
            d, _ = distance_bearing(np.array([r[6] for r in rows], float), np.array([r[7] for r in rows], float),
                                    lon, lat)
            for r, dist in sorted(zip(rows, d), key=lambda p: (p[1], p[0][0])):
                if dist <= radius_m:
                    incidents.append({"id": r[0], "category": r[1], "state": r[2], "state_zh": STATES.get(r[2]),
                                      "occurred_at": utc(r[3]).isoformat(), "description": r[4],
                                      "duplicate_of": r[5], "distance_m": round(float(dist), 1)})
    cameras = None
    if view.cameras:
        rows = candidate_cameras(store, conn, lon, lat, max_range_m(conn))
        raw = {r[1]: r for r in rows}  # the stored optics (evaluate_cameras fills in defaults)
        cams = evaluate_cameras(rows, lon, lat, in_view_only=True)
        if view.camera_max_secrecy is not None:
            cams = [c for c in cams if c["secrecy_level"] <= view.camera_max_secrecy]
        cams.sort(key=lambda c: (not c["online"], c["distance_m"], c["code"]))
        cameras = [{"code": c["code"], "name": c["name"], "project": c["project"],
                    "distance_m": round(c["distance_m"], 1), "bearing_deg": round(c["bearing_deg"], 1),
                    "in_view": c["in_view"], "online": c["online"], "status": c["status"],
                    "camera_type": raw[c["code"]][8], "secrecy_level": c["secrecy_level"],
                    "azimuth_deg": raw[c["code"]][4], "fov_deg": raw[c["code"]][5], "range_m": raw[c["code"]][6],
                    "lon": c["lon"], "lat": c["lat"]} for c in cams]
    return grid, incidents, cameras


def lookup_json(store: Store, lon: float, lat: float, at: datetime | None = None, *,
                radius_m: float = LOOKUP_RADIUS_M, days: float = LOOKUP_DAYS,
                view: LookupView = FULL_VIEW, conn: Connection | None = None, python: bool = False) -> bytes:
    """:func:`lookup` as JSON bytes, cut down to ``view`` (what the API sends).

    PostGIS: one statement builds the answer (:func:`lookup_statement`); GeoPackage: index
    queries plus the numpy tests (``python=True``: that path on PostGIS too). Both give the same
    answer for the same data."""
    lon, lat = check_lonlat(lon, lat)
    when = utc(at)
    if conn is None:
        with store.engine.connect() as c:
            return lookup_json(store, lon, lat, when, radius_m=radius_m, days=days, view=view, conn=c, python=python)
    if store.is_gpkg or python:
        row = _lookup_python(store, conn, lon, lat, when, radius_m, days, view)
    else:
        sql, params = lookup_statement(lon, lat, when, radius_m=radius_m, days=days, view=view)
        # A generic plan: planning this statement costs more than running it. SET LOCAL ends
        # with the transaction, so other users of the pooled connection are not affected.
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        cur = conn.connection.driver_connection.execute(sql, params, prepare=True)
        row = cur.fetchone()
    return lookup_document(lon, lat, when, row, view)


def lookup(store: Store, lon: float, lat: float, at: datetime | None = None, *,
           radius_m: float = LOOKUP_RADIUS_M, days: float = LOOKUP_DAYS,
           view: LookupView = FULL_VIEW) -> dict[str, Any]:
    """What a dispatcher needs at a map click (WGS-84): the grid and its worker (newest plan),
    incidents within ``radius_m`` in the ``days`` before ``at`` (default now), nearest first,
    and the cameras whose field of view contains the point (online first, then nearest; each
    with its position and optics so maps can draw the sector)."""
    return json.loads(lookup_json(store, lon, lat, at, radius_m=radius_m, days=days, view=view))


# ---------------------------------------------------------------------------------------------
# Synthetic demo data.

def synth_demo_data(store: Store, *, seed: int = 0, county_code: str = "510104", n_incidents: int = 2000,
                    year: int | None = None, now: datetime | None = None,
                    progress: Progress | None = None) -> dict[str, int]:
    """Generate SYNTHETIC Skynet/Sharp Eyes cameras and ``n_incidents`` incidents from the streets
    and buildings in the store and write them (replacing earlier synthetic data). Incidents
    cover ``year``, or by default the 365 days before ``now`` (default today 00:00 UTC), so a
    demo's map clicks find recent ones and some are still open or overdue.

    Everything is marked: ``synthetic`` = true, source ``synthetic``, names/descriptions tagged
    （合成）. The same seed and store give the same data. Returns counts.
    """
    from gridpatrol.gis.synthetic import synthetic_cameras, synthetic_incidents
    from gridpatrol.layers.cameras import write_cameras
    from gridpatrol.layers.models import Camera
    from sqlalchemy import delete

    say = progress or (lambda _m: None)
    say("reading streets and buildings")
    roads = store.read_layer("roads")
    if len(roads) == 0:
        raise InputError("the store has no streets", hint="import an OSM extract first (gridpatrol import-osm)")
    buildings = store.read_layer("buildings")
    say("placing cameras")
    cams = synthetic_cameras(roads, buildings, county_code, seed)
    say("simulating a year of incidents")
    inc, events = synthetic_incidents(roads, n_incidents, seed, year=year, now=now)
    inc["lon"], inc["lat"] = inc.geometry.x.to_numpy(), inc.geometry.y.to_numpy()
    t, ev = Incident.__table__, IncidentEvent.__table__
    with store.begin() as conn:
        say("writing")
        old = select(t.c.id).where(t.c.synthetic.is_(True))
        conn.execute(delete(ev).where(ev.c.incident_id.in_(old)))
        conn.execute(delete(t).where(t.c.synthetic.is_(True)))
        conn.execute(delete(Camera.__table__).where(Camera.__table__.c.synthetic.is_(True)))
        n_cams = write_cameras(store, conn, cams)
        g = grids_at(store, conn, inc["lon"].to_numpy(), inc["lat"].to_numpy())
        inc["grid_code"] = g["grid_code"].to_numpy()
        inc["worker"] = g["worker"].to_numpy()
        recs = [{
            "external_id": r.external_id, "occurred_at": r.occurred_at, "category": r.category,
            "description": r.description, "source": r.source, "reporter": None, "state": r.state,
            "state_since": r.state_since, "version": int(r.version), "grid_code": r.grid_code, "worker": r.worker,
            "duplicate_of": None, "synthetic": True, "geom": f"SRID={SRID};POINT({r.lon!r} {r.lat!r})",
        } for r in inc.itertuples(index=False)]
        recs = [_sql_nulls(r) for r in recs]
        ids: list[int] = []
        for i in range(0, len(recs), 2000):
            res = conn.execute(t.insert().returning(t.c.id, sort_by_parameter_order=True), recs[i:i + 2000])
            ids.extend(int(x) for x in res.scalars().all())
        id_of = np.asarray(ids)
        evs = events.assign(incident_id=id_of[events["incident"].to_numpy()], actor="synthetic").drop(columns="incident")
        ev_recs = evs.astype(object).where(evs.notna(), None).to_dict("records")
        for i in range(0, len(ev_recs), 5000):
            conn.execute(ev.insert(), ev_recs[i:i + 5000])
    return {"skynet_cameras": int((cams["project"] == "skynet").sum()),
            "sharp_eyes_cameras": int((cams["project"] == "sharp_eyes").sum()),
            "cameras_written": int(n_cams), "incidents": len(ids), "events": len(ev_recs),
            "open_incidents": int((inc["state"] != "closed").sum()), "in_grid": int(inc["grid_code"].notna().sum())}
