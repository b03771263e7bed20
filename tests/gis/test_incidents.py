"""The closed loop: every legal path, every illegal transition refused, deadlines, duplicates vs brute force."""
from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pyproj
import pytest
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.gis.incidents import CATEGORIES as CATEGORIES_ALL
from gridpatrol.gis.incidents import (
    DEFAULT_DEADLINES_H,
    NOTE_REQUIRED,
    STATES,
    TRANSITIONS,
    check_transition,
    deadlines_hours,
    find_duplicates,
    legal_paths,
    normalize_state,
    overdue,
)

from tests.conftest import (
    DATA,  # noqa: E402  (GRIDPATROL_DATA or ../shared/data)
    missing_dependency,
)


def test_every_legal_path_reaches_closed_and_uses_every_transition():
    paths = legal_paths()
    assert ["reported", "handled", "completed", "feedback", "revisited", "closed"] in paths
    assert ["reported", "escalated", "assigned", "completed", "feedback", "revisited", "closed"] in paths
    assert ["reported", "closed"] in paths
    used = set()
    for path in paths:
        for a, b in itertools.pairwise(path):
            check_transition(a, b, note="reason given")  # must not raise
            used.add((a, b))
    edges = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert used == edges
    # the loop-backs are on some path: returned by a department, reopened after the revisit
    assert any(("assigned", "escalated") in set(itertools.pairwise(p)) and ("revisited", "assigned") in
               set(itertools.pairwise(p)) for p in paths)


def test_every_illegal_transition_is_refused():
    legal = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    refused = 0
    for a, b in itertools.product(STATES, STATES):
        if (a, b) in legal:
            continue
        with pytest.raises(ConflictError, match="cannot move"):
            check_transition(a, b, note="x")
        refused += 1
    assert refused == len(STATES) ** 2 - len(legal)
    with pytest.raises(ConflictError, match="closed"):
        check_transition("closed", "reported")


def test_transitions_that_need_a_reason_refuse_an_empty_note():
    for a, b in NOTE_REQUIRED:
        with pytest.raises(InputError, match="needs a note"):
            check_transition(a, b, note="  ")
        check_transition(a, b, note="why")


def test_chinese_state_names_are_understood():
    assert normalize_state("上报") == "escalated"
    assert normalize_state("回访") == "revisited"
    with pytest.raises(InputError, match="unknown incident state"):
        normalize_state("done")


def test_overdue_uses_per_state_deadlines():
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    df = pd.DataFrame({
        "id": [1, 2, 3, 4, 5],
        "state": ["reported", "reported", "assigned", "assigned", "closed"],
        "state_since": [now - timedelta(hours=1), now - timedelta(hours=3), now - timedelta(hours=71),
                        now - timedelta(hours=80), now - timedelta(days=300)],
    })
    res = overdue(df, now=now)
    assert list(res["id"]) == [4, 2]  # most overdue first; closed never overdue
    assert res["overdue_h"].tolist() == pytest.approx([80 - DEFAULT_DEADLINES_H["assigned"], 3 - 2])
    res2 = overdue(df, now=now, deadlines={"交办": 48})
    assert list(res2["id"]) == [4, 3, 2]
    with pytest.raises(InputError):
        deadlines_hours({"reported": -1})


def test_duplicates_match_brute_force_on_baltimore_property_crime():
    p = DATA / "baltimore" / "crime_2018_property.json"
    if not p.exists():
        missing_dependency(f"real data file {p} is missing")
    df = pd.DataFrame(json.loads(p.read_text()))
    df = df[df["Longitude"].notna()].head(3000).reset_index(drop=True)
    inc = pd.DataFrame({
        "id": np.arange(1, len(df) + 1), "lon": df["Longitude"].astype(float), "lat": df["Latitude"].astype(float),
        # many records share a timestamp and street: the data has real duplicates to find
        "occurred_at": pd.to_datetime(df["CrimeDate"], unit="ms", utc=True)
        + pd.to_timedelta(df["CrimeTime"].fillna("00:00:00"), errors="coerce").fillna(pd.Timedelta(0)),
        "category": df["Description"], "state": "reported",
    })
    existing, new = inc.iloc[:1500], inc.iloc[1500:].copy()
    dup = find_duplicates(new, existing)
    geod = pyproj.Geod(ellps="WGS84")
    allx = pd.concat([existing, new])
    t = allx["occurred_at"].astype("int64").to_numpy() / 1e9
    # brute force over all pairs: is a new row within 50 m and 24 h of an earlier/older row?
    n_new = 0
    for k, (idx, row) in enumerate(new.iterrows()):
        pos = 1500 + k
        same = (allx["category"].to_numpy() == row["category"])
        cand = np.flatnonzero(same)
        cand = cand[cand != pos]
        _, _, d = geod.inv(np.full(len(cand), row["lon"]), np.full(len(cand), row["lat"]),
                           allx["lon"].to_numpy()[cand], allx["lat"].to_numpy()[cand])
        close = cand[(d <= 50.0) & (np.abs(t[cand] - t[pos]) <= 24 * 3600)]
        earlier = [c for c in close if (t[c], c >= 1500, c) < (t[pos], True, pos)]
        if earlier:
            n_new += 1
            assert pd.notna(dup.loc[idx]), f"row {idx} has an earlier twin but was not flagged"
            ref = int(dup.loc[idx])
            assert ref != row["id"]
        else:
            # the earliest of its group: only flagged if it chains (never, since nothing earlier)
            assert pd.isna(dup.loc[idx]), f"row {idx} flagged without an earlier twin"
    assert n_new > 10


def test_duplicates_within_a_batch_point_to_the_original():
    t0 = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    geod = pyproj.Geod(ellps="WGS84")
    lon1, lat1, _ = geod.fwd(104.06, 30.66, 90, 30)
    lon2, lat2, _ = geod.fwd(104.06, 30.66, 90, 60)
    new = pd.DataFrame({
        "id": [10, 11, 12, 13, 14],
        "lon": [104.06, lon1, lon2, 104.06, 104.06], "lat": [30.66, lat1, lat2, 30.66, 30.66],
        "occurred_at": [t0, t0 + timedelta(hours=2), t0 + timedelta(hours=3), t0 + timedelta(hours=25), t0],
        "category": ["治安", "治安", "治安", "治安", "环境卫生"],
    })
    dup = find_duplicates(new)
    # 11 is 30 m/2 h from 10; 12 is 30 m from 11 (chain) → both point to 10; 13 is 25 h later but
    # within 24 h of 11 and 12 → still the same original; 14 is another category.
    assert [None if pd.isna(v) else int(v) for v in dup] == [None, 10, 10, 10, None]
    closed = pd.DataFrame({"id": [1], "lon": [104.06], "lat": [30.66], "occurred_at": [t0 - timedelta(hours=1)],
                           "category": ["治安"], "state": ["closed"]})
    assert find_duplicates(new.iloc[:1], closed).isna().all()  # closed incidents are not originals
    open_ = closed.assign(state="assigned")
    assert find_duplicates(new.iloc[:1], open_).tolist() == [1]


def test_the_duplicate_radius_holds_to_the_millimetre():
    """"Within 50 m" is the rule: a report of the same category 49.9995 m away (half a millimetre
    inside) is a duplicate of the open one, one 50.0005 m away is not (distances on the WGS-84
    ellipsoid, due east)."""
    t0 = datetime(2026, 1, 1, 8, tzinfo=timezone.utc)
    geod = pyproj.Geod(ellps="WGS84")
    existing = pd.DataFrame({"id": [7], "lon": [104.06], "lat": [30.66], "occurred_at": [t0],
                             "category": ["治安"], "state": ["reported"]})
    for metres, want in ((49.9995, [7]), (50.0005, [None])):
        lon, lat, _ = geod.fwd(104.06, 30.66, 90, metres)
        new = pd.DataFrame({"lon": [lon], "lat": [lat], "occurred_at": [t0 + timedelta(hours=1)], "category": ["治安"]})
        got = find_duplicates(new, existing)
        assert [None if pd.isna(v) else int(v) for v in got] == want, metres


def test_a_naive_now_is_read_as_utc():
    """overdue() with a ``now`` without a time zone reads it as UTC: the same incidents, the same
    hours, as with the aware time."""
    now = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
    df = pd.DataFrame({"id": [1, 2], "state": ["reported", "assigned"],
                       "state_since": [now - timedelta(hours=3), now - timedelta(hours=80)]})
    aware, naive = overdue(df, now=now), overdue(df, now=now.replace(tzinfo=None))
    assert list(naive["id"]) == list(aware["id"]) == [2, 1]
    assert naive["overdue_h"].tolist() == pytest.approx(aware["overdue_h"].tolist())


def test_synthetic_incidents_follow_the_loop_and_are_reproducible():
    import shapely
    from gridpatrol.gis.synthetic import synthetic_incidents

    p = DATA / "nanjing" / "xuanwu.osm"
    if not p.exists():
        missing_dependency(f"real data file {p} is missing")
    from gridpatrol.gis.osm import read_osm

    roads = read_osm(p).roads
    inc, ev = synthetic_incidents(roads, 800, seed=3, year=2025)
    inc2, ev2 = synthetic_incidents(roads, 800, seed=3, year=2025)
    assert inc.drop(columns="geometry").equals(inc2.drop(columns="geometry")) and ev.equals(ev2)
    assert inc["synthetic"].all() and inc["description"].str.contains("合成").all()
    assert set(inc["category"]) <= set(CATEGORIES_ALL) and inc["category"].nunique() >= 6
    start = datetime(2025, 1, 1, tzinfo=timezone.utc) - timedelta(hours=8)
    assert (inc["occurred_at"] >= start).all() and (inc["occurred_at"] < start + timedelta(days=365)).all()
    for i, g in ev.groupby("incident"):
        states = list(g.sort_values("seq")["to_state"])
        assert states[0] == "reported"
        for a, b in itertools.pairwise(states):
            check_transition(a, b, note="n")  # every simulated step is a legal transition
        assert states[-1] == inc.loc[i, "state"] and len(states) == inc.loc[i, "version"]
        assert g["at"].is_monotonic_increasing
    assert (inc["state"] == "closed").mean() > 0.8  # a year later most are closed
    # near the streets: within 60 m (12 m normal jitter)
    utm = inc.to_crs(32650)
    lines = shapely.union_all(roads.to_crs(32650).geometry.values)
    assert shapely.distance(utm.geometry.values, lines).max() < 60
