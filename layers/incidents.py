"""Incident register in the store: create/import with grid and worker, closed-loop transitions with optimistic locking, overdue list, map-click lookup."""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from gridpatrol.gis.cameras import (
    DEFAULT_RANGE_M,
    M_MIN,
    WGS84_A,
    cameras_in_view,
    degree_box,
    points_within,
)
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

# PostGIS: one statement finds every candidate through the GiST indexes and returns them as one
# row of arrays (one round trip); the exact radius and in-view tests are gis.cameras', as on
# GeoPackage. Candidates come from a materialized CTE, so that a generic plan cannot prefer
# another index; the role filters (a worker's grids, a secrecy level) are applied there too.
_INCIDENT_COLS = ("id", "category", "state", "occurred_at", "description", "duplicate_of", "lon", "lat")
_CAMERA_COLS = ("code", "name", "project", "camera_type", "secrecy_level", "azimuth_deg", "fov_deg", "range_m",
                "status", "lon", "lat")
_GRID_SQL = """(SELECT ARRAY[code, name, worker]
  FROM grids
  WHERE plan_id = (SELECT max(id) FROM grid_plans) AND geom && ST_Point(%(lon)s, %(lat)s, 4326)
    AND ST_Intersects(geom, ST_Point(%(lon)s, %(lat)s, 4326))
  ORDER BY code LIMIT 1)"""
_INCIDENTS_SQL = """(
  WITH c AS MATERIALIZED (
    SELECT * FROM incidents WHERE geom && ST_MakeEnvelope(%(ix0)s, %(iy0)s, %(ix1)s, %(iy1)s, 4326))
  SELECT array_agg(id), array_agg(category), array_agg(state), array_agg(occurred_at), array_agg(description),
         array_agg(duplicate_of), array_agg(ST_X(geom)), array_agg(ST_Y(geom))
  FROM c WHERE occurred_at >= %(t0)s AND occurred_at <= %(t1)s{own}) i"""
_OWN_INCIDENTS_SQL = f" AND grid_code IN ({CURRENT_GRIDS_OF_SQL})"
# The search box is degree_box() of the longest range (read from the range index).
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
  SELECT array_agg(code), array_agg(name), array_agg(project), array_agg(camera_type), array_agg(secrecy_level),
         array_agg(azimuth_deg), array_agg(fov_deg), array_agg(range_m), array_agg(status),
         array_agg(ST_X(geom)), array_agg(ST_Y(geom))
  FROM c) c"""
_SECRECY_SQL = " AND secrecy_level <= %(sec)s"


@lru_cache(maxsize=32)
def _pg_lookup_sql(incidents: bool, own_incidents: bool, cameras: bool, secrecy: bool) -> str:
    """The PostGIS map-click statement for one combination of visible sections (hidden sections
    are not in it at all): the grid, then the candidate columns of each shown section."""
    sql = "SELECT " + _GRID_SQL + (", i.*" if incidents else "") + (", c.*" if cameras else "")
    tables = ([_INCIDENTS_SQL.format(own=_OWN_INCIDENTS_SQL if own_incidents else "")] if incidents else []) + (
        [_CAMERAS_SQL.format(secrecy=_SECRECY_SQL if secrecy else "")] if cameras else [])
    if tables:
        sql += " FROM " + ", ".join(tables)
    # Whitespace squeezed: psycopg caches the conversion of statements up to 4096 characters.
    return re.sub(r"\s+", " ", sql).strip()


def lookup_statement(lon: float, lat: float, when: datetime, *, radius_m: float = LOOKUP_RADIUS_M,
                     days: float = LOOKUP_DAYS, view: LookupView = FULL_VIEW) -> tuple[str, dict[str, Any]]:
    """The PostGIS map-click statement and its parameters (psycopg ``%(name)s`` style), for
    callers that run it on their own (async) connection. Its one row holds the grid and the
    candidates; :func:`lookup_document` tests and ranks them."""
    sql = _pg_lookup_sql(view.incidents, view.incidents_of is not None, view.cameras, view.camera_max_secrecy is not None)
    ix0, iy0, ix1, iy1 = degree_box(lon, lat, radius_m)
    when = utc(when)
    return sql, {"lon": lon, "lat": lat, "a": WGS84_A, "m": M_MIN, "dr": max(DEFAULT_RANGE_M.values()),
                 "ix0": ix0, "iy0": iy0, "ix1": ix1, "iy1": iy1, "t0": when - timedelta(days=days), "t1": when,
                 "own": view.incidents_of, "sec": view.camera_max_secrecy}


@dataclass(frozen=True)
class ClickCandidates:
    """What the store found around a click: the grid (code, name, worker) or None, and the
    candidate incidents and cameras as columns (None for a section the view hides)."""

    grid: Sequence[Any] | None
    incidents: dict[str, Sequence[Any]] | None
    cameras: dict[str, Sequence[Any]] | None


def _columns(names: tuple[str, ...], values: Sequence[Any] = ()) -> dict[str, Sequence[Any]]:
    """Columns by name; a missing or NULL column (array_agg of no rows) is empty."""
    values = list(values) or [None] * len(names)
    return {k: (v if v is not None else []) for k, v in zip(names, values)}


def row_candidates(row: Sequence[Any], view: LookupView) -> ClickCandidates:
    """The row of :func:`lookup_statement` as candidates."""
    k = 1 + (len(_INCIDENT_COLS) if view.incidents else 0)
    return ClickCandidates(row[0], _columns(_INCIDENT_COLS, row[1:k]) if view.incidents else None,
                           _columns(_CAMERA_COLS, row[k:k + len(_CAMERA_COLS)]) if view.cameras else None)


def _store_candidates(store: Store, conn: Connection, lon: float, lat: float, when: datetime, radius_m: float,
                      days: float, view: LookupView) -> ClickCandidates:
    """The candidates through SQLAlchemy index queries (GeoPackage; on PostGIS too, which tests
    use to check the one-statement path against it)."""
    g = grids_at(store, conn, np.array([lon]), np.array([lat])).iloc[0]
    grid = None if g["grid_code"] is None else (g["grid_code"], g["grid_name"], g["worker"])
    incidents = cameras = None
    if view.incidents:
        t = Incident.__table__
        cond = [store.bbox_filter(t, degree_box(lon, lat, radius_m)),
                t.c.occurred_at >= when - timedelta(days=days), t.c.occurred_at <= when]
        if view.incidents_of is not None:
            cond.append(worker_rows(t, view.incidents_of))
        rows = conn.execute(select(t.c.id, t.c.category, t.c.state, t.c.occurred_at, t.c.description, t.c.duplicate_of,
                                   func.ST_X(t.c.geom), func.ST_Y(t.c.geom)).where(and_(*cond))).all()
        incidents = _columns(_INCIDENT_COLS, list(zip(*rows)))
    if view.cameras:
        rows = [r._mapping for r in candidate_cameras(store, conn, lon, lat, max_range_m(conn))]
        if view.camera_max_secrecy is not None:
            rows = [r for r in rows if r["secrecy_level"] <= view.camera_max_secrecy]
        cameras = {c: [r[c] for r in rows] for c in _CAMERA_COLS}
    return ClickCandidates(grid, incidents, cameras)


def _number(v: Any) -> Any:
    """A stored optics value for JSON: NaN (PostgreSQL can hold it) as null."""
    return None if isinstance(v, float) and v != v else v


def _click_document(lon: float, lat: float, when: datetime, cand: ClickCandidates, radius_m: float,
                    view: LookupView) -> bytes:
    """The map-click answer as JSON bytes: the exact radius and in-view tests of gis.cameras
    over the candidates, ranked (incidents nearest first; cameras online first, then nearest)."""
    out = [f'{{"lon":{json.dumps(lon)},"lat":{json.dumps(lat)},"at":"{utc(when).isoformat()}","grid":']
    if cand.grid is None:
        out.append("null")
    else:
        grid = {"code": cand.grid[0], "name": cand.grid[1]}
        if view.worker_names:
            grid["worker"] = cand.grid[2]
        out.append(json.dumps(grid, ensure_ascii=False))
    if cand.incidents is not None:
        inc = cand.incidents
        idx, dist = points_within(lon, lat, inc["lon"], inc["lat"], radius_m)
        items = []
        for d, i in sorted(zip(dist.tolist(), idx.tolist()), key=lambda p: (p[0], inc["id"][p[1]])):
            items.append({"id": inc["id"][i], "category": inc["category"][i], "state": inc["state"][i],
                          "state_zh": STATES.get(inc["state"][i]), "occurred_at": utc(inc["occurred_at"][i]).isoformat(),
                          "description": inc["description"][i], "duplicate_of": inc["duplicate_of"][i],
                          "distance_m": round(d, 1)})
        out.append(',"incidents":' + json.dumps(items, ensure_ascii=False, allow_nan=False))
    if cand.cameras is not None:
        cam = cand.cameras
        seen = cameras_in_view(lon, lat, cam)
        items = []
        for i, d, b, on, st in zip(seen.index.tolist(), seen.distance_m.tolist(), seen.bearing_deg.tolist(),
                                   seen.online.tolist(), seen.status.tolist()):
            items.append({"code": cam["code"][i], "name": cam["name"][i], "project": cam["project"][i],
                          "distance_m": round(d, 1), "bearing_deg": round(b, 1), "in_view": True, "online": on,
                          "status": st, "camera_type": cam["camera_type"][i], "secrecy_level": cam["secrecy_level"][i],
                          "azimuth_deg": _number(cam["azimuth_deg"][i]), "fov_deg": _number(cam["fov_deg"][i]),
                          "range_m": _number(cam["range_m"][i]), "lon": cam["lon"][i], "lat": cam["lat"][i]})
        out.append(',"cameras":' + json.dumps(items, ensure_ascii=False, allow_nan=False))
    out.append("}")
    return "".join(out).encode("utf-8")


def lookup_document(lon: float, lat: float, when: datetime, row: Sequence[Any], view: LookupView = FULL_VIEW, *,
                    radius_m: float = LOOKUP_RADIUS_M) -> bytes:
    """The map-click answer as JSON bytes from the row of :func:`lookup_statement` (run with the
    same ``radius_m`` and ``view``)."""
    return _click_document(lon, lat, when, row_candidates(row, view), radius_m, view)

def lookup_json(store: Store, lon: float, lat: float, at: datetime | None = None, *,
                radius_m: float = LOOKUP_RADIUS_M, days: float = LOOKUP_DAYS,
                view: LookupView = FULL_VIEW, conn: Connection | None = None, python: bool = False) -> bytes:
    """:func:`lookup` as JSON bytes, cut down to ``view`` (what the API sends).

    The store finds the candidates through its spatial index (PostGIS: one statement,
    :func:`lookup_statement`; GeoPackage, or ``python=True`` on PostGIS: SQLAlchemy queries);
    gis.cameras decides which are within the radius and in view, the same way for both."""
    lon, lat = check_lonlat(lon, lat)
    when = utc(at)
    if conn is None:
        with store.engine.connect() as c:
            return lookup_json(store, lon, lat, when, radius_m=radius_m, days=days, view=view, conn=c, python=python)
    if store.is_gpkg or python:
        return _click_document(lon, lat, when, _store_candidates(store, conn, lon, lat, when, radius_m, days, view),
                               radius_m, view)
    sql, params = lookup_statement(lon, lat, when, radius_m=radius_m, days=days, view=view)
    # A generic plan: planning this statement costs more than running it. SET LOCAL ends
    # with the transaction, so other users of the pooled connection are not affected.
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    row = conn.connection.driver_connection.execute(sql, params, prepare=True).fetchone()
    return lookup_document(lon, lat, when, row, view, radius_m=radius_m)


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
