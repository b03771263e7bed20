"""Tracks and assessment (GeoPackage and PostGIS): simulated walks along planned routes on Chengdu's
streets, matched and reported; half walks; suspicious tracks; idempotent chunks; the 考核表 files."""
from __future__ import annotations

import shutil
import subprocess
from datetime import date

import numpy as np
import pytest
import shapely
from gridpatrol.gis.assessment import GridInput, TrackInput, assess
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.gis.routing.area import required_mask
from gridpatrol.gis.streets import street_network
from gridpatrol.gis.tracks import Track
from gridpatrol.gis.tracksim import precision_recall, simulate_walk
from gridpatrol.layers.patrols import patrol_report
from gridpatrol.layers.routes import read_routes
from gridpatrol.layers.tracks import add_chunk, read_tracks, save_track

from tests.layers.track_seed import GRIDS, T0, gpx_xml, seed, seeded_store_fixture, walk_network

DAY = date(2026, 11, 2)


tstore = seeded_store_fixture("tracks-seed", seed)


@pytest.fixture(scope="module")
def net(tstore):
    return walk_network(tstore)


def _metric(net, geom):
    tf = net.transformer()
    return shapely.transform(geom, lambda xy: np.column_stack(tf.transform(xy[:, 0], xy[:, 1])))


def _route(tstore, net, code: str, shift: int = 1):
    r = read_routes(tstore, code, mode="walk")
    r = r[r["shift"].fillna(1).astype(int) == shift]
    return _metric(net, r.geometry.iloc[0])


def _truth_share(net, poly_m, truth) -> float:
    """Independent of the matcher: the grid's streets within 3 m of the line truly walked."""
    req = required_mask(net, poly_m)
    g = net.edge_geom[req]
    walked = shapely.length(shapely.intersection(g, truth.buffer(3.0)))
    return float(np.minimum(walked, shapely.length(g)).sum() / shapely.length(g).sum())


def _to_lonlat(net, x, y):
    lon, lat = net.transformer(inverse=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


# The matcher's constants (σ estimate, TWIN_LOG_ODDS, SPUR_SIGMAS, β) were tuned on simulated walks with
# seeds 1–7 along the routes of T01 and T03 (docs/patrols.md); these seeds were never used for tuning.
TEST_SEED = 9000


def _coverage_rows(tstore, net, sigma, cases):
    from gridpatrol.gis.mapmatch import HmmMatcher, planned_moves, planned_passes

    poly = _metric(net, shapely.box(*GRIDS["T01"][0]))
    line = _route(tstore, net, "T01")
    rows = []
    for every, share in cases:
        seed_ = TEST_SEED + sigma * 100 + every
        w = simulate_walk(line, sigma_m=sigma, every_s=every, share=share, gaps=2, gap_s=60, seed=seed_)
        # The grid with its planned route, as the patrol report assesses it (the plan is the matcher's prior).
        rep = assess(net, [GridInput("T01", poly, shifts={1: (1, line)})], [TrackInput(1, w.x, w.y, w.t, [])], sigma_m=15.0)
        got = rep["grids"][0]["covered_share"]
        truth = _truth_share(net, poly, w.truth)
        m = HmmMatcher(net, sigma_m=15.0, planned=planned_passes(net, [line]),
                       plan_moves=planned_moves(net, [line])).match(w.x, w.y, w.t)
        p, r, _, _ = precision_recall(m.walked_lines(net), w.truth, net.edge_geom)
        rows.append((every, share, seed_, truth, got, p, r, m.sigma_m))
    print(f"\nsigma {sigma} m: every_s share seed truth reported precision recall sigma_estimated")
    for row in rows:
        print("  %4d %4.1f %5d  %.3f  %.3f  %.3f  %.3f  %4.1f" % row)
    return rows


@pytest.mark.parametrize("sigma", [10, 20, 30])
def test_matched_coverage_is_within_five_points_of_the_truth(tstore, net, sigma):
    # Every case, the half walk at σ 30 m with a fix every 30 s too: it was 5.2 points too much (a fix thrown 110 m
    # off, explained as a walk 90 m down a side street and back in 30 s, out along the twin) until the matcher
    # weighed the time between fixes (docs/patrols.md, "Accuracy").
    cases = [(every, share) for every in (1, 5, 15, 30) for share in (1.0, 0.5)]
    for every, share, seed_, truth, got, p, r, sig in _coverage_rows(tstore, net, sigma, cases):
        assert abs(got - truth) <= 0.05, f"sigma {sigma}, every {every}s, share {share}, seed {seed_}: {got:.3f} vs truth {truth:.3f}"
        # The noise the matcher assumes is the track's own (docs/patrols.md "σ from the data"): at 20–30 m
        # the distance to the nearest street alone understated it (19 m for 30) and sparse noisy walks
        # strayed into side streets. At 10 m the prior 15 m is kept when the estimate is within 15 % of it.
        if sigma >= 20:
            assert abs(sig - sigma) <= 0.2 * sigma, f"sigma {sigma}, every {every}s, share {share}: estimated {sig:.1f} m"
        # Streets never walked are not counted: what is reported lies along the true walk (footways 15 m
        # beside their road are the part at σ 20–30 m that fixes every 5–30 s cannot always tell apart).
        hard = sigma >= 20 and every >= 5
        assert p >= (0.75 if hard else 0.9), f"sigma {sigma}, every {every}s, share {share}: precision {p:.3f}"


def test_sparse_fixes_credit_the_streets_between_them(tstore, net):
    """A fix a minute (75 m apart) with little noise: the streets between fixes count as walked."""
    from gridpatrol.gis.mapmatch import HmmMatcher

    w = simulate_walk(_route(tstore, net, "T01"), sigma_m=5, every_s=60, seed=5)
    m = HmmMatcher(net, sigma_m=15.0).match(w.x, w.y, w.t)
    p, r, _, _ = precision_recall(m.walked_lines(net), w.truth, net.edge_geom)
    print(f"\none fix a minute: precision {p:.3f} recall {r:.3f}")
    assert r >= 0.85 and p >= 0.9


# Around 西御街/支矶石街 (old town west of 天府广场): the densest short streets of the extract.
OLD_TOWN = (104.0515, 30.6545, 104.0595, 30.6650)


def _walked_through_between_fixes(net, w, speed_mps: float = 1.25) -> np.ndarray:
    """Edges the true walk ran along from one end to the other between two consecutive fixes, with
    no fix on them (independent of the matcher: from the true positions and the true line)."""
    from shapely.ops import substring

    g, glen = net.edge_geom, shapely.length(net.edge_geom)
    a = shapely.get_coordinates(shapely.get_point(g, 0))
    b = shapely.get_coordinates(shapely.get_point(g, -1))
    fixes = shapely.STRtree(shapely.points(w.true_xy))
    has_fix = np.zeros(len(g), dtype=bool)
    has_fix[np.unique(fixes.query(g, predicate="dwithin", distance=1.0)[0])] = True
    tree, s, out = shapely.STRtree(g), (w.t - w.t[0]) * speed_mps, set()
    for i in range(len(s) - 1):
        zone = substring(w.truth, s[i], s[i + 1]).buffer(3.0)
        for e in tree.query(zone, predicate="intersects"):
            if has_fix[e] or glen[e] <= 1.0 or shapely.length(shapely.intersection(g[e], zone)) < 0.95 * glen[e]:
                continue
            p, q = w.true_xy[i], w.true_xy[i + 1]
            pa, pb = np.hypot(*(p - a[e])), np.hypot(*(p - b[e]))
            qa, qb = np.hypot(*(q - a[e])), np.hypot(*(q - b[e]))
            if (pa < pb and qb < qa) or (pb < pa and qa < qb):  # entered at one end, left at the other
                out.add(int(e))
    return np.array(sorted(out), dtype=np.int64)


def test_sparse_fixes_every_30_s_credit_streets_walked_whole_between_them(tstore):
    """A fix every 30 s (about 37 m of walking): the short streets crossed end to end between two fixes
    count as covered (≥ 85 % of their length over three walks with σ 5 and 10 m, 80 % with 15 m), and streets the walk
    never came near (over 25 m) are not counted. The nearest-street snap, for contrast, credits none."""
    from gridpatrol.gis.mapmatch import HmmMatcher, nearest_snap
    from gridpatrol.gis.routing.coverage import plan_coverage

    roads = tstore.read_layer("roads", bbox=(104.03, 30.64, 104.08, 30.68))
    net = street_network(roads, mode="walk")
    line = plan_coverage(roads, shapely.box(*OLD_TOWN), mode="walk", time_limit_s=10).routes[0].geometry  # metric
    assert net.crs.equals(32648) and line.length > 15_000
    matcher = HmmMatcher(net, sigma_m=15.0)
    print(f"\nold-town patrol {line.length:.0f} m, a fix every 30 s: sigma seed streets m covered snap precision")
    for sigma in (5, 10, 15):
        got = want = 0.0
        for k in (1, 2, 3):
            w = simulate_walk(line, sigma_m=sigma, every_s=30, seed=k)
            through = _walked_through_between_fixes(net, w)
            m = matcher.match(w.x, w.y, w.t)
            cov, snap = m.covered_m(net), nearest_snap(net, w.x, w.y).covered_m(net)
            length = net.edge_length_m[through]
            c = float(np.minimum(cov[through], length).sum())
            p, _r, _, _ = precision_recall(m.walked_lines(net), w.truth, net.edge_geom)
            far = shapely.distance(net.edge_geom, w.truth) > 25.0
            print("  %2d %d  %2d %4.0f  %.3f  %.3f  %.3f" % (sigma, k, len(through), length.sum(), c / length.sum(),
                                                            np.minimum(snap[through], length).sum() / length.sum(), p))
            assert len(through) >= 10
            assert cov[far].sum() == 0.0, f"sigma {sigma} walk {k}: {cov[far].sum():.0f} m counted on streets never walked"
            assert p >= 0.95
            got, want = got + c, want + float(length.sum())
        # At σ 15 m the fixes cannot tell 西御街's two carriageways (14 m apart) or the footways 16–20 m
        # beside each other apart: some walks are credited to the twin way (docs/patrols.md).
        assert got / want >= (0.85 if sigma <= 10 else 0.8), f"sigma {sigma}: {got / want:.3f} of the streets walked between fixes"


def test_a_street_mapped_twice_is_walked_once(tstore, net):
    """Chengdu's data has ways over the same line (马镇街 twice): walking it covers both copies."""
    from gridpatrol.gis.mapmatch import HmmMatcher, duplicate_groups

    groups = duplicate_groups(net)
    twins = np.flatnonzero(np.bincount(groups)[groups] > 1)
    assert len(twins) >= 2
    e = int(twins[np.argmax(net.edge_length_m[twins])])
    line = net.edge_geom[e]
    w = simulate_walk(line, sigma_m=5, every_s=2, seed=1)
    cov = HmmMatcher(net, sigma_m=10.0).match(w.x, w.y, w.t).covered_m(net)
    same = np.flatnonzero(groups == groups[e])
    assert len(same) >= 2 and net.edge_length_m[e] > 100
    assert np.all(cov[same] >= 0.7 * net.edge_length_m[same]), cov[same]


def test_nothing_is_covered_by_a_walk_in_another_grid(tstore, net):
    """A full patrol of grid T03 covers (next to) nothing of T01 beyond the shared edge street."""
    line = _route(tstore, net, "T03")
    w = simulate_walk(line, sigma_m=20, every_s=10, seed=3)
    poly1 = _metric(net, shapely.box(*GRIDS["T01"][0]))
    rep = assess(net, [GridInput("T01", poly1)], [TrackInput(1, w.x, w.y, w.t, [])])
    assert rep["grids"][0]["covered_share"] <= _truth_share(net, poly1, w.truth) + 0.05


def _save(tstore, net, w, worker="wu", device="test") -> int:
    lon, lat = _to_lonlat(net, w.x, w.y)
    tr = Track(lon, lat, w.t, np.full(len(w.t), np.nan), device=device)
    return save_track(tstore, tr, worker=worker, source="api", device=device,
                      raw=np.column_stack([lon, lat, w.t]).tobytes()).track_id


def test_a_half_walked_route_reports_about_half(tstore, net):
    line = _route(tstore, net, "T01")
    w = simulate_walk(line, sigma_m=15, every_s=5, share=0.5, t0=T0, seed=11)
    tid = _save(tstore, net, w)
    rep = patrol_report(tstore, "wu", DAY, DAY)
    g = {r["code"]: r for r in rep["grids"]}
    assert set(g) == {"T01", "T02"}  # wu's grids only
    truth = _truth_share(net, _metric(net, shapely.box(*GRIDS["T01"][0])), w.truth)
    print(f"\nhalf walk: truth {truth:.3f}, reported {g['T01']['covered_share']:.3f}")
    assert 0.3 <= truth <= 0.7
    assert abs(g["T01"]["covered_share"] - truth) <= 0.05
    assert g["T02"]["covered_share"] <= 0.1
    assert [t["id"] for t in rep["tracks"] if t["counted"]] == [tid]
    assert g["T01"]["time_in_grid_s"] > 0.8 * (w.t[-1] - w.t[0]) - 300
    assert g["T01"]["distance_m"] == pytest.approx(line.length * 0.5, rel=0.15)
    # A half walk does not complete the grid's one shift; the other grid's shifts are all missed.
    assert g["T01"]["shifts_done"] == 0 and g["T01"]["shifts_missed"] == 1
    assert g["T02"]["shifts_missed"] == len(g["T02"]["shifts"]) >= 2


def test_each_shift_walked_is_done(tstore, net):
    rows = read_routes(tstore, "T02", mode="walk")
    t0 = T0 + 3 * 86400  # another day
    truths = []
    for k, shift in enumerate(sorted(rows["shift"].astype(int))):
        w = simulate_walk(_route(tstore, net, "T02", shift), sigma_m=15, every_s=10, t0=t0 + k * 4000, seed=20 + shift)
        _save(tstore, net, w)
        truths.append(w.truth)
    rep = patrol_report(tstore, "wu", date(2026, 11, 5), date(2026, 11, 5))
    g = {r["code"]: r for r in rep["grids"]}["T02"]
    assert g["shifts_missed"] == 0 and g["shifts_done"] == len(rows), g["shifts"]
    truth = _truth_share(net, _metric(net, shapely.box(*GRIDS["T02"][0])), shapely.union_all(truths))
    print(f"\nshifts walked: truth {truth:.3f}, reported {g['covered_share']:.3f}")
    assert abs(g["covered_share"] - truth) <= 0.05
    assert g["stops"] == 0  # walking on without standing still


def _walk(tstore, net, seed: int, t0: float):
    return simulate_walk(_route(tstore, net, "T01"), sigma_m=10, every_s=5, share=0.6, t0=t0, seed=seed)


def test_suspicious_tracks_are_flagged_and_not_counted(tstore, net):
    day = T0 + 10 * 86400  # 2026-11-12
    honest = _walk(tstore, net, 1, day)
    # Too fast: the same walk in a fifth of the time (6 m/s).
    fast = _walk(tstore, net, 2, day + 3600)
    fast.t = day + 3600 + (fast.t - fast.t[0]) / 5
    # A jump: one fix 3 km away in the middle.
    jump = _walk(tstore, net, 3, day + 7200)
    jump.x[len(jump.x) // 2] += 3000.0
    # At night: 23:30 local.
    night = _walk(tstore, net, 4, day + 14.5 * 3600)
    # A copy of the honest track sent again as another day's patrol.
    copy = _walk(tstore, net, 1, day + 86400)
    ids = {k: _save(tstore, net, w) for k, w in
           {"honest": honest, "fast": fast, "jump": jump, "night": night, "copy": copy}.items()}
    kinds = {r["id"]: {f["kind"] for f in r["flags"]} for r in read_tracks(tstore, worker="wu")}
    assert kinds[ids["honest"]] == set()
    assert "speed" in kinds[ids["fast"]]
    assert "jump" in kinds[ids["jump"]]
    assert kinds[ids["night"]] == {"outside_hours"}
    assert kinds[ids["copy"]] == {"duplicate"}
    rep = patrol_report(tstore, "wu", date(2026, 11, 12), date(2026, 11, 13))
    counted = {t["id"] for t in rep["tracks"] if t["counted"]}
    assert counted == {ids["honest"]} and rep["tracks_flagged"] == 4
    # The flagged ones add nothing: the report equals one of the honest track alone.
    alone = patrol_report(tstore, "wu", date(2026, 11, 12), date(2026, 11, 12))
    assert rep["grids"][0]["covered_share"] == alone["grids"][0]["covered_share"]


def test_chunks_are_idempotent_and_kept_in_order(tstore):
    pts = [{"lon": 104.072 + i * 1e-4, "lat": 30.668, "t": f"2026-11-20T09:{i:02d}:00+08:00", "acc": 8.0} for i in range(6)]
    a = add_chunk(tstore, worker="wu", client_id="c-1", seq=1, points=pts[3:])
    assert a.created and a.n_points == 3
    b = add_chunk(tstore, worker="wu", client_id="c-1", seq=0, points=pts[:3], device="phone")
    assert b.created and b.n_points == 6 and b.track_id == a.track_id
    again = add_chunk(tstore, worker="wu", client_id="c-1", seq=0, points=pts[:3])
    assert not again.created and again.n_points == 6
    (tr,) = [r for r in read_tracks(tstore, worker="wu") if r["id"] == a.track_id]
    assert np.all(np.diff(tr["t"]) == 60.0) and tr["lon"][0] == pytest.approx(104.072)
    with pytest.raises(ConflictError, match="other points"):
        add_chunk(tstore, worker="wu", client_id="c-1", seq=0, points=pts[1:4])
    with pytest.raises(ConflictError, match="another worker"):
        add_chunk(tstore, worker="li", client_id="c-1", seq=2, points=pts[:1])
    bad = [dict(p) for p in pts]
    bad[4]["t"] = "2026-11-20T09:04:00"  # no offset
    with pytest.raises(InputError, match=r"points\[4\]\.t.*no UTC offset"):
        add_chunk(tstore, worker="wu", client_id="c-2", seq=0, points=bad)
    assert not [r for r in read_tracks(tstore) if r["client_id"] == "c-2"]  # nothing stored


def test_gpx_import_in_gcj02_lands_on_the_streets(tstore, net, tmp_path):
    from gridpatrol.gis.crs import wgs84_to_gcj02

    w = _walk(tstore, net, 7, T0 + 20 * 86400)
    lon, lat = _to_lonlat(net, w.x, w.y)
    glon, glat = wgs84_to_gcj02(lon, lat)
    from gridpatrol.gis.tracks import read_gpx

    tr = read_gpx(gpx_xml(glon, glat, w.t), crs="gcj02")
    assert np.allclose(tr.lon, lon, atol=2e-6) and np.allclose(tr.lat, lat, atol=2e-6)


def test_the_assessment_table_as_xlsx_and_pdf(tstore, net, tmp_path):
    from gridpatrol.gis.assessment_sheet import write_pdf, write_xlsx
    from openpyxl import load_workbook

    # Its own tracks on its own days (2026-11-26/27), so it passes in any order: an honest one, one
    # too fast, one at night, and the honest one sent again the next day.
    day = T0 + 24 * 86400
    fast = _walk(tstore, net, 42, day + 3600)
    fast.t = day + 3600 + (fast.t - fast.t[0]) / 5
    for w in (_walk(tstore, net, 41, day), fast, _walk(tstore, net, 43, day + 14.5 * 3600),
              _walk(tstore, net, 41, day + 86400)):
        _save(tstore, net, w)
    rep = patrol_report(tstore, "wu", date(2026, 11, 26), date(2026, 11, 27))
    assert len(rep["tracks"]) == 4 and rep["tracks_flagged"] == 3
    x = write_xlsx(rep, tmp_path / "kh.xlsx")
    wb = load_workbook(x)
    ws = wb["考核表"]
    assert ws["A1"].value == "网格员巡查考核表" and "wu" in ws["A2"].value
    header = [c.value for c in ws[3]]
    assert header[0] == "网格编码" and "街道覆盖率" in header
    body = {ws.cell(r, 1).value: [c.value for c in ws[r]] for r in (4, 5)}
    assert set(body) == {"T01", "T02"}
    for g in rep["grids"]:
        assert body[g["code"]][4] == f"{g['covered_share'] * 100:.1f}%"
    assert wb["轨迹"].max_row == len(rep["tracks"]) + 1
    # The reasons read in Chinese with their numbers (English only on request, the flag's own detail).
    reasons = " ".join(str(r[-1].value or "") for r in wb["轨迹"].iter_rows(min_row=2))
    for needle in ("速度超出步行：一分钟内最快约", "公里/时", "非工作时间：", "的定位点在工作时间 07:00-21:00 之外",
                   "与早前轨迹相同：与轨迹"):
        assert needle in reasons, (needle, reasons)
    assert not any(w in reasons for w in ("faster", "outside", "same fixes", "km/h")), reasons
    from gridpatrol.gis.assessment_sheet import flag_text

    flags = [f for t in rep["tracks"] for f in t["flags"]]
    assert {f["kind"] for f in flags} >= {"speed", "outside_hours", "duplicate"}
    assert all(flag_text(f, "en") == f["detail"] for f in flags)
    if not shutil.which("pdftotext"):
        pytest.skip("poppler missing")
    p = write_pdf(rep, tmp_path / "kh.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(p), "-"], capture_output=True, text=True, check=True).stdout
    for needle in ("网格员巡查考核表", "街道覆盖率", "测试网格一", "速度超出步行", "非工作时间", "与早前轨迹相同"):
        assert needle in text, needle
    flat = "".join(text.split())  # table cells wrap
    assert "公里/时" in flat and "之外" in flat and "faster" not in flat and "outside" not in flat
    subprocess.run(["pdftoppm", "-r", "60", "-png", "-f", "1", "-l", "1", str(p), str(tmp_path / "page")], check=True)
    assert list(tmp_path.glob("page*.png"))
