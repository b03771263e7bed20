"""Balanced, contiguous grids from street blocks: METIS start, local search and window repair."""
from gis.partition.band import Band, band_forced_deviation, forced_deviation
from gis.partition.edits import rebalance, split_grid
from gis.partition.graph import grid_components
from gis.partition.plan import partition_blocks

__all__ = ["Band", "band_forced_deviation", "forced_deviation", "grid_components", "partition_blocks",
           "rebalance", "split_grid"]
