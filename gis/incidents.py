"""The incident closed loop (发现 → 处置/上报 → 交办 → 办结 → 反馈 → 回访 → 结案): states, transitions, deadlines, duplicates."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
from gridpatrol.gis.cameras import distance_bearing, ecef
from gridpatrol.gis.errors import ConflictError, InputError
from scipy.spatial import cKDTree

# The states, in loop order, with the Chinese term dispatchers use.
STATES: dict[str, str] = {
    "reported": "发现",
    "handled": "处置",
    "escalated": "上报",
    "assigned": "交办",
    "completed": "办结",
    "feedback": "反馈",
    "revisited": "回访",
    "closed": "结案",
}
OPEN_STATES = tuple(s for s in STATES if s != "closed")

# Legal transitions. Decisions (documented in the README):
# - reported → handled: the grid worker deals with it on the spot (就地处置);
#   reported → escalated: beyond the worker, reported up to the governance centre (上报);
#   reported → closed: discarded at intake (duplicate or not an incident) — a note is required.
# - handled → completed: on-the-spot handling is finished and recorded (办结); the loop then
#   continues with feedback and revisit like any other incident. handled → escalated: the
#   on-the-spot attempt failed, so it goes up after all.
# - escalated → assigned: the centre hands it to a department (交办).
# - assigned → completed: the department finished (办结); assigned → escalated: the department
#   sends it back as not theirs (退回), and the centre assigns it again.
# - completed → feedback (反馈 to the reporter) → revisited (回访) → closed (结案);
#   revisited → assigned: the revisit found the problem unsolved, so it is assigned again (重办).
# - closed is final.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("handled", "escalated", "closed"),
    "handled": ("completed", "escalated"),
    "escalated": ("assigned",),
    "assigned": ("completed", "escalated"),
    "completed": ("feedback",),
    "feedback": ("revisited",),
    "revisited": ("closed", "assigned"),
    "closed": (),
}
# Transitions that need a reason in the note.
NOTE_REQUIRED = {("reported", "closed"), ("assigned", "escalated"), ("revisited", "assigned"),
                 ("handled", "escalated")}

# Default time allowed in each state before the incident is overdue (hours). The governance
# centre sets its own through ``deadlines``; these follow common county practice: first response
# within 2 h, department work within 3 days, revisit within 3 days of feedback.
DEFAULT_DEADLINES_H: dict[str, float] = {
    "reported": 2.0,
    "handled": 24.0,
    "escalated": 4.0,
    "assigned": 72.0,
    "completed": 24.0,
    "feedback": 72.0,
    "revisited": 24.0,
}

DUPLICATE_RADIUS_M = 50.0
DUPLICATE_WINDOW_S = 24 * 3600.0

# Categories a county's governance centre uses (the synthetic data draws from these).
CATEGORIES = ("矛盾纠纷", "治安", "消防安全", "环境卫生", "道路交通", "市政设施", "食品药品", "安全生产", "其他")


def state_name(state: str) -> str:
    """``reported (发现)``: the state with its Chinese name, for messages."""
    return f"{state} ({STATES[state]})" if state in STATES else repr(state)


def normalize_state(state: str) -> str:
    """The English state key for an English or Chinese state name; InputError otherwise."""
    s = str(state).strip().lower()
    if s in STATES:
        return s
    for key, zh in STATES.items():
        if str(state).strip() == zh:
            return key
    raise InputError(f"unknown incident state {state!r}",
                     hint="states: " + ", ".join(f"{k} {v}" for k, v in STATES.items()))


def check_transition(from_state: str, to_state: str, note: str | None = None) -> None:
    """Refuse an illegal transition with a ConflictError saying what is allowed instead."""
    if from_state not in STATES:
        raise InputError(f"unknown incident state {from_state!r}")
    to_state = normalize_state(to_state)
    allowed = TRANSITIONS[from_state]
    if to_state not in allowed:
        options = ", ".join(state_name(s) for s in allowed) or "nothing (it is closed)"
        raise ConflictError(
            f"an incident in state {state_name(from_state)} cannot move to {state_name(to_state)}",
            hint=f"from {from_state} it can move to {options}",
        )
    if (from_state, to_state) in NOTE_REQUIRED and not (note and note.strip()):
        raise InputError(f"moving from {from_state} to {to_state} needs a note saying why",
                         hint="pass --note")


def legal_paths(start: str = "reported", end: str = "closed", *, max_visits: int = 2) -> list[list[str]]:
    """Every route from ``start`` to ``end`` that visits no state more than ``max_visits`` times
    (so each loop-back — a department returning the incident, a failed revisit — is included)."""
    out: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in TRANSITIONS[path[-1]]:
            if nxt == end:
                out.append(path + [nxt])
            elif path.count(nxt) < max_visits:
                walk(path + [nxt])

    walk([start])
    return out


def deadlines_hours(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """The per-state deadlines (hours) with ``overrides`` applied; unknown states refused."""
    out = dict(DEFAULT_DEADLINES_H)
    for key, hours in (overrides or {}).items():
        state = normalize_state(key)
        if state == "closed":
            raise InputError("a closed incident has no deadline")
        if not hours or float(hours) <= 0:
            raise InputError(f"deadline for {state} must be a positive number of hours, got {hours!r}")
        out[state] = float(hours)
    return out


def overdue(incidents: pd.DataFrame, now: datetime | None = None,
            deadlines: Mapping[str, float] | None = None) -> pd.DataFrame:
    """Open incidents past their current state's deadline, most overdue first.

    ``incidents`` needs ``state`` and ``state_since`` (tz-aware, or naive UTC). Adds
    ``due_at`` and ``overdue_h`` (hours past the deadline).
    """
    now = now or datetime.now(timezone.utc)
    hours = deadlines_hours(deadlines)
    df = incidents[incidents["state"].isin(OPEN_STATES)].copy()
    since = pd.to_datetime(df["state_since"], utc=True)
    limit_h = df["state"].map(hours).astype(float)
    df["due_at"] = since + pd.to_timedelta(limit_h, unit="h")
    df["overdue_h"] = (pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else
                       pd.Timestamp(now, tz="UTC")) - df["due_at"]
    df["overdue_h"] = df["overdue_h"].dt.total_seconds() / 3600.0
    return df[df["overdue_h"] > 0].sort_values("overdue_h", ascending=False)


def find_duplicates(
    new: pd.DataFrame, existing: pd.DataFrame | None = None, *,
    radius_m: float = DUPLICATE_RADIUS_M, window_s: float = DUPLICATE_WINDOW_S,
) -> pd.Series:
    """For each new incident, the id of an open incident it probably duplicates, else <NA>.

    Both frames need ``lon, lat`` (WGS-84), ``occurred_at`` and ``category``; ``existing``
    also ``id`` and ``state`` (only open ones count) and ``new`` an ``id`` when its rows may
    duplicate each other (an import batch). A duplicate is of the same category, within
    ``radius_m`` metres and ``window_s`` seconds, and points to the earliest such incident
    (following chains, so every copy points at the original).
    """
    cols = ["id", "lon", "lat", "occurred_at", "category"]
    frames = []
    if existing is not None and len(existing):
        ex = existing[existing["state"].isin(OPEN_STATES)]
        frames.append(ex[cols].assign(_new=-1))
    nn = new.copy()
    if "id" not in nn:
        nn["id"] = pd.NA
    frames.append(nn[cols].assign(_new=np.arange(len(nn))))
    allx = pd.concat(frames, ignore_index=True)
    allx["t"] = pd.to_datetime(allx["occurred_at"], utc=True).astype("int64") / 1e9
    result = pd.Series(pd.array([pd.NA] * len(new), dtype="Int64"), index=new.index)
    if len(allx) < 2:
        return result
    xyz = ecef(allx["lon"].to_numpy(float), allx["lat"].to_numpy(float))
    tree = cKDTree(xyz)
    pairs = tree.query_pairs(radius_m + 1e-3, output_type="ndarray")
    if len(pairs) == 0:
        return result
    i, j = pairs[:, 0], pairs[:, 1]
    lon, lat = allx["lon"].to_numpy(float), allx["lat"].to_numpy(float)
    dist, _ = distance_bearing(lon[i], lat[i], lon[j], lat[j])
    t = allx["t"].to_numpy()
    cat = allx["category"].astype(str).to_numpy()
    ok = (dist <= radius_m) & (np.abs(t[i] - t[j]) <= window_s) & (cat[i] == cat[j])
    i, j = i[ok], j[ok]
    # Orient each pair earlier → later (ties: existing rows, then file order, come first).
    rank = np.lexsort((np.arange(len(allx)), allx["_new"].to_numpy() >= 0, t))
    pos = np.empty(len(allx), dtype=np.int64)
    pos[rank] = np.arange(len(allx))
    early = np.where(pos[i] < pos[j], i, j)
    late = np.where(pos[i] < pos[j], j, i)
    root = np.arange(len(allx))
    # Earliest candidate per later row; processing rows in time order resolves chains.
    best = pd.DataFrame({"late": late, "early": early, "p": pos[early]}).sort_values("p").drop_duplicates("late")
    parent = dict(zip(best["late"], best["early"]))
    for r in rank:
        if r in parent:
            root[r] = root[parent[r]]
    new_rows = np.flatnonzero(allx["_new"].to_numpy() >= 0)
    ids = allx["id"].to_numpy(object)
    vals: list[object] = []
    for r in new_rows:
        if root[r] == r:
            vals.append(pd.NA)
        else:
            ref = ids[root[r]]
            vals.append(pd.NA if ref is None or pd.isna(ref) else int(ref))
    result[:] = pd.array(vals, dtype="Int64")
    return result


def utc(ts: datetime | None) -> datetime:
    """``ts`` as a tz-aware UTC datetime (naive values are taken as UTC); now when None."""
    if ts is None:
        return datetime.now(timezone.utc)
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


# Incidents are recorded from 1990 on (no county register is older) and never dated ahead of now by
# more than a day (clocks and time zones of reporting devices differ by hours, not days).
EARLIEST_INCIDENT = datetime(1990, 1, 1, tzinfo=timezone.utc)
FUTURE_SLACK = timedelta(days=1)


def time_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The earliest and latest acceptable incident time (UTC) as of ``now``."""
    return EARLIEST_INCIDENT, utc(now) + FUTURE_SLACK


def check_incident_time(ts: datetime | None, what: str = "occurred_at") -> datetime:
    """``ts`` in UTC (now when None); InputError when it is before 1990 or over a day in the future."""
    when = utc(ts)
    lo, hi = time_window()
    if not lo <= when <= hi:
        raise InputError(f"{what} {when.isoformat()} is outside {lo.date()} … {hi.isoformat(timespec='minutes')}",
                         hint="incident times are from 1990 on and at most a day ahead of now; check the year "
                              "and the time zone")
    return when


def since(days: float, at: datetime | None = None) -> datetime:
    """The UTC time ``days`` before ``at`` (default now)."""
    return utc(at) - timedelta(days=days)
