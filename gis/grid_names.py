"""Grid names a worker can find on the ground: specific place names, else the nearest named streets, else the code;
never a bare landuse word (住宅区, residential, 公园 …) and never the same name twice under one parent."""
from __future__ import annotations

import re
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import shapely

# Words OSM mappers put in ``name`` for what a place *is*, not what it is called (landuse, amenity and building
# kinds); compared after trimming, without case and without a trailing number (住宅区2).
GENERIC_WORDS = frozenset({
    "住宅区", "住宅小区", "居民点", "住宅", "小区", "居住区", "居住小区", "居民区", "居民小区", "生活区",
    "宿舍", "宿舍区", "家属区", "家属院", "家属楼", "住宅楼", "居民楼", "楼房", "平房", "商业区", "商业",
    "商业街", "商住区", "商圈", "工业区", "工业园",
    "厂区", "仓库", "办公区", "公园", "绿地", "广场", "停车场", "学校", "医院", "村", "村庄", "社区", "片区", "街道",
    "residential", "residential area", "housing", "housing estate", "apartments", "apartment", "flats", "houses",
    "dormitory", "commercial", "retail", "industrial", "park", "garden", "green", "grass", "parking", "school",
    "hospital", "village", "neighbourhood", "neighborhood", "community", "yes", "unnamed", "untitled", "noname",
    "测试", "测试类", "test", "v",
})
# The numbered fallback of a settlement without a name (gis.partition.rural): a label, not a place name.
NUMBERED = re.compile(r"^居民点\s*\d+$")
STREET_SUFFIX = "一带"  # "the streets around": 红星路、一环路一带
NEAR_STREET_M = 300.0  # a street farther than this from every part of a grid does not name it
_DIGITS = "零一二三四五六七八九"


def is_generic(name: object) -> bool:
    """True for a missing or empty name, a bare landuse/building word (住宅区, residential, 公园 …, also with a number
    after it) or the numbered fallback 居民点N: names that do not tell one place from another."""
    if not isinstance(name, str) or not name.strip():
        return True
    text = re.sub(r"[\s\d#号_\-()（）]+$", "", name.strip()).strip().lower()
    return not text or text in GENERIC_WORDS or bool(NUMBERED.match(name.strip()))


def chinese_number(n: int) -> str:
    """1 → 一, 10 → 十, 12 → 十二, 25 → 二十五 (1–99); larger numbers as digits."""
    if not 1 <= n <= 99:
        return str(n)
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else _DIGITS[tens] + "十")
    return head + (_DIGITS[ones] if ones else "")


def settlement_list(names: Sequence[str], total: int | None = None, most: int = 5) -> str | None:
    """``names`` (the specific ones, in order) as one name: 石桥镇、王家村, or the first ``most`` and
    等 N 个居民点 when there are more (``total``: how many settlements the grid holds, default
    ``len(names)``); None for none."""
    names = [n for n in names if not is_generic(n)]
    if not names:
        return None
    total = len(names) if total is None else total
    return "、".join(names[:most]) + (f"等 {total} 个居民点" if total > most else "")


def nearest_street_names(geom, streets: gpd.GeoDataFrame, *, most: int = 2,  # noqa: ANN001
                         within_m: float = NEAR_STREET_M) -> list[str]:
    """Up to ``most`` distinct specific street names (column ``name``) of ``streets`` nearest the centre of
    ``geom`` (a point on its surface), among streets within ``within_m`` of ``geom``; both in one metric CRS."""
    if geom is None or geom.is_empty or streets is None or not len(streets) or "name" not in streets:
        return []
    named = streets[[not is_generic(n) for n in streets["name"]]]
    if not len(named):
        return []
    lines = named.geometry.to_numpy()
    near = shapely.STRtree(lines).query(geom, predicate="dwithin", distance=float(within_m))
    if not len(near):
        return []
    centre = shapely.point_on_surface(geom)
    dist = shapely.distance(lines[near], centre)
    out: list[str] = []
    for i in near[np.argsort(dist, kind="stable")]:
        name = str(named["name"].iloc[int(i)]).strip()
        if name not in out:
            out.append(name)
        if len(out) == most:
            break
    return out


def grid_name(settlement_names: Sequence[str], geom=None, streets: gpd.GeoDataFrame | None = None,  # noqa: ANN001
              total: int | None = None) -> str | None:
    """A grid's name: its specific settlement names (largest first, as given), else the named streets nearest its
    centre (``红星路、一环路一带``), else None (the caller names the grid by its code). ``geom`` and ``streets``
    in one metric CRS."""
    listed = settlement_list(settlement_names, total)
    if listed:
        return listed
    streets_near = nearest_street_names(geom, streets) if streets is not None else []
    return "、".join(streets_near) + STREET_SUFFIX if streets_near else None


def unique_names(names: Sequence[str | None], parents: Sequence[object],
                 fixed: Sequence[bool] | None = None) -> list[str | None]:
    """``names`` with no name twice under one parent: where grids of a parent share a name, those not ``fixed``
    (grids an edit leaves as they were keep theirs) get （一）, （二）, … in the order given (a name already taken
    is skipped). None stays None (the grid is known by its code)."""
    out = list(names)
    fixed = list(fixed) if fixed is not None else [False] * len(out)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, (p, n) in enumerate(zip(parents, names)):
        if isinstance(n, str) and n:
            groups.setdefault((str(p), n), []).append(i)
    taken = set(groups)
    for (p, n), idx in groups.items():
        if len(idx) < 2:
            continue
        keep = [i for i in idx if fixed[i]]
        k = 2 if keep else 1
        for i in idx:
            if i in keep:
                continue
            while (p, f"{n}（{chinese_number(k)}）") in taken:
                k += 1
            out[i] = f"{n}（{chinese_number(k)}）"
            taken.add((p, out[i]))
            k += 1
    return out
