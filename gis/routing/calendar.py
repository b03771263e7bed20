"""Patrol calendar (巡查排班): a worker's shifts laid out over a cycle of days, the busiest day as light as possible."""
from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from gridpatrol.gis.errors import InputError

MAX_CYCLE_DAYS = 31
SOLVER_TIME_LIMIT_S = 5.0


@dataclass
class Calendar:
    """Shifts by day: ``days[d]`` are the keys of day d + 1; times in seconds."""

    cycle_days: int
    days: list[list[Hashable]]
    day_s: list[float]
    lower_bound_s: float  # no layout has a lighter busiest day
    optimal: bool  # the busiest day is proven the lightest possible
    day_of: dict[Hashable, int] = field(default_factory=dict)  # key → day 1…D

    @property
    def max_day_s(self) -> float:
        return max(self.day_s) if self.day_s else 0.0


def _longest_first(seconds: Sequence[float], days: int) -> list[int]:
    """Day index of each shift: longest first onto the lightest day (Graham's LPT)."""
    load = [0.0] * days
    out = [0] * len(seconds)
    for i in sorted(range(len(seconds)), key=lambda i: (-seconds[i], i)):
        d = min(range(days), key=lambda d: (load[d], d))
        out[i] = d
        load[d] += seconds[i]
    return out


def _first_seen_order(assign: list[int]) -> list[int]:
    """The same layout with days numbered in the order their first shift appears."""
    label: dict[int, int] = {}
    return [label.setdefault(d, len(label)) for d in assign]


def _exact(seconds: Sequence[float], days: int, hint: list[int], time_limit_s: float) -> tuple[list[int], bool]:
    """Day index of each shift minimising the busiest day (OR-Tools CP-SAT, whole seconds), and whether proven."""
    from ortools.sat.python import cp_model

    secs = [max(0, round(s)) for s in seconds]
    model = cp_model.CpModel()
    x = [[model.NewBoolVar(f"x{i}_{d}") for d in range(days)] for i in range(len(secs))]
    top = model.NewIntVar(0, sum(secs), "busiest")
    for i in range(len(secs)):
        model.AddExactlyOne(x[i])
        model.AddHint(x[i][hint[i]], 1)
    for d in range(days):
        model.Add(sum(secs[i] * x[i][d] for i in range(len(secs))) <= top)
    # Days are interchangeable: shift i goes to one of the first i + 1 days.
    for i in range(len(secs)):
        for d in range(i + 1, days):
            model.Add(x[i][d] == 0)
    model.Minimize(top)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    solver.parameters.num_workers = 1
    status = solver.Solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return hint, False
    return [next(d for d in range(days) if solver.Value(x[i][d])) for i in range(len(secs))], status == cp_model.OPTIMAL


def patrol_calendar(shifts: Sequence[tuple[Hashable, float]], cycle_days: int, *,
                    time_limit_s: float = SOLVER_TIME_LIMIT_S) -> Calendar:
    """Lay ``shifts`` ((key, seconds), e.g. one worker's) over ``cycle_days`` days, each shift once,
    minimising the longest day; days keep the shifts' order. Raises InputError for a bad cycle."""
    if not isinstance(cycle_days, int) or not 1 <= cycle_days <= MAX_CYCLE_DAYS:
        raise InputError(f"--cycle-days must be a whole number of days from 1 to {MAX_CYCLE_DAYS}, not {cycle_days}")
    keys = [k for k, _ in shifts]
    if len(set(keys)) != len(keys):
        raise InputError("every shift of a calendar needs its own key")
    seconds = [float(s) for _, s in shifts]
    if any(not (s >= 0 and math.isfinite(s)) for s in seconds):
        raise InputError("shift times must be finite and not negative")
    lower = max([sum(seconds) / cycle_days, *seconds], default=0.0)
    assign = _longest_first(seconds, cycle_days)
    optimal = len(seconds) <= 1 or cycle_days == 1
    if not optimal:
        loads = [sum(s for s, d in zip(seconds, assign) if d == day) for day in range(cycle_days)]
        if max(loads) <= lower + 0.5:
            optimal = True  # LPT already meets the bound
        else:
            assign, optimal = _exact(seconds, cycle_days, _first_seen_order(assign), time_limit_s)
    days: list[list[Hashable]] = [[] for _ in range(cycle_days)]
    for i, d in enumerate(assign):
        days[d].append(keys[i])
    # Busiest days first would read oddly: keep days in the order of their first shift.
    days.sort(key=lambda ks: min((keys.index(k) for k in ks), default=len(keys)))
    index = {k: i for i, k in enumerate(keys)}
    day_s = [sum(seconds[index[k]] for k in ks) for ks in days]
    return Calendar(cycle_days, days, day_s, lower, optimal,
                    {k: d + 1 for d, ks in enumerate(days) for k in ks})


def planned_on(created_at: datetime, tz: str) -> date:
    """The local date (zone ``tz``) of the instant routes were planned; a naive ``created_at`` is UTC
    (how the stores hand it back). Without a given cycle start this date is day 1 of the calendar."""
    at = created_at.to_pydatetime() if hasattr(created_at, "to_pydatetime") else created_at
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(ZoneInfo(tz)).date()


def cycle_day(day1: date, on: date, cycle_days: int) -> int:
    """Day 1…D of a patrol calendar of ``cycle_days`` days on the date ``on``, ``day1`` being day 1
    (dates before ``day1`` count backwards through the cycle)."""
    if not isinstance(cycle_days, int) or cycle_days < 1:
        raise InputError(f"a patrol calendar has a whole number of days ≥ 1, not {cycle_days}")
    return (on - day1).days % cycle_days + 1
