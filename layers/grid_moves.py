"""The rules a block move must pass, over the blocks of the grids it touches: shared by the move and its preview."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from gridpatrol.gis.workload import workload

# Each refusal kind: its Chinese text, then English (the message a planner reads in the page).
KINDS = {
    "locked": "网格已锁定 / grid is locked",
    "other_area": "网格不能跨社区/街道 / grids may not leave their area",
    "already_there": "所选街区已在目标网格内 / blocks are already in the target grid",
    "emptied": "会清空网格 / would empty a grid",
    "not_touching": "所选街区与目标网格不相邻 / the moved blocks do not touch the target",
    "split": "会把网格分成不相连的几块 / would split a grid",
    "out_of_band": "工作量超出标准范围 / workload outside the band",
    # a rural plan (draw-grids --mode rural): the rural check's errors the move would add
    "settlement_split": "会把居民点分到更多网格 / would split a village",
    "over_area_limit": "网格面积超过上限 / grid over the area limit",
    "over_travel_limit": "网格路程超过上限 / grid over the travel limit",
}


@dataclass
class Refusal:
    """One rule a move breaks: ``kind`` (a key of KINDS), the grid it concerns and a bilingual message."""

    kind: str
    grid_code: str
    message: str
    blocking: bool = True  # False: only --force accepts it (the household band)


def band_status(households: float, lo: float, hi: float) -> str:
    """``below``, ``in`` or ``above`` the household band [lo, hi]."""
    return "below" if households < lo else "above" if households > hi else "in"


def move_refusals(blocks: pd.DataFrame, ids: Sequence[int], to_code: str, grids: pd.DataFrame,
                  adjacency: nx.Graph | None, band: tuple[float, float] | None = None,
                  weights: dict[str, float] | None = None, unit: str = "households") -> tuple[pd.DataFrame, list[Refusal]]:
    """Moving blocks ``ids`` into grid ``to_code``: the blocks after the move and every rule it breaks.

    ``blocks`` holds (at least) every block of the target and of the grids the moved blocks come
    from (block_id, grid_code, area_code, households); ``grids`` their rows (code, parent_code,
    locked); ``adjacency`` the rook adjacency of those blocks (nodes: block_id), None to skip
    the contiguity rules; ``band`` (min, max households) adds the band rule for grids a move
    takes out of it (blocking=False). ``weights`` (gis.workload): the band is in that workload
    (named ``unit``) and blocks carry its measures. Nothing is read or written.
    """
    to_code = str(to_code)
    out: list[Refusal] = []
    g = grids.set_index(grids["code"].astype(str))
    blocks = blocks.copy()
    moving = blocks["block_id"].isin([int(i) for i in ids])
    src = sorted(set(blocks.loc[moving, "grid_code"].astype(str)) - {to_code})
    if not src:
        out.append(Refusal("already_there", to_code, f"所选街区已在网格 {to_code} 内 / blocks "
                           f"{', '.join(map(str, ids))} are already in grid {to_code}"))
        return blocks, out
    for c in [to_code, *src]:
        if c in g.index and bool(pd.notna(g.at[c, "locked"]) and g.at[c, "locked"]):
            out.append(Refusal("locked", c, f"网格 {c} 已锁定，编辑被拒绝 / grid {c} is locked; the edit is refused"))
    parent = str(g.at[to_code, "parent_code"]) if to_code in g.index else None
    away = blocks.loc[moving & (blocks["area_code"].astype(str) != parent)]
    if len(away):
        b = away.iloc[0]
        out.append(Refusal("other_area", to_code,
                           f"街区 {int(b['block_id'])} 属于区域 {b['area_code']}，网格 {to_code} 属于区域 {parent}："
                           f"网格不能跨社区/街道 / block {int(b['block_id'])} belongs to area {b['area_code']}, "
                           f"grid {to_code} to area {parent}: grids may not leave their community/district"))
    involved = [to_code, *src]
    weights = weights or {"households": 1.0}
    t_before = grid_totals(blocks, involved)
    before = pd.Series(workload(t_before, weights), index=t_before.index)
    blocks.loc[moving, "grid_code"] = to_code
    t_after = grid_totals(blocks, involved)
    after = pd.Series(workload(t_after, weights), index=t_after.index)[t_after["n_blocks"] > 0]
    for c in src:
        if c not in after.index:
            out.append(Refusal("emptied", c, f"移动会清空网格 {c}，请改用合并 / moving these blocks would empty grid {c}"))
    if adjacency is not None:
        for c in [to_code, *src]:
            nodes = blocks.loc[blocks["grid_code"].astype(str) == c, "block_id"].astype(int).tolist()
            if nodes and not nx.is_connected(adjacency.subgraph(nodes)):
                if c == to_code:
                    out.append(Refusal("not_touching", c, f"所选街区与网格 {c} 不相连（网格必须连成一片） / move refused: "
                                       f"the moved blocks do not touch grid {c} (grids must stay in one piece)"))
                else:
                    out.append(Refusal("split", c, f"移动会把网格 {c} 分成不相连的几块 / move refused: it would split "
                                       f"grid {c} (grids must stay in one piece)"))
    if band is not None:
        lo, hi = band
        n = t_after["n_blocks"]
        for c in involved:
            was, now = band_status(float(before.get(c, 0.0)), lo, hi), band_status(float(after.get(c, 0.0)), lo, hi)
            if now != "in" and was == "in" and int(n.get(c, 0)) > 1:
                zh = {"households": "户数", "persons": "人口"}.get(unit, "工作量")
                out.append(Refusal("out_of_band", c, f"网格 {c} 的{zh}将为 {float(after.get(c, 0.0)):.0f}，超出标准 "
                                   f"{lo:g}–{hi:g}{' 户' if unit == 'households' else ''} / grid {c} would have {float(after.get(c, 0.0)):.0f} {unit}, "
                                   f"outside the band {lo:g}–{hi:g}", blocking=False))
    return blocks, out


def grid_totals(blocks: pd.DataFrame, codes: Sequence[str]) -> pd.DataFrame:
    """Households, buildings, street_m, area_m2 (population when known) and n_blocks summed over the blocks of each of ``codes``."""
    cols = [c for c in ("households", "buildings", "street_m", "area_m2", "population") if c in blocks.columns]
    gc = blocks["grid_code"].astype(str).to_numpy()
    rows = {}
    for code in codes:
        m = gc == str(code)
        rows[str(code)] = {**{c: float(np.nansum(blocks[c].to_numpy(dtype=float)[m])) for c in cols}, "n_blocks": int(m.sum())}
    return pd.DataFrame.from_dict(rows, orient="index")
