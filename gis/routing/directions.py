"""Turn-by-turn directions for a route on a street network: computed once, worded in Chinese and English."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
from gridpatrol.gis.errors import InputError
from gridpatrol.gis.routing.network import Traversal, turn_angle
from gridpatrol.gis.streets import StreetNetwork

LANGS = ("zh", "en")
FOLD_BELOW_M = 8.0  # a leg this short (a kink at an offset junction) is folded into the next one
STEP_BELOW_M = 20.0  # a leg this short is not a step of its own: it leads into the next instruction
HEADING_WINDOW_M = 10.0  # headings at a junction: the direction over this much street either side
ZERO_M = 0.01  # pieces shorter than this (repeated points, zero-length segments) have no heading
# Another way on leaving within this of the route's way: "bear left/right" alone does not tell them
# apart, so the move names the street taken, or a landmark and the side (左侧/右侧一条).
NEAR_WAYS_DEG = 10.0
LANDMARK_WITHIN_M = 1000.0  # the landmark of such a move: a named street met this far beyond it at most
COMPASS_ZH = ["北", "东北", "东", "东南", "南", "西南", "西", "西北"]
COMPASS_EN = ["north", "northeast", "east", "southeast", "south", "southwest", "west", "northwest"]
ACTION_ZH = {
    "straight": "直行", "slight_right": "稍向右转", "right": "右转", "sharp_right": "向右急转",
    "slight_left": "稍向左转", "left": "左转", "sharp_left": "向左急转", "uturn": "掉头",
}
ACTION_EN = {
    "straight": "Continue straight", "slight_right": "Bear right", "right": "Turn right",
    "sharp_right": "Turn sharp right", "slight_left": "Bear left", "left": "Turn left",
    "sharp_left": "Turn sharp left", "uturn": "Make a U-turn",
}
UNNAMED = {"zh": "无名道路", "en": "unnamed road"}
# Map names that are no street name: test and placeholder words (whole name or a part of it).
_PLACEHOLDER = re.compile(r"测试|test|占位|待定|未知|暂无|无名|临时|placeholder|unknown|fixme|todo|^(null|none|nan|x+|abc|asdf|tbd|n/?a)$",
                          re.IGNORECASE)
_QUOTES = (('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("「", "」"), ("『", "』"), ("《", "》"), ("(", ")"), ("（", "）"))


@dataclass
class Step:
    """One line of the directions: one or more moves (a turn, then a walk), worded in zh and en.

    ``action`` … ``first_traversal`` describe the line's first move; ``moves`` holds every move
    of the line (legs shorter than STEP_BELOW_M lead into the next move on the same line).
    ``distance_m`` is the length of all its moves; ``text`` is Chinese, ``text_en`` English.
    """

    index: int
    action: str  # depart | straight | slight_/sharp_ left/right | left | right | uturn | arrive
    street: str | None
    distance_m: float
    heading_deg: float  # heading at the start of the leg, 0 = north, clockwise
    lon: float  # where the action happens (WGS-84)
    lat: float
    first_traversal: int  # index of the route traversal the leg starts with
    text: str
    text_en: str = ""
    street_en: str | None = None
    moves: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def classify_turn(delta_deg: float) -> str:
    """Name of a heading change in degrees (positive = right)."""
    a = abs(delta_deg)
    if a < 30:
        return "straight"
    side = "right" if delta_deg > 0 else "left"
    if a < 60:
        return f"slight_{side}"
    if a < 135:
        return side
    if a < 150:
        return f"sharp_{side}"
    return "uturn"


def compass(heading_deg: float) -> int:
    """Index into COMPASS_ZH / COMPASS_EN of a heading (0 = north, clockwise)."""
    return int(((heading_deg + 22.5) % 360) // 45)


def format_distance(distance_m: float, lang: str = "zh") -> str:
    """Distance as people say it: metres below 10 m, 10 m steps below 1 km, then km with one decimal."""
    if distance_m >= 1000:
        km = f"{distance_m / 1000:.1f}"
        return f"{km} 公里" if lang == "zh" else f"{km} km"
    m = max(1, int(round(distance_m))) if distance_m < 9.5 else int(round(distance_m / 10.0)) * 10
    return f"{m} 米" if lang == "zh" else f"{m} m"


def plausible_name(name: Any) -> str | None:
    """A map name fit to print as a street name, else None: no single letters, test or
    placeholder words, or unbalanced quotes and brackets."""
    if not isinstance(name, str):
        return None
    s = name.strip()
    if not s or not re.search(r"[\w]", s) or re.fullmatch(r"\W*[A-Za-z]?\W*|[\W\d_]+", s):
        return None
    if _PLACEHOLDER.search(s):
        return None
    for a, b in _QUOTES:
        if (s.count(a) % 2 if a == b else s.count(a) != s.count(b)):
            return None
    return s


@dataclass
class _Leg:
    """A stretch walked without an instruction: from a junction (route index ``i``) along one street."""

    i: int  # first cleaned traversal
    action: str
    angle: float  # signed turn at its start (degrees; 0 for the departure)
    name: tuple[str | None, str | None]
    length: float
    arrive: float  # heading arriving at its start (NaN at the departure)
    depart: float  # heading leaving its start
    s0: float  # distance along the route where it starts
    near: tuple[int, ...] = ()  # edges of other ways on leaving within NEAR_WAYS_DEG of the route's
    side: str = ""  # "left" / "right": the route's way beside the nearest of those


class _Line:
    """The route as one polyline (zero-length pieces dropped), with positions by distance."""

    def __init__(self, net: StreetNetwork, e: np.ndarray, f: np.ndarray):
        parts, cum = [], [0.0]
        for edge, fwd in zip(e, f):
            xy = net.edge_line(int(edge), bool(fwd))
            parts.append(xy)
            cum.append(cum[-1] + float(net.edge_length_m[edge]))
        xy = np.vstack(parts)
        step = np.hypot(*np.diff(xy, axis=0).T)
        keep = np.concatenate([[True], step > 1e-6])
        self.xy = xy[keep]
        self.s = np.concatenate([[0.0], np.cumsum(step[keep[1:]])])
        # Edge lengths (stored) and geometry lengths differ by centimetres: scale to the stored ones.
        total = self.s[-1]
        self.scale = (cum[-1] / total) if total > 0 else 1.0
        self.starts = np.array(cum[:-1])

    def at(self, s: float) -> np.ndarray:
        g = np.clip(s / self.scale, 0.0, self.s[-1])
        return np.array([np.interp(g, self.s, self.xy[:, 0]), np.interp(g, self.s, self.xy[:, 1])])

    def heading(self, s0: float, s1: float) -> float:
        d = self.at(s1) - self.at(s0)
        return float(np.degrees(np.arctan2(d[0], d[1])) % 360)


def _ways_on(net: StreetNetwork, node: int, skip: tuple[int, ...], inc: dict[int, list[int]]
             ) -> list[tuple[float, int]]:
    """(heading (deg), edge) of every way on from ``node`` along an edge not in ``skip``."""
    out = []
    for e in inc.get(node, []):
        if e in skip or net.edge_length_m[e] < ZERO_M:
            continue
        for fwd in ((True, False) if net.edge_u[e] == net.edge_v[e] else (int(net.edge_u[e]) == node,)):
            xy = net.edge_line(e, fwd)
            d = np.cumsum(np.concatenate([[0.0], np.hypot(*np.diff(xy, axis=0).T)]))
            t = min(HEADING_WINDOW_M, d[-1])
            p = np.array([np.interp(t, d, xy[:, 0]), np.interp(t, d, xy[:, 1])]) - xy[0]
            out.append((float(np.degrees(np.arctan2(p[0], p[1])) % 360), int(e)))
    return out


def _named_crossing(net: StreetNetwork, node: int, inc: dict[int, list[int]],
                    skip: set[int]) -> tuple[str, str] | None:
    """(zh, en) name of the longest named street at ``node`` other than the edges in ``skip``, or None."""
    named = [(float(net.edge_length_m[x]), plausible_name(net.edge_name[x]),
              plausible_name(net.edge_name_en[x]) or plausible_name(net.edge_name[x]))
             for x in inc.get(node, []) if x not in skip]
    named = [n for n in named if n[1]]
    if not named:
        return None
    _, zh, en = max(named)
    return zh, en


def _name_tells_apart(net: StreetNetwork, leg: _Leg) -> bool:
    """Whether the leg's street name differs from the names of the other ways on beside it."""
    if leg.name[0] is None:
        return False
    return all(plausible_name(net.edge_name[x]) != leg.name[0] for x in leg.near)


def _first_crossing(net: StreetNetwork, e: np.ndarray, f: np.ndarray, inc: dict[int, list[int]],
                    skip_names: set[str | None]) -> tuple[str, str] | None:
    """(zh, en) name of the first named street (none of ``skip_names``) met along the passes ``e`` / ``f``."""
    for k in range(len(e)):
        end = int(net.edge_v[e[k]] if f[k] else net.edge_u[e[k]])
        skip = {int(e[k])} | ({int(e[k + 1])} if k + 1 < len(e) else set())
        skip |= {x for x in inc.get(end, []) if plausible_name(net.edge_name[x]) in skip_names}
        got = _named_crossing(net, end, inc, skip)
        if got is not None:
            return got
    return None


def _incidence(net: StreetNetwork, edges: np.ndarray) -> dict[int, list[int]]:
    """Edges at each node the route passes (for the ways on at its junctions)."""
    nodes = set(net.edge_u[edges].tolist()) | set(net.edge_v[edges].tolist())
    at = np.flatnonzero(np.isin(net.edge_u, list(nodes)) | np.isin(net.edge_v, list(nodes)))
    inc: dict[int, list[int]] = {}
    for e in at.tolist():
        for n in {int(net.edge_u[e]), int(net.edge_v[e])}:
            inc.setdefault(n, []).append(e)
    return inc


def _legs(net: StreetNetwork, e: np.ndarray, f: np.ndarray, line: _Line, names: list[tuple]) -> list[_Leg]:
    """The route cut at every junction that needs an instruction (turn, new street, or a
    straighter way on that is not the route's)."""
    inc = _incidence(net, e)
    length = net.edge_length_m[e].astype(float)
    legs: list[_Leg] = []
    for i in range(len(e)):
        s = float(line.starts[i])
        if i == 0:
            legs.append(_Leg(0, "depart", 0.0, names[0], 0.0, float("nan"), line.heading(s, s + min(HEADING_WINDOW_M, length[0])), s))
        else:
            arr = line.heading(s - min(HEADING_WINDOW_M, length[i - 1]), s)
            dep = line.heading(s, s + min(HEADING_WINDOW_M, length[i]))
            a = turn_angle(arr, dep)
            action = classify_turn(a)
            node = int(net.edge_v[e[i - 1]] if f[i - 1] else net.edge_u[e[i - 1]])
            ways = _ways_on(net, node, (int(e[i - 1]), int(e[i])), inc)
            if action == "straight":
                others = [turn_angle(arr, b) for b, _ in ways]
                straighter = [b for b in others if abs(b) < abs(a)]
                if straighter:
                    best = min(straighter, key=abs)
                    action = "slight_right" if a > best else "slight_left"
            near = sorted((abs(turn_angle(dep, b)), turn_angle(b, dep), x) for b, x in ways
                          if abs(turn_angle(dep, b)) < NEAR_WAYS_DEG)
            side = ("right" if near[0][1] > 0 else "left") if near else ""
            if action != "straight" or names[i] != names[i - 1] or near:
                legs.append(_Leg(i, action, a, names[i], 0.0, arr, dep, s, tuple(x for *_, x in near), side))
        legs[-1].length += float(length[i])
    return legs


def _fold(legs: list[_Leg]) -> list[_Leg]:
    """Fold legs shorter than FOLD_BELOW_M into the next: the move is then the turn from the
    heading before the fold to the heading after it."""
    out: list[_Leg] = []
    pending: _Leg | None = None
    for k, leg in enumerate(legs):
        if pending is not None:
            if pending.action == "depart":
                leg = _Leg(pending.i, "depart", 0.0, leg.name, pending.length + leg.length, float("nan"), leg.depart,
                           pending.s0, leg.near, leg.side)
            else:
                a = turn_angle(pending.arrive, leg.depart)
                act = classify_turn(a)
                if act == "straight" and leg.action.startswith("slight_") and abs(leg.angle) < 30:
                    act = leg.action  # the straighter way on is still there after the kink
                # Ways on beside the route's at either junction: the merged move must tell them apart.
                leg = _Leg(pending.i, act, a, leg.name, pending.length + leg.length, pending.arrive, leg.depart,
                           pending.s0, pending.near + leg.near, pending.side or leg.side)
            pending = None
        if leg.length < FOLD_BELOW_M and k < len(legs) - 1:
            pending = leg
            continue
        if out and leg.length < FOLD_BELOW_M:  # short legs at the very end: walked on from the last step
            out[-1].length += leg.length
            continue
        if out and leg.action == "straight" and leg.name == out[-1].name and not leg.near:
            out[-1].length += leg.length
            continue
        out.append(leg)
    return out


def route_steps(net: StreetNetwork, traversals: Sequence[Traversal], *, mode: str = "walk",
                closed: bool = True) -> list[Step]:
    """Turn-by-turn steps for ``traversals`` on ``net``, computed once and worded in zh and en.

    A new move starts at every turn (from headings over HEADING_WINDOW_M either side of the
    junction, zero-length pieces dropped), U-turn, change of street name, and where another way
    on runs straighter than the route; legs under FOLD_BELOW_M are folded into the next move
    (its turn measured across them); legs under STEP_BELOW_M lead into the next move on one line.
    Implausible map names are unnamed (无名道路). Distances in metres, positions in WGS-84.
    """
    if not traversals:
        raise InputError("the route is empty: no directions to give")
    e_all = np.array([t.edge for t in traversals], dtype=np.int64)
    f_all = np.array([t.forward for t in traversals], dtype=bool)
    keep = net.edge_length_m[e_all] >= ZERO_M
    if not keep.any():
        keep[0] = True
    idx = np.flatnonzero(keep)  # route index of each cleaned traversal
    e, f = e_all[idx], f_all[idx]
    line = _Line(net, e, f)
    names = [(plausible_name(net.edge_name[x]), plausible_name(net.edge_name_en[x]) or plausible_name(net.edge_name[x]))
             for x in e.tolist()]
    legs = _fold(_legs(net, e, f, line, names))
    # Zero-length pieces dropped above still count towards the route's length.
    legs[-1].length += float(net.edge_length_m[e_all[~keep]].sum())
    to_ll = net.transformer(inverse=True)
    inc = _incidence(net, e)
    moves = []
    for k, leg in enumerate(legs):
        x, y = line.at(leg.s0)
        lon, lat = to_ll.transform(x, y)
        hd = line.heading(leg.s0, leg.s0 + min(2 * HEADING_WINDOW_M, leg.length))
        moves.append({"action": leg.action, "turn_deg": round(leg.angle, 1), "street": leg.name[0],
                      "street_en": leg.name[1], "distance_m": leg.length, "heading_deg": hd,
                      "lon": float(lon), "lat": float(lat), "first_traversal": int(idx[leg.i])})
        if leg.near and not _name_tells_apart(net, leg):
            # Ways on side by side, and the name does not tell them apart: the side, and the first
            # named street the route's way meets.
            moves[-1]["pick"] = leg.side
            # Along the leg, or the route on from it (the way taken leads there) up to LANDMARK_WITHIN_M.
            on = np.searchsorted(line.starts, line.starts[leg.i] + leg.length + LANDMARK_WITHIN_M)
            skip_names = {leg.name[0]} | {plausible_name(net.edge_name[x]) for x in leg.near}
            moves[-1]["landmark"] = _first_crossing(net, e[leg.i:on], f[leg.i:on], inc, skip_names)
            other = [x for x in leg.near if plausible_name(net.edge_name[x])]
            if moves[-1]["landmark"] is None and other:  # no landmark, but the other way has a name: not that one
                x = other[0]
                moves[-1]["not_street"] = (plausible_name(net.edge_name[x]),
                                           plausible_name(net.edge_name_en[x]) or plausible_name(net.edge_name[x]))
        elif leg.name[0] is None and k + 1 < len(legs) and legs[k + 1].name[0] is None:
            # An unnamed way into another: say which named street crosses where it ends.
            last = legs[k + 1].i - 1
            end = int(net.edge_v[e[last]] if f[last] else net.edge_u[e[last]])
            moves[-1]["landmark"] = _named_crossing(net, end, inc, {int(e[last]), int(e[legs[k + 1].i])})
    # Lines: moves under STEP_BELOW_M lead into the next; trailing short ones join the line before.
    lines: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    for m in moves:
        cur.append(m)
        if m["distance_m"] >= STEP_BELOW_M:
            lines.append(cur)
            cur = []
    if cur:
        if lines:
            lines[-1].extend(cur)
        else:
            lines.append(cur)
    steps = []
    prev: dict[str, Any] | None = None
    for k, group in enumerate(lines):
        zh, en = [], []
        for m in group:
            m["repeat_heading"] = bool(prev is not None and m["action"] == "straight"
                                       and compass(m["heading_deg"]) == compass(prev["heading_deg"]))
            zh.append(_phrase(m, prev, mode, "zh"))
            en.append(_phrase(m, prev, mode, "en"))
            prev = m
        first = group[0]
        steps.append(Step(k + 1, first["action"], first["street"], float(sum(m["distance_m"] for m in group)),
                          first["heading_deg"], first["lon"], first["lat"], first["first_traversal"],
                          "，然后".join(zh), ", then ".join(p[0].lower() + p[1:] if i else p for i, p in enumerate(en)),
                          first["street_en"], group))
    end = line.at(line.s[-1] * line.scale)
    end_lon, end_lat = to_ll.transform(end[0], end[1])
    steps.append(Step(len(steps) + 1, "arrive", None, 0.0, line.heading(max(0.0, line.s[-1] * line.scale - HEADING_WINDOW_M), line.s[-1] * line.scale),
                      float(end_lon), float(end_lat), len(traversals),
                      "回到起点" if closed else "到达终点", "Back at the start" if closed else "Arrive at the destination"))
    return steps


# How a move is worded, per language: {act} action, {name} street, {go} walk/drive with distance
# and (unless said just before) heading.
_WORDING = {
    "zh": {"actions": ACTION_ZH, "compass": COMPASS_ZH, "verbs": {"walk": "步行", "drive": "行驶"},
           "go": "{verb} {d}", "go_heading": "向{c}{verb} {d}", "depart": "从起点出发，沿{name}{go}",
           "uturn": "掉头，沿{name}{go}", "stay": "{act}，继续沿{name}{go}", "onto": "{act}进入{name}，{go}",
           "at_crossing": "，至{}路口", "pick": {"left": "左侧一条", "right": "右侧一条"},
           "pick_toward": "（{side}，通往{to}）", "pick_not": "（{side}，不是{to}）", "pick_only": "（{side}）"},
    "en": {"actions": ACTION_EN, "compass": COMPASS_EN, "verbs": {"walk": "walk", "drive": "drive"},
           "go": "{verb} {d}", "go_heading": "{verb} {d} {c}", "depart": "Start on {name} and {go}",
           "uturn": "Make a U-turn on {name} and {go}", "stay": "{act} to stay on {name}, {go}",
           "onto": "{act} onto {name}, {go}", "at_crossing": " to the junction with {}",
           "pick": {"left": "the left-hand one", "right": "the right-hand one"},
           "pick_toward": " ({side}, towards {to})", "pick_not": " ({side}, not {to})", "pick_only": " ({side})"},
}


def _phrase(m: dict[str, Any], prev: dict[str, Any] | None, mode: str, lang: str) -> str:
    """One move in words, in ``lang``."""
    w, key = _WORDING[lang], "street" if lang == "zh" else "street_en"
    name = m[key] or UNNAMED[lang]
    go = w["go" if m["repeat_heading"] else "go_heading"].format(
        verb=w["verbs"]["walk" if mode == "walk" else "drive"], d=format_distance(m["distance_m"], lang),
        c=w["compass"][compass(m["heading_deg"])])
    if m.get("pick"):  # two ways on side by side: which one, and where it leads
        side = w["pick"][m["pick"]]
        li = 0 if lang == "zh" else 1
        name += (w["pick_toward"].format(side=side, to=m["landmark"][li]) if m.get("landmark")
                 else w["pick_not"].format(side=side, to=m["not_street"][li]) if m.get("not_street")
                 else w["pick_only"].format(side=side))
    elif m.get("landmark"):
        go += w["at_crossing"].format(m["landmark"][0 if lang == "zh" else 1])
    if m["action"] in ("depart", "uturn"):
        return w[m["action"]].format(name=name, go=go)
    same = prev is not None and m[key] and m[key] == prev[key]
    return w["stay" if same else "onto"].format(act=w["actions"][m["action"]], name=name, go=go)


def directions(
    net: StreetNetwork,
    traversals: Sequence[Traversal],
    *,
    lang: str = "zh",
    mode: str = "walk",
    closed: bool = True,
) -> list[Step]:
    """route_steps with ``text`` in ``lang`` (zh or en): the same steps in either language."""
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r}", hint="use zh or en")
    steps = route_steps(net, traversals, mode=mode, closed=closed)
    if lang == "en":
        for s in steps:
            s.text, s.street = s.text_en, s.street_en
    return steps


def steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """Steps as plain dicts (for directions_json in the routes layer and the API)."""
    return [s.to_dict() for s in steps]
