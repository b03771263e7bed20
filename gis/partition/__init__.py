"""Balanced, contiguous grids from street blocks: METIS start, local search and window repair."""
from gridpatrol.gis.partition.band import Band, band_forced_deviation, forced_deviation
from gridpatrol.gis.partition.caps import enforce_caps, merge_blocked, merge_small
from gridpatrol.gis.partition.edits import rebalance, split_grid
from gridpatrol.gis.partition.graph import grid_components
from gridpatrol.gis.partition.plan import partition_blocks

__all__ = ["Band", "band_forced_deviation", "enforce_caps", "forced_deviation", "grid_components", "merge_blocked",
           "merge_small", "partition_blocks", "rebalance", "split_grid"]
