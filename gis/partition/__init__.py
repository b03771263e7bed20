"""Balanced, contiguous grids from street blocks: METIS start, local search and window repair."""
from gridpatrol.gis.partition.band import Band, band_forced_deviation, forced_deviation
from gridpatrol.gis.partition.caps import (
           absorb_empty,
           enforce_caps,
           enforce_route,
           merge_blocked,
           merge_small,
           resplit_empty,
)
from gridpatrol.gis.partition.edits import rebalance, split_grid
from gridpatrol.gis.partition.graph import grid_components
from gridpatrol.gis.partition.plan import partition_blocks

__all__ = ["Band", "absorb_empty", "band_forced_deviation", "enforce_caps", "enforce_route", "forced_deviation", "grid_components", "merge_blocked",
           "merge_small", "partition_blocks", "resplit_empty", "rebalance", "split_grid"]
