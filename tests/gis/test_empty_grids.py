"""Grids of 0 households that cap splits leave are dissolved into the grids around them block by
block (absorb_empty), or re-cut with a touching grid into two that both hold households
(resplit_empty), when the caps allow; merge_small alone (whole merges) cannot (#15)."""
from __future__ import annotations

import numpy as np
from gridpatrol.gis.partition import absorb_empty, merge_small, resplit_empty

from tests.gis.test_partition import _contiguous, _lattice


def _with_streets(blocks, street):  # noqa: ANN001, ANN202
    return blocks.assign(street_m=np.asarray(street, float))


def test_an_empty_grid_whose_whole_merge_breaks_the_cap_is_dissolved_block_by_block():
    # one row: [100 hh, 100 hh | 0, 0 | 100 hh, 100 hh], 100 m of streets per block, cap 300 m
    hh = np.array([100, 100, 0, 0, 100, 100], float)
    blocks, graph = _lattice(6, 1, hh)
    blocks = _with_streets(blocks, np.full(6, 100.0))
    labels = np.array([0, 0, 1, 1, 2, 2])
    # a whole merge of the empty grid (200 m) into either neighbour (200 m) makes 400 m > 300 m
    merged = merge_small(blocks, graph, labels, low=150, high=500, max_street_m=300)
    assert (merged == labels).all()
    out = absorb_empty(blocks, graph, merged, hh, high=500, max_street_m=300)
    assert 1 not in set(out.tolist()) and sorted(set(out.tolist())) == [0, 2]
    street = np.bincount(out, weights=blocks["street_m"].to_numpy())
    assert street.max() <= 300 and (np.bincount(out, weights=hh)[[0, 2]] > 0).all()
    assert _contiguous(out, blocks)


def test_absorb_keeps_the_caps_and_gives_up_whole():
    # the same row with a 250 m cap: block 2 could go west, block 3 nowhere: nothing moves
    hh = np.array([100, 100, 0, 0, 100, 100], float)
    blocks, graph = _lattice(6, 1, hh)
    blocks = _with_streets(blocks, np.full(6, 100.0))
    labels = np.array([0, 0, 1, 1, 2, 2])
    out = absorb_empty(blocks, graph, labels, hh, high=500, max_street_m=250)
    assert (out == labels).all()
    # a route cap (accept) that refuses every grown grid: nothing moves either
    out = absorb_empty(blocks, graph, labels, hh, high=500, max_street_m=300, accept=lambda idx: len(idx) <= 2)
    assert (out == labels).all()


def test_an_empty_grid_at_a_dead_end_is_recut_with_its_neighbour():
    # [0, 0 | 40 hh, 40 hh] in a row, 100 m per block, cap 300 m: block 0 touches only grid 0, so
    # the empty grid cannot be dissolved; re-cut as {0, 1, 2} and {3} both grids hold households
    hh = np.array([0, 0, 40, 40], float)
    blocks, graph = _lattice(4, 1, hh)
    blocks = _with_streets(blocks, np.full(4, 100.0))
    labels = np.array([0, 0, 1, 1])
    assert (absorb_empty(blocks, graph, labels, hh, high=500, max_street_m=300) == labels).all()
    out = resplit_empty(blocks, graph, labels, hh, high=500, max_street_m=300)
    per_grid = np.bincount(out, weights=hh)
    assert len(set(out.tolist())) == 2 and (per_grid > 0).all()
    assert np.bincount(out, weights=blocks["street_m"].to_numpy()).max() <= 300
    assert _contiguous(out, blocks)
    # with a 250 m cap no cut gives both households within it: left as it was
    assert (resplit_empty(blocks, graph, labels, hh, high=500, max_street_m=250) == labels).all()
