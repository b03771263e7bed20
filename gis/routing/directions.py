"""Turn-by-turn directions (Chinese by default, English on request) for a route on a street network."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pyproj

from gis.routing.network import Traversal, turn_angle
from gis.errors import InputError
from gis.streets import StreetNetwork

LANGS = ("zh", "en")
MERGE_BELOW_M = 8.0  # a leg this short (a kink at a junction) is folded into the one before
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


@dataclass
class Step:
    """One line of the directions: an action at a point, then a distance along one street."""

    index: int
    action: str  # depart | straight | slight_/sharp_ left/right | left | right | uturn | arrive
    street: str | None
    distance_m: float
    heading_deg: float  # heading at the start of the leg, 0 = north, clockwise
    lon: float  # where the action happens (WGS-84)
    lat: float
    first_traversal: int  # index of the route traversal the leg starts with
    text: str

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


def _compass(heading: float) -> int:
    return int(((heading + 22.5) % 360) // 45)


def format_distance(distance_m: float, lang: str = "zh") -> str:
    """Distance as people say it: 10 m steps below 1 km, then kilometres with one decimal."""
    if distance_m >= 1000:
        km = f"{distance_m / 1000:.1f}"
        return f"{km} 公里" if lang == "zh" else f"{km} km"
    m = max(10, int(round(distance_m / 10.0)) * 10)
    return f"{m} 米" if lang == "zh" else f"{m} m"


def _street_name(net: StreetNetwork, e: int, lang: str) -> str | None:
    name = net.edge_name[e]
    if lang == "en" and net.edge_name_en[e]:
        name = net.edge_name_en[e]
    return name if isinstance(name, str) and name.strip() else None


def directions(
    net: StreetNetwork,
    traversals: Sequence[Traversal],
    *,
    lang: str = "zh",
    mode: str = "walk",
    closed: bool = True,
) -> list[Step]:
    """Turn-by-turn steps for ``traversals`` on ``net``, in Chinese (``lang="zh"``) or English.

    Consecutive segments of the same street joined without a turn (heading change < 30°) make
    one step; a new step starts at every turn, U-turn or change of street name. Unnamed streets
    are called 无名道路 / "unnamed road". Distances in metres, positions in WGS-84.
    """
    if lang not in LANGS:
        raise InputError(f"unknown language {lang!r}", hint="use zh or en")
    if not traversals:
        raise InputError("the route is empty: no directions to give")
    out_b, in_b = net.bearings()
    e = np.array([t.edge for t in traversals])
    f = np.array([t.forward for t in traversals], dtype=bool)
    dep = np.where(f, out_b[e], (in_b[e] + 180) % 360)
    arr = np.where(f, in_b[e], (out_b[e] + 180) % 360)
    tail = np.where(f, net.edge_u[e], net.edge_v[e])
    to_ll = pyproj.Transformer.from_crs(net.crs, 4326, always_xy=True)
    lon, lat = to_ll.transform(net.node_xy[tail, 0], net.node_xy[tail, 1])
    end_node = int(net.edge_v[e[-1]] if f[-1] else net.edge_u[e[-1]])
    end_lon, end_lat = to_ll.transform(net.node_xy[end_node, 0], net.node_xy[end_node, 1])
    names = [_street_name(net, int(x), lang) for x in e]

    # Legs: [start index, action, street, length].
    legs: list[list[Any]] = [[0, "depart", names[0], 0.0]]
    for i in range(len(e)):
        if i > 0:
            action = classify_turn(turn_angle(arr[i - 1], dep[i]))
            if action != "straight" or names[i] != names[i - 1]:
                legs.append([i, action, names[i], 0.0])
        legs[-1][3] += float(net.edge_length_m[e[i]])
    # Fold kinks (very short legs at offset junctions) into the previous leg.
    merged: list[list[Any]] = []
    for leg in legs:
        if merged and leg[3] < MERGE_BELOW_M and leg[1] != "uturn":
            merged[-1][3] += leg[3]
            continue
        if merged and leg[1] == "straight" and leg[2] == merged[-1][2]:
            merged[-1][3] += leg[3]
            continue
        merged.append(leg)

    steps = []
    for k, (i, action, street, dist) in enumerate(merged):
        text = _text(action, street, dist, float(dep[i]), lang, mode, first=k == 0,
                     same=k > 0 and street == merged[k - 1][2])
        steps.append(Step(k + 1, action, street, dist, float(dep[i]), float(lon[i]), float(lat[i]), int(i), text))
    if lang == "zh":
        last = "回到起点" if closed else "到达终点"
    else:
        last = "Back at the start" if closed else "Arrive at the destination"
    steps.append(Step(len(steps) + 1, "arrive", None, 0.0, float(arr[-1]), float(end_lon), float(end_lat), len(e), last))
    return steps


def _text(action: str, street: str | None, dist: float, heading: float, lang: str, mode: str,
          *, first: bool, same: bool) -> str:
    d = format_distance(dist, lang)
    c = _compass(heading)
    if lang == "zh":
        name = street or UNNAMED["zh"]
        verb = "步行" if mode == "walk" else "行驶"
        go = f"向{COMPASS_ZH[c]}{verb} {d}"
        if first:
            return f"从起点出发，沿{name}{go}"
        if action == "uturn":
            return f"掉头，沿{name}{go}"
        if same:
            return f"{ACTION_ZH[action]}，继续沿{name}{go}"
        return f"{ACTION_ZH[action]}进入{name}，{go}"
    name = street or UNNAMED["en"]
    verb = "walk" if mode == "walk" else "drive"
    go = f"{verb} {d} {COMPASS_EN[c]}"
    if first:
        return f"Start on {name} and {go}"
    if action == "uturn":
        return f"Make a U-turn on {name} and {go}"
    if same:
        return f"{ACTION_EN[action]} to stay on {name}, {go}"
    return f"{ACTION_EN[action]} onto {name}, {go}"


def steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    """Steps as plain dicts (for directions_json in the routes layer and the API)."""
    return [s.to_dict() for s in steps]
