"""The one error family of gridpatrol: messages a planner can act on (what, where, what to do)."""
from __future__ import annotations


class GridPatrolError(Exception):
    """Base of every error gridpatrol reports to a user.

    The CLI prints ``str(err)`` without a traceback and exits with ``exit_code``; the API maps
    each kind to an HTTP status (api/errors.py) with the same message.
    """

    exit_code = 1

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text


class InputError(GridPatrolError):
    """A file, option or request the user gave is unusable (broken, wrong CRS, empty, …)."""

    exit_code = 2


class NotFoundError(GridPatrolError):
    """Something the user named (a layer, grid code, plan, incident) does not exist."""

    exit_code = 3


class ConflictError(GridPatrolError):
    """The request contradicts the current state (locked grid, illegal transition, race lost)."""

    exit_code = 4


class StoreError(GridPatrolError):
    """The store cannot be opened or is of an unknown/newer schema version."""

    exit_code = 5


class PermissionDenied(GridPatrolError):
    """The current user's role does not allow this."""

    exit_code = 6
