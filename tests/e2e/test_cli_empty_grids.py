"""The real ``gridpatrol`` says how many grids hold no households and why, Chinese first (#15):
draw-grids and check-grids with caps on 锦江区 end with the note, check-grids --lang en in
English, with the proven least number of such grids any plan within the caps has; and a --lang it
does not know is refused before any work."""
from __future__ import annotations

import re

import pytest

from tests.cached_stores import chengdu_five_districts, chengdu_inputs, jinjiang_inputs, jinjiang_with_users
from tests.e2e.test_cli_grids import INPUT_EXIT, run
from tests.store_cache import fill_from_cache


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
def test_the_note_on_grids_without_households(store_url):  # noqa: ANN001
    fill_from_cache(store_url, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())
    bad = run(store_url, "check-grids", "--lang", "fr", expect=INPUT_EXIT, lang=None)
    assert "--lang must be zh or en" in bad.stderr and "Traceback" not in bad.stderr
    drawn = run(store_url, "draw-grids", "--max-street-m", "3000", "--max-area-m2", "400000", "--seed", "1", lang=None)
    n = int(re.search(r"(\d+) 个网格没有住户：硬上限", drawn.stderr).group(1))
    assert n > 0 and "优先于" in drawn.stderr
    zh = run(store_url, "check-grids", lang=None)
    assert f"{n} 个网格没有住户，其中 {n} 个豁免（由硬上限所迫" in zh.stderr and "通过检查" in zh.stdout
    en = run(store_url, "check-grids", "--lang", "en", lang=None)
    assert f"{n} grids hold no households, {n} of them exempt (forced by a hard cap" in " ".join(en.stderr.split())
    assert "个网格" not in en.stderr
    # and how many any plan within the caps must have: the proven lower bound, met or not
    m = re.search(r"至少有 (\d+) 个无住户网格", zh.stderr)
    assert m and 0 <= int(m.group(1)) <= n, zh.stderr
    b = int(m.group(1))
    assert re.search(rf"至少有 {b} 个无住户网格", drawn.stderr)
    if b < n:
        assert f"本方案有 {n} 个，其余 {n - b} 个未证明不可避免" in zh.stderr
    else:
        assert "作为整体不可避免" in zh.stderr
    assert f"at least {b} grids of 0 households (a proven lower bound)" in " ".join(en.stderr.split())


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
def test_a_draw_without_caps_blames_no_cap(store_url):  # noqa: ANN001
    # Chengdu's five districts drawn with no cap: the grids of 0 households left are pieces of an area cut off
    # without households (exempt as such in check-grids); the note must not say a hard cap forced them
    fill_from_cache(store_url, "chengdu-five", chengdu_five_districts, chengdu_inputs())
    drawn = run(store_url, "draw-grids", "--seed", "1", lang=None)
    m = re.search(r"(\d+) 个网格没有住户：它们所在的区划片块", drawn.stderr)
    assert m and int(m.group(1)) > 0, drawn.stderr
    assert "硬上限" not in drawn.stderr and "优先于" not in drawn.stderr
    n = int(m.group(1))
    en = run(store_url, "check-grids", "--lang", "en")
    assert "(exempt: its piece of the area" in en.stdout
    assert f"{n} grids hold no households, {n} of them exempt (forced by a hard cap, or a cut-off piece" in \
        " ".join(en.stderr.split())
