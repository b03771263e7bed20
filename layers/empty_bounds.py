"""Planning areas' proven least numbers of grids of 0 households kept in the store, by the digest of their inputs (#15).

The proof (gis.partition.empty_bound) reads an area's blocks (households, the caps' columns, which blocks
touch), the caps, seed and work, nothing of how a plan groups the blocks: a bound proven by draw-grids holds
for every later plan of those blocks (edits regroup them). draw-grids writes the bounds it solved, after its
plan; draw-grids, check-grids and ``GET /grids/check`` read them before solving. A check only reads: it
wrote nothing before, and a viewer's check stays a read. Any change of an input changes the digest, so the
bound is solved again; a write that fails is logged and changes no result (the bound is solved next time).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from gridpatrol.gis.partition.empty_bound import EmptyBound
from gridpatrol.layers.models import EmptyBoundRow, utcnow
from gridpatrol.layers.store import Store
from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("gridpatrol.empty_bounds")


class StoredBounds(Mapping[str, EmptyBound]):
    """The bounds in ``store`` by digest, read one at a time as the proof asks (a read that fails counts as
    not stored: the bound is solved)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __getitem__(self, digest: str) -> EmptyBound:
        t = EmptyBoundRow.__table__
        try:
            with self.store.engine.connect() as conn:
                row = conn.execute(select(t.c.lower, t.c.relaxed, t.c.method).where(t.c.digest == digest)).first()
        except SQLAlchemyError as exc:
            log.warning("stored empty-grid bound not read (%s): solving it", exc.__class__.__name__)
            row = None
        if row is None:
            raise KeyError(digest)
        return EmptyBound(int(row.lower), None if row.relaxed is None else int(row.relaxed), str(row.method))

    def __iter__(self) -> Iterator[str]:
        with self.store.engine.connect() as conn:
            return iter(conn.execute(select(EmptyBoundRow.__table__.c.digest)).scalars().all())

    def __len__(self) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(EmptyBoundRow.__table__)).scalar())


def save_bounds(store: Store, solved: Mapping[str, tuple[object, EmptyBound]]) -> int:
    """Keep the bounds ``solved`` (digest → (area code, EmptyBound), from ``plan_empty_bound``) that the
    store does not hold yet, in one transaction; returns how many were written. A failure is logged and
    writes none (they are solved again next time)."""
    if not solved:
        return 0
    t = EmptyBoundRow.__table__
    try:
        with store.begin() as conn:
            have = set(conn.execute(select(t.c.digest).where(t.c.digest.in_(list(solved)))).scalars())
            rows = [{"digest": d, "area_code": str(a), "lower": int(b.lower), "method": str(b.method),
                     "relaxed": None if b.relaxed is None else int(b.relaxed), "created_at": utcnow()}
                    for d, (a, b) in solved.items() if d not in have]
            if rows:
                conn.execute(insert(t), rows)
            return len(rows)
    except SQLAlchemyError as exc:  # e.g. another draw wrote the same digest just now: nothing lost
        log.warning("empty-grid bounds not kept (%s): they are solved again next time", exc.__class__.__name__)
        return 0
