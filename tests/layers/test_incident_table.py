"""The closed loop's transition table as the README documents it, written out here (not read from
the code): every (state, action) pair on both stores, legal ones written, all others refused."""
from __future__ import annotations

import itertools

import pytest
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.gis.incidents import check_transition
from gridpatrol.layers.incidents import advance_incident, create_incident
from gridpatrol.layers.models import IncidentEvent
from sqlalchemy import func, select

# README, "Closed loop": 发现 → 处置/上报 → 交办 → 办结 → 反馈 → 回访 → 结案.
STATES = ["reported", "handled", "escalated", "assigned", "completed", "feedback", "revisited", "closed"]
CHINESE = {"reported": "发现", "handled": "处置", "escalated": "上报", "assigned": "交办", "completed": "办结",
           "feedback": "反馈", "revisited": "回访", "closed": "结案"}
# from → {to: needs a note}
TABLE: dict[str, dict[str, bool]] = {
    "reported": {"handled": False, "escalated": False, "closed": True},   # discarded at intake
    "handled": {"completed": False, "escalated": True},                  # on-the-spot handling failed
    "escalated": {"assigned": False},
    "assigned": {"completed": False, "escalated": True},                 # returned by the department 退回
    "completed": {"feedback": False},
    "feedback": {"revisited": False},
    "revisited": {"closed": False, "assigned": True},                    # revisit unsatisfied 重办
    "closed": {},
}
# How an incident reaches each state from 发现, with the note each step needs.
REACH: dict[str, list[str]] = {
    "reported": [],
    "handled": ["handled"],
    "escalated": ["escalated"],
    "assigned": ["escalated", "assigned"],
    "completed": ["escalated", "assigned", "completed"],
    "feedback": ["escalated", "assigned", "completed", "feedback"],
    "revisited": ["escalated", "assigned", "completed", "feedback", "revisited"],
    "closed": ["closed"],
}
PAIRS = list(itertools.product(STATES, STATES))


@pytest.mark.parametrize(("frm", "to"), PAIRS)
def test_every_pair_is_legal_exactly_as_documented(frm, to):
    for name in (to, CHINESE[to]):
        if to in TABLE[frm]:
            check_transition(frm, name, note="原因")  # must not raise
            if TABLE[frm][to]:
                for empty in (None, "", "   "):
                    with pytest.raises(InputError, match=f"moving from {frm} to {to} needs a note"):
                        check_transition(frm, name, note=empty)
            else:
                check_transition(frm, name, note=None)
        else:
            for note in (None, "原因"):
                with pytest.raises(ConflictError, match=f"an incident in state {frm} .* cannot move to {to}"):
                    check_transition(frm, name, note=note)


def _events(store, incident_id: int) -> int:  # noqa: ANN001
    with store.engine.connect() as c:
        t = IncidentEvent.__table__
        return c.execute(select(func.count()).select_from(t).where(t.c.incident_id == incident_id)).scalar_one()


def _at(store, state: str) -> dict:  # noqa: ANN001
    """A new incident moved along the documented steps to ``state``."""
    inc = create_incident(store, lon=104.07, lat=30.66, category="矛盾纠纷", actor="测试")
    frm = "reported"
    for step in REACH[state]:
        advance_incident(store, inc["id"], step, note="原因" if TABLE[frm][step] else None)
        frm = step
    return inc


def test_every_state_and_action_through_the_store(store):
    for frm in STATES:
        inc = _at(store, frm)
        version = store.read_layer("incidents").set_index("id").loc[inc["id"], "version"]
        n = _events(store, inc["id"])
        # Everything not in the table is refused, and the incident and its events stay as they were.
        for to in STATES:
            if to in TABLE[frm]:
                continue
            with pytest.raises(ConflictError, match="cannot move"):
                advance_incident(store, inc["id"], to, note="原因")
        # Actions that need a note are refused without one, changing nothing.
        for to, needs in TABLE[frm].items():
            if needs:
                with pytest.raises(InputError, match="needs a note"):
                    advance_incident(store, inc["id"], to, note=" ")
        row = store.read_layer("incidents").set_index("id").loc[inc["id"]]
        assert (row["state"], row["version"], _events(store, inc["id"])) == (frm, version, n)
        # Every legal action is written (each on an incident of its own in state frm).
        for to, needs in TABLE[frm].items():
            other = _at(store, frm)
            res = advance_incident(store, other["id"], to, note="原因" if needs else None)
            assert (res["from_state"], res["to_state"]) == (frm, to)
            assert store.read_layer("incidents").set_index("id").loc[other["id"], "state"] == to
