"""Row filters by viewer, as SQL: a worker's grids of the current plan, cameras up to a secrecy level."""
from __future__ import annotations

from gridpatrol.layers.models import Grid, GridPlan
from sqlalchemy import ColumnElement, Select, Table, func, select

# The same rule as :func:`current_grid_codes`, for the PostGIS statements written as text
# (psycopg parameter ``%(own)s`` is the worker's name).
CURRENT_GRIDS_OF_SQL = "SELECT code FROM grids WHERE worker = %(own)s AND plan_id = (SELECT max(id) FROM grid_plans)"


def current_grid_codes(worker: str) -> Select:
    """The codes of the grids of the current (newest) plan whose worker is ``worker``.

    Only the current plan counts: a worker reassigned away from a grid (which makes a new plan
    version) loses its incidents and routes at once, whatever older plans say."""
    g = Grid.__table__
    newest = select(func.max(GridPlan.__table__.c.id)).scalar_subquery()
    return select(g.c.code).where(g.c.worker == worker, g.c.plan_id == newest)


def worker_rows(table: Table, worker: str) -> ColumnElement[bool]:
    """Rows of ``table`` (routes, incidents: anything with a ``grid_code``) in ``worker``'s current grids."""
    return table.c.grid_code.in_(current_grid_codes(worker))


def secrecy_rows(table: Table, max_level: int) -> ColumnElement[bool]:
    """Rows of ``table`` (cameras) whose secrecy level is at most ``max_level``."""
    return table.c.secrecy_level <= int(max_level)
