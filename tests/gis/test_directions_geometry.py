"""Directions checked against the route geometry on every Chengdu demo grid (the grids `gridpatrol
demo` draws), by computations made here: headings from the route line itself, the ways on at each
junction from the street geometry, names from the roads layer.

At every junction the walker either hears an instruction, or walks on along the straightest way
(or the junction lies in a kink under 8 m that the instruction before it measures across). Where
another way on leaves within a few degrees of the walker's, "bear left/right" cannot tell them apart:
the instruction names the street taken (a name the other way does not have), or the side and a
landmark (the named street the way leads to). A stated move is the turn the walker makes; the heading word is the way the walker then goes; steps add up
to the route and end at 回到起点; the Chinese and English steps are the same steps.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
import shapely
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.coverage import plan_coverage
from gridpatrol.gis.routing.directions import directions
from gridpatrol.gis.streets import street_network
from gridpatrol.layers.grids import PlanParams, draw_grids, read_grids
from gridpatrol.layers.importing import import_areas, import_osm
from gridpatrol.layers.store import open_store

from tests.conftest import data_path

FOLD_M = 8.0  # kinks shorter than this may be measured across
WINDOW_M = 10.0  # headings here: the route line over this much either side of a junction
TOL_DEG = 8.0  # a stated class may be that of any angle within this of the one measured here
NEAR_DEG = 6.0  # two ways on leaving within this of each other look the same to the walker
LANDMARK_M = 1000.0  # a landmark is wanted when a named street meets the route this far on
COMPASS = {"北": 0, "东北": 45, "东": 90, "东南": 135, "南": 180, "西南": 225, "西": 270, "西北": 315}
SECTORS = {  # class → (lowest, highest) |angle| and side (+1 right, −1 left, 0 either)
    "straight": (0, 30, 0), "slight_right": (30, 60, 1), "right": (60, 135, 1), "sharp_right": (135, 150, 1),
    "slight_left": (30, 60, -1), "left": (60, 135, -1), "sharp_left": (135, 150, -1), "uturn": (150, 180.01, 0),
}
PHRASE = re.compile(r"(?:向(北|东北|东|东南|南|西南|西|西北))?(?:步行|行驶) \d+(?:\.\d)? (?:米|公里)(?:，至[^，]+路口)?$")


def fits(cls: str, angle: float, tol: float = TOL_DEG) -> bool:
    """Whether class ``cls`` names a turn of ``angle`` degrees (positive right), give or take ``tol``."""
    lo, hi, side = SECTORS[cls]
    for a in (angle - tol, angle, angle + tol):
        a = (a + 180.0) % 360.0 - 180.0
        if lo - 1e-9 <= abs(a) < hi and (side == 0 or np.sign(a) == side or abs(a) < 1e-9):
            return True
    # the sector lies wholly between angle − tol and angle + tol
    return side != 0 and angle - tol <= side * lo and side * hi <= angle + tol


def turn(a: float, b: float) -> float:
    d = (b - a + 180.0) % 360.0 - 180.0
    return 180.0 if d == -180.0 else d


def head(p: shapely.Point, q: shapely.Point) -> float:
    return float(np.degrees(np.arctan2(q.x - p.x, q.y - p.y)) % 360)


@pytest.fixture(scope="module")
def walked():
    """[(grid code, network, route, zh steps, en steps)] for every Chengdu grid drawn as `gridpatrol demo` does."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        store = open_store(f"gpkg:///{Path(d) / 'grids.gpkg'}")
        try:
            import_osm(store, data_path("chengdu", "chengdu.osm"))
            for k in ("04", "05", "06", "07", "08"):
                import_areas(store, data_path("chengdu", f"5101{k}.geojson"), crs="gcj02")
            grids = read_grids(store, draw_grids(store, PlanParams(seed=1)))
            roads = store.read_layer("roads")
        finally:
            store.dispose()
    return plan_all(roads, list(zip(grids["code"].astype(str), grids.geometry)))


def plan_all(roads, grids):
    city = street_network(roads, mode="walk")
    out = []
    for code, poly in grids:
        try:
            plan = plan_coverage(city, poly, mode="walk", name=code)
        except InputError:
            continue  # a grid without walkable streets has no route
        r = plan.routes[0]
        out.append((code, plan.network, r, directions(plan.network, r.traversals, lang="zh"),
                    directions(plan.network, r.traversals, lang="en")))
    assert len(out) >= 250, f"only {len(out)} routes"
    return out


def moves_of(step) -> list[dict]:
    """The moves of a step (a step that knows no moves is one move)."""
    ms = getattr(step, "moves", None)
    return ms if ms else [{"action": step.action, "first_traversal": step.first_traversal, "street": step.street,
                            "distance_m": step.distance_m}]


class Walk:
    """The route as the walker sees it: junctions (between two pieces of positive length) with their
    position along the route line, the headings arriving and leaving, and every way on."""

    def __init__(self, net, route):
        self.line = route.geometry
        self.net = net
        geo_len = np.array([shapely.length(net.edge_geom[t.edge]) for t in route.traversals])
        self.at = np.concatenate([[0.0], np.cumsum(geo_len)]) * (self.line.length / geo_len.sum())
        self.scale = route.length_m / self.line.length
        self.junctions = []  # (route index, s, arrive, depart, [angles of the other ways on], node)
        prev = None
        for i, t in enumerate(route.traversals):
            if geo_len[i] < 0.01:
                continue
            if prev is not None:
                s = self.at[i]
                arr = head(self.line.interpolate(max(0.0, s - min(WINDOW_M, geo_len[prev]))), self.line.interpolate(s))
                dep = head(self.line.interpolate(s), self.line.interpolate(s + min(WINDOW_M, geo_len[i])))
                node = int(net.edge_v[route.traversals[prev].edge] if route.traversals[prev].forward
                           else net.edge_u[route.traversals[prev].edge])
                ways = self.ways(node, {route.traversals[prev].edge, t.edge})
                others = [turn(arr, b) for b, _ in ways]
                # Ways on leaving beside the walker's: (signed angle from them to the walker's, edge).
                near = [(turn(b, dep), x) for b, x in ways if abs(turn(b, dep)) < NEAR_DEG]
                self.junctions.append((i, s, arr, dep, others, node, near))
            prev = i
        self.by_index = {j[0]: j for j in self.junctions}

    def ways(self, node: int, skip: set[int]) -> list[tuple[float, int]]:
        net = self.net
        out = []
        for e in np.flatnonzero((net.edge_u == node) | (net.edge_v == node)):
            g = net.edge_geom[e]
            if e in skip or g.length < 0.01:
                continue
            for rev in ((False, True) if net.edge_u[e] == net.edge_v[e] else (int(net.edge_v[e]) == node,)):
                line = shapely.reverse(g) if rev else g
                out.append((head(line.interpolate(0.0), line.interpolate(min(WINDOW_M, line.length))), int(e)))
        return out


def _route_checks(code, net, route, zh, en):
    """Every rule of the module docstring on one route: a list of what is wrong."""
    bad = []
    w = Walk(net, route)
    moves = [m for s in zh[:-1] for m in moves_of(s)]
    starts = {int(m["first_traversal"]): m for m in moves}
    move_s = sorted(w.at[i] for i in starts)
    js = w.junctions
    texts = {int(m["first_traversal"]): st.text for st in zh[:-1] for m in moves_of(st)}
    for q, (i, s, arr, dep, others, node, beside) in enumerate(js):
        a = turn(arr, dep)
        m = starts.get(i)
        # Fold windows: stretches under FOLD_M that hold this junction, measured from their first junction.
        near = range(max(0, q - 12), min(len(js), q + 13))
        windows = [(js[j], js[k]) for j in near for k in near
                   if js[j][1] <= s <= js[k][1] and js[k][1] - js[j][1] < FOLD_M / w.scale]
        if beside:
            # The move stated here, or at a junction under FOLD_M before (a kink folded into it).
            said = m or next((starts[j[0]] for j, _k in sorted(windows, key=lambda jk: -jk[0][1])
                              if j[0] in starts), None)
            why = _tells_apart(net, route, said, beside, texts)
            if why:
                bad.append(f"{code}: at route index {i} another way on leaves within {NEAR_DEG:.0f}° of the walker's "
                           f"({[net.edge_name[x] for _, x in beside]}): {why}")
        if m is None:
            straightest = abs(a) < 30 + TOL_DEG and all(abs(b) >= abs(a) - 2.0 for b in others)
            folded = any(fits(starts[j[0]]["action"] if j[0] in starts else "straight", turn(j[2], k[3]))
                         for j, k in windows if k[0] != j[0] and starts.get(j[0], {}).get("action") != "depart")
            at_end = w.line.length - s < FOLD_M / w.scale
            if not (straightest or folded or at_end):
                bad.append(f"{code}: silent turn of {a:.0f}° at route index {i} (ways on {[round(b) for b in others]})")
            continue
        if m["action"] in ("depart", "arrive"):
            continue
        # A stated move: the turn at this junction, or across a kink under FOLD_M after it.
        spans = [turn(arr, k[3]) for j, k in windows if j[0] == i]
        ok = any(fits(m["action"], x) for x in spans)
        if not ok and m["action"] in ("slight_left", "slight_right") and abs(a) < 30 + TOL_DEG:
            side = 1 if m["action"] == "slight_right" else -1
            # The other way on is as straight (within 2°), on the other side or, as measured here,
            # within 2° of the route's own heading: then the two ways leave side by side, and the
            # move must tell them apart by name or landmark and the side (checked above).
            ok = any(abs(b) <= abs(a) + 2.0 and side * (a - b) > -2.0 for b in others)
        if not ok:
            bad.append(f"{code}: stated {m['action']} at route index {i} but the walker turns {a:.0f}° "
                       f"(across the kink: {[round(x) for x in spans]})")
        if m["action"] == "straight" and abs(a) < 30 and any(abs(b) < abs(a) - 2.0 for b in others):
            bad.append(f"{code}: 直行 at route index {i} ({a:.0f}°) but another way on is straighter")
    bad += _heading_words(code, w, zh, move_s)
    return bad


def _real_name(name) -> bool:
    return (isinstance(name, str) and bool(re.search(r"[\u4e00-\u9fff]{2}|[A-Za-z]{3}", name))
            and not re.search(r"测试|test|无名", name, re.IGNORECASE))


def _named_ahead(net, route, m, within_m: float) -> bool:
    """Whether a street with a real name (two Chinese characters, or a word) meets the route in the
    ``within_m`` metres after move ``m`` starts."""
    trav, start = route.traversals, int(m["first_traversal"])
    walked = 0.0
    for t in trav[start:]:
        end = int(net.edge_v[t.edge] if t.forward else net.edge_u[t.edge])
        at = np.flatnonzero((net.edge_u == end) | (net.edge_v == end))
        if any(_real_name(net.edge_name[x]) for x in at):
            return True
        walked += float(net.edge_length_m[t.edge])
        if walked > within_m:
            return False
    return False


def _tells_apart(net, route, m, beside, texts) -> str | None:
    """Why the move ``m`` does not tell the walker's way from the ways ``beside`` it, or None."""
    if m is None:
        return "no instruction there"
    text = texts[int(m["first_traversal"])]
    name = m["street"]
    if name is not None and all(name != net.edge_name[x] for _, x in beside) and name in text:
        return None  # the street taken is named, and the other ways have other names
    lm, pick = m.get("landmark"), m.get("pick")
    if not pick:
        return f"it names {name!r}, not which one: {text}"
    if not lm:
        other = m.get("not_street")
        if other:  # no landmark on the way: the other way's name, said as not to be taken
            return (None if other[0] in text and other[0] in {net.edge_name[x] for _, x in beside}
                    else f"names {other[0]!r} as the way not taken, not one of the ways beside: {text}")
        if any(_real_name(net.edge_name[x]) for _, x in beside) or _named_ahead(net, route, m, LANDMARK_M):
            return f"it names {name!r} and no landmark: {text}"
        lm = ("",)  # nothing named anywhere near: the side alone
    if lm[0] not in text or f"{'左' if pick == 'left' else '右'}侧一条" not in text:
        return f"the landmark {lm[0]!r} or the side is not in the text: {text}"
    if lm[0] and (lm[0] not in set(net.edge_name) or any(lm[0] == net.edge_name[x] for _, x in beside)):
        return f"the landmark {lm[0]!r} is no street of the map, or the other way's name"
    nearest = min(beside, key=lambda b: abs(b[0]))[0]
    if abs(nearest) > 1.0 and (nearest > 0) != (pick == "right"):
        return f"says the {pick}-hand one but the walker's way is {nearest:+.0f}° from the other: {text}"
    return None


def _heading_words(code, w, zh, move_s):
    """The heading word of every move is the way the walker goes; no word twice for one straight walk."""
    bad = []
    prev_word = None
    for st in zh[:-1]:
        phrases = st.text.split("，然后")
        ms = moves_of(st)
        if len(phrases) != len(ms):
            bad.append(f"{code}: step {st.index} has {len(ms)} moves but {len(phrases)} phrases: {st.text}")
            continue
        for ph, m in zip(phrases, ms):
            got = PHRASE.search(ph)
            if not got:
                bad.append(f"{code}: step {st.index}: no distance in {ph!r}")
                continue
            word = got.group(1)
            s0 = w.at[int(m["first_traversal"])]
            nxt = min((x for x in move_s if x > s0 + 1e-6), default=w.line.length)
            hd = head(w.line.interpolate(s0), w.line.interpolate(min(nxt, s0 + 2 * WINDOW_M)))
            if word is None:
                if m["action"] != "straight" or prev_word is None:
                    bad.append(f"{code}: step {st.index}: no heading after {m['action']}: {ph!r}")
                elif abs(turn(COMPASS[prev_word], hd)) > 22.5 + TOL_DEG:
                    bad.append(f"{code}: step {st.index}: heading left out but the walk turns to {hd:.0f}°: {ph!r}")
                continue
            if abs(turn(COMPASS[word], hd)) > 22.5 + TOL_DEG:
                bad.append(f"{code}: step {st.index}: says 向{word} but the walker heads {hd:.0f}°: {ph!r}")
            if m["action"] == "straight" and word == prev_word:
                bad.append(f"{code}: step {st.index}: 向{word} twice for one straight walk: {ph!r}")
            prev_word = word
    return bad


def test_every_stated_move_is_the_turn_the_walker_makes(walked):
    bad = [b for r in walked for b in _route_checks(*r)]
    assert not bad, f"{len(bad)} problem(s), e.g.:\n" + "\n".join(bad[:15])


def test_steps_add_up_end_back_at_the_start_and_are_the_same_in_both_languages(walked):
    bad = []
    for code, _net, route, zh, en in walked:
        if abs(sum(s.distance_m for s in zh) - route.length_m) > 0.01:
            bad.append(f"{code}: steps add up to {sum(s.distance_m for s in zh):.1f} m, route {route.length_m:.1f} m")
        if zh[-1].text != "回到起点" or en[-1].text != "Back at the start":
            bad.append(f"{code}: last step {zh[-1].text!r} / {en[-1].text!r}")
        if len(zh) != len(en) or any(a.first_traversal != b.first_traversal for a, b in zip(zh, en)):
            bad.append(f"{code}: {len(zh)} Chinese steps, {len(en)} English steps, not aligned")
        short = [s for s in zh[:-1] if s.distance_m < 20.0]
        if short and route.length_m >= 20.0:
            bad.append(f"{code}: {len(short)} step(s) under 20 m, e.g. {short[0].text}")
    assert not bad, f"{len(bad)} problem(s), e.g.:\n" + "\n".join(bad[:15])


def test_printed_street_names_are_plausible_map_names(walked):
    bad = []
    for code, net, route, zh, _en in walked:
        walked_names = {net.edge_name[t.edge] for t in route.traversals}
        for s in zh[:-1]:
            for m in moves_of(s):
                name = m["street"]
                if name is None:
                    continue
                quotes_ok = all(name.count(q) % 2 == 0 for q in "\"'") and name.count("“") == name.count("”")
                if (name not in walked_names or re.fullmatch(r"\W*[A-Za-z]?\W*", name) or "测试" in name
                        or "test" in name.lower() or not quotes_ok):
                    bad.append(f"{code}: step {s.index} names {name!r}")
    assert not bad, f"{len(bad)} problem(s), e.g.:\n" + "\n".join(bad[:15])
