"""What a dispatcher reads when a move is refused: the state they are in, the one they asked for,
both with their Chinese names, and what they can do instead (found missing by scripts/mutation.py)."""
from __future__ import annotations

import pytest
from gridpatrol.gis.errors import ConflictError, InputError
from gridpatrol.gis.incidents import (
    check_transition,
    legal_paths,
    normalize_state,
    state_name,
)


def test_a_refused_move_names_both_states_and_the_moves_allowed():
    with pytest.raises(ConflictError) as err:
        check_transition("completed", "结案")
    assert str(err.value) == ("an incident in state completed (办结) cannot move to closed (结案) "
                              "(from completed it can move to feedback (反馈))")
    with pytest.raises(ConflictError) as err:
        check_transition("assigned", "closed")
    assert err.value.hint == "from assigned it can move to completed (办结), escalated (上报)"
    with pytest.raises(ConflictError) as err:
        check_transition("closed", "reported")
    assert err.value.hint == "from closed it can move to nothing (it is closed)"


def test_unknown_states_and_missing_notes_say_what_to_do():
    with pytest.raises(InputError) as err:
        check_transition("lost", "closed")
    assert "unknown incident state 'lost'" in str(err.value)
    with pytest.raises(InputError) as err:
        normalize_state("丢失")
    assert err.value.hint.startswith("states: reported 发现, handled 处置, escalated 上报")
    with pytest.raises(InputError) as err:
        check_transition("revisited", "assigned", "  ")
    assert err.value.hint == "pass --note" and "needs a note" in err.value.message
    assert state_name("bogus") == "'bogus'"


def test_legal_paths_visit_a_state_at_most_max_visits_times():
    once = legal_paths(max_visits=1)
    assert ["reported", "handled", "completed", "feedback", "revisited", "closed"] in once
    assert all(len(set(p)) == len(p) for p in once)
    twice = legal_paths(max_visits=2)
    assert max(max(p.count(s) for s in p) for p in twice) == 2 and len(twice) > len(once)


def test_a_centre_sets_any_positive_deadline_and_none_for_closed_incidents():
    from gridpatrol.gis.incidents import deadlines_hours

    assert deadlines_hours({"交办": 1, "reported": 0.5})["assigned"] == 1.0
    assert deadlines_hours({"reported": 0.5})["reported"] == 0.5
    with pytest.raises(InputError, match="a closed incident has no deadline"):
        deadlines_hours({"结案": 3})
    with pytest.raises(InputError, match="deadline for reported must be a positive number of hours, got -1"):
        deadlines_hours({"reported": -1})
    with pytest.raises(InputError, match="positive"):
        deadlines_hours({"reported": "0.0"})


def test_exactly_the_four_moves_docs_name_need_a_note():
    """docs/commands.md's closed-loop table (written out here, not read from gis.incidents): a note
    is required to discard at intake, to escalate after failed on-the-spot handling, for a
    department's return and for an unsatisfied revisit; every other legal move goes without one."""
    from tests.gis.test_properties import LEGAL

    needs_note = {("reported", "closed"), ("handled", "escalated"), ("assigned", "escalated"),
                  ("revisited", "assigned")}
    for frm, to in sorted(LEGAL):
        for blank in (None, "", "   "):
            if (frm, to) in needs_note:
                with pytest.raises(InputError, match="needs a note"):
                    check_transition(frm, to, blank)
            else:
                check_transition(frm, to, blank)  # must not raise
        check_transition(frm, to, "理由")
