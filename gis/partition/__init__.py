"""Balanced, contiguous grids from street blocks: METIS start, local search and window repair."""
from gridpatrol.gis.partition.band import Band, band_forced_deviation, forced_deviation
from gridpatrol.gis.partition.edits import rebalance, split_grid
from gridpatrol.gis.partition.graph import grid_components
from gridpatrol.gis.partition.plan import partition_blocks

__all__ = ["Band", "band_forced_deviation", "forced_deviation", "grid_components", "partition_blocks",
           "rebalance", "split_grid"]
