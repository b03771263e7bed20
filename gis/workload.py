"""Workload of blocks and grids: the measures a plan can balance on and their weighted sum."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
from gridpatrol.gis.errors import InputError

# measure name → (column of blocks and grids, factor from the column's unit, unit shown)
MEASURES: dict[str, tuple[str, float, str]] = {
    "households": ("households", 1.0, "户"),
    "population": ("population", 1.0, "人"),
    "street_km": ("street_m", 1e-3, "km"),
    "area_km2": ("area_m2", 1e-6, "km²"),
    "buildings": ("buildings", 1.0, "栋"),
}
BALANCES = ("households", "population", "weighted")
_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*([^,;=:]+?)\s*$")


def parse_weights(value: str | dict | None) -> dict[str, float] | None:
    """``households=1,street_km=20`` (or a mapping) as {measure: weight}; None for None or "".

    InputError naming the item when a measure is unknown, repeated, or its weight is not a
    finite number ≥ 0, and when every weight is 0.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dict):
        items = [(str(k), v) for k, v in value.items()]
    else:
        items = []
        for part in re.split(r"[,;，；]", str(value)):
            if not part.strip():
                continue
            m = _ITEM.match(part)
            if not m:
                raise InputError(f"--weights: {part.strip()!r} is not measure=weight",
                                 hint="e.g. --weights households=1,street_km=20; measures: " + ", ".join(MEASURES))
            items.append((m.group(1), m.group(2)))
    out: dict[str, float] = {}
    for name, raw in items:
        if name not in MEASURES:
            raise InputError(f"--weights: unknown measure {name!r}", hint="measures: " + ", ".join(MEASURES))
        if name in out:
            raise InputError(f"--weights: measure {name!r} is given twice")
        try:
            w = float(raw)
        except (TypeError, ValueError):
            raise InputError(f"--weights: weight of {name} is {raw!r}, not a number") from None
        if not math.isfinite(w) or w < 0:
            raise InputError(f"--weights: weight of {name} is {raw!r}; weights are finite numbers ≥ 0")
        out[name] = w
    if not out or not any(w > 0 for w in out.values()):
        raise InputError("--weights: every weight is 0, so every grid would have no workload",
                         hint="give at least one measure a positive weight")
    return out


def weights_text(weights: dict[str, float]) -> str:
    """The canonical text of ``weights``: ``measure=weight`` joined by commas, in MEASURES order."""
    return ",".join(f"{k}={weights[k]:g}" for k in MEASURES if k in weights)


def balance_weights(balance: str, weights: dict[str, float] | None) -> dict[str, float]:
    """The weights a balance mode sums: households and population alone, ``weighted`` its own."""
    if balance == "households":
        return {"households": 1.0}
    if balance == "population":
        return {"population": 1.0}
    if balance == "weighted":
        if not weights:
            raise InputError("--balance weighted needs --weights", hint="e.g. --weights households=1,street_km=20")
        return dict(weights)
    raise InputError(f"--balance {balance!r} is not one of " + ", ".join(BALANCES))


def measure_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Measure ``name`` of each row of ``frame`` (blocks or grids) in its unit (km, km², …); 0 where unknown.

    InputError when the frame has no column for it (e.g. population of a plan stored before it was kept).
    """
    col, factor, _ = MEASURES[name]
    if col not in frame.columns:
        raise InputError(f"the plan has no {name} per grid (it was stored before {name} was kept per block)",
                         hint="draw the plan again to balance it on " + name)
    v = pd.to_numeric(frame[col], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    return v * factor


def workload(frame: pd.DataFrame, weights: dict[str, float]) -> np.ndarray:
    """Σ weight × measure per row of ``frame``; with weights {households: 1} exactly the households."""
    if list(weights) == ["households"] and weights["households"] == 1.0:
        return pd.to_numeric(frame["households"], errors="coerce").fillna(0.0).to_numpy(dtype=float)
    total = np.zeros(len(frame))
    for name, w in weights.items():
        if w:
            total = total + w * measure_values(frame, name)
    return total


def measures_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every measure ``frame`` has a column for, in its unit (columns named as in MEASURES); NaN
    where a value is unknown (e.g. population in a plan imported or stored before it was kept)."""
    return pd.DataFrame({name: pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float) * factor
                         for name, (col, factor, _) in MEASURES.items() if col in frame.columns}, index=frame.index)


def population_loads(blocks_m: np.ndarray, buildings_m) -> np.ndarray:  # noqa: ANN001
    """Persons per block polygon, blocks and buildings in one metric CRS: counted as ``gis.blocks``
    counts households (footprints by representative point, landuse estimates by area share). A
    building without population counts its households × the import's persons per household."""
    from gridpatrol.gis.blocks import block_loads
    from gridpatrol.gis.osm import OsmOptions

    b = buildings_m
    hh = pd.to_numeric(b["households"], errors="coerce").fillna(0.0) if "households" in b else 0.0
    pop = pd.to_numeric(b["population"], errors="coerce") if "population" in b else pd.Series(np.nan, index=b.index)
    b = b.assign(households=pop.fillna(hh * OsmOptions.persons_per_household).clip(lower=0.0))
    return block_loads(np.asarray(blocks_m, dtype=object), b)[0]


def block_population(blocks, buildings, metric_crs) -> np.ndarray:  # noqa: ANN001
    """``population_loads`` of EPSG:4326 blocks and buildings, measured in ``metric_crs``."""
    if len(blocks) == 0:
        return np.zeros(0)
    return population_loads(blocks.to_crs(metric_crs).geometry.to_numpy(), buildings.to_crs(metric_crs))
