"""The mutation record (docs/mutation.json) and its table in docs/mutation.md: they agree, every
module scripts/mutation.py mutates has a recorded share, and no recorded share falls without a
reason. Fast: reads the files, runs no mutant (see docs/mutation.md)."""
from __future__ import annotations

import copy
import re

import pytest
from gridpatrol.scripts import mutation

RECORD = mutation.load_record()


def test_the_table_in_the_docs_is_the_record() -> None:
    """docs/mutation.md shows exactly the newest run of every module and scope in docs/mutation.json
    (scripts/mutation.py --record writes both; a hand edit of one alone fails here)."""
    assert mutation.doc_table() == mutation.table(RECORD)


# Modules whose first run did not finish within the session that added them (docs/mutation.md says
# why). Only shrinks: a module recorded while still listed here fails the test below, so the entry
# goes as soon as its share is in the record.
NOT_YET_RECORDED: set[str] = set()


def test_every_module_mutated_has_a_recorded_share() -> None:
    modules = RECORD["modules"]
    assert not set(modules) & NOT_YET_RECORDED, "recorded now: take it out of NOT_YET_RECORDED"
    assert sorted(modules) == sorted(set(mutation.MODULES) - NOT_YET_RECORDED), \
        "record a run of each module: scripts/mutation.py --record"
    assert NOT_YET_RECORDED <= set(mutation.MODULES)
    for module, scopes in modules.items():
        assert scopes and all(runs for runs in scopes.values()), module


def test_the_modules_the_docs_list_are_the_modules_mutated() -> None:
    """The "module | guarded by" table of docs/mutation.md names the modules of MODULES, no more, no fewer."""
    text = mutation.DOC.read_text(encoding="utf-8")
    guarded = text.split("| module | guarded by |", 1)[1].split("\n\n", 1)[0]
    listed = re.findall(r"^\| (\S+\.py)\b", guarded, flags=re.M)
    assert sorted(listed) == sorted(mutation.MODULES)


def test_every_recorded_run_adds_up() -> None:
    for module, scopes in RECORD["modules"].items():
        for scope, runs in scopes.items():
            for run in runs:
                where = f"{module} ({scope}) on {run['date']}"
                assert run["killed"] + run["survived"] + run["other"] == run["run"], where
                assert 0 < run["run"] <= run["mutants"], where
                assert run["share"] == round(100.0 * run["killed"] / run["run"], 1), where
                assert run["command"] and run["date"], where


def test_no_recorded_share_falls_without_a_reason() -> None:
    assert mutation.falls(RECORD) == []


def test_a_lower_share_is_refused_unless_a_reason_is_given() -> None:
    record = copy.deepcopy(RECORD)
    run = {"mutants": 100, "run": 100, "killed": 80, "survived": 20, "other": 0, "date": "2026-12-07", "command": "x"}
    mutation.record_result(record, "gis/crs.py", "all, test", run)
    before = copy.deepcopy(record)
    with pytest.raises(ValueError, match="below the recorded 80.0 %"):
        mutation.record_result(record, "gis/crs.py", "all, test", {**run, "killed": 79, "survived": 21})
    assert record == before  # nothing recorded
    # The same share and a higher one are recorded; so is a lower one given a reason, which is kept.
    mutation.record_result(record, "gis/crs.py", "all, test", run)
    mutation.record_result(record, "gis/crs.py", "all, test", {**run, "killed": 90, "survived": 10})
    mutation.record_result(record, "gis/crs.py", "all, test", {**run, "killed": 50, "survived": 50},
                           allow_lower="the tests moved to another module")
    runs = record["modules"]["gis/crs.py"]["all, test"]
    assert [r["share"] for r in runs] == [80.0, 80.0, 90.0, 50.0]
    assert runs[-1]["lower_because"] == "the tests moved to another module"
    assert mutation.falls(record) == mutation.falls(RECORD)
    assert "50.0 % (lowered: the tests moved to another module)" in mutation.table(record)
    # A hand edit that lowers a share without a reason is caught.
    del runs[-1]["lower_because"]
    assert mutation.falls(record)[-1].startswith("gis/crs.py (all, test): 90.0 % → 50.0 %")


def test_a_sample_is_compared_only_with_the_same_sample() -> None:
    assert mutation.scope_of(None, 0, None) == "all"
    assert mutation.scope_of(150, 17, None) == "sample 150 seed 17"
    assert mutation.scope_of(40, 3, "*x_can__*") == "only *x_can__*, sample 40 seed 3"
    assert mutation.scope_of(10, 17, ["*x_a__*", "*x_b__*"], ["tests/t.py::test_x"]) == \
        "only *x_a__* *x_b__*, sample 10 seed 17, tests tests/t.py::test_x"
    record = {"modules": {}}
    run = {"mutants": 10, "run": 10, "killed": 9, "survived": 1, "other": 0, "date": "d", "command": "c"}
    mutation.record_result(record, "api/auth.py", "all", run)
    mutation.record_result(record, "api/auth.py", "sample 5 seed 1", {**run, "run": 5, "killed": 1, "survived": 4})
    assert [r["share"] for r in record["modules"]["api/auth.py"]["all"]] == [90.0]
