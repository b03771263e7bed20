"""The real ``gridpatrol`` prints Chinese first (#15): titles, column headings, summaries and the error prefix are
zh-CN by default and English with ``gridpatrol --lang en`` or GRIDPATROL_LANG=en; a command's own --lang wins; an
unknown language exits 2 with a clear message; ``--json`` is the same in both languages."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cached_stores import jinjiang_inputs, jinjiang_with_users
from tests.conftest import data_path
from tests.store_cache import fill_from_cache

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def gp(db: str, *args: str, env_lang: str | None = None, expect: int | None = 0) -> subprocess.CompletedProcess:
    """``gridpatrol --db DB ARGS…`` with GRIDPATROL_LANG unset (or ``env_lang``)."""
    env = {k: v for k, v in os.environ.items() if k != "GRIDPATROL_LANG"} | {"COLUMNS": "200"}
    if env_lang is not None:
        env["GRIDPATROL_LANG"] = env_lang
    p = subprocess.run([GRIDPATROL, "--db", db, *args], capture_output=True, text=True, timeout=600, env=env)
    if expect is not None:
        assert p.returncode == expect, (args, p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p


def headings(out: str) -> list[str]:
    """The column headings of every rich table printed (the lines between ┏ and ┡)."""
    return [c.strip() for line in out.splitlines() if line.startswith("┃") for c in line.strip("┃").split("┃")]


def test_import_and_info_print_chinese_first_and_english_on_request(tmp_path):
    db = f"gpkg:///{tmp_path / 'lang.gpkg'}"
    out = gp(db, "import-osm", str(data_path("chengdu", "chengdu.osm"))).stdout
    assert "已导入 chengdu.osm" in out and headings(out) == ["图层", "数量"], out
    assert "imported" not in out
    zh = gp(db, "info").stdout
    assert zh.startswith("数据库：") and "结构版本" in zh and headings(zh) == ["图层", "行数", "范围"], zh
    en = gp(db, "--lang", "en", "info").stdout
    assert en.startswith("store: ") and "schema version" in en and headings(en) == ["layer", "rows", "extent"], en
    assert gp(db, "info", env_lang="en").stdout == en  # GRIDPATROL_LANG=en: the same English
    assert gp(db, "--lang", "zh", "info", env_lang="en").stdout == zh  # the option beats the environment
    # Machine-readable output does not change with the language.
    js = {gp(db, *lang, "info", "--json", env_lang=env).stdout
          for lang, env in (([], None), (["--lang", "en"], None), ([], "en"), (["--lang", "zh"], "en"))}
    assert len(js) == 1 and '"layers"' in js.pop()
    # The error line: the message itself (shared with the API) stays, its prefix and hint label follow the language.
    bad = gp(db, "export", "nosuchlayer", str(tmp_path / "x.geojson"), expect=None)
    bad_en = gp(db, "export", "nosuchlayer", str(tmp_path / "x.geojson"), env_lang="en", expect=None)
    assert bad.returncode == bad_en.returncode != 0
    assert bad.stderr.startswith("错误：") and "unknown layer" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert bad_en.stderr.startswith("error: ") and "unknown layer" in bad_en.stderr, bad_en.stderr


@pytest.mark.parametrize("store_url", ["gpkg"], indirect=True)
def test_draw_grids_summary_is_chinese_by_default_and_a_commands_own_lang_wins(store_url):  # noqa: ANN001
    db = store_url
    fill_from_cache(db, "jobs-jinjiang", jinjiang_with_users, jinjiang_inputs())
    zh = gp(db, "draw-grids", "--seed", "1")
    heads = headings(zh.stdout)
    assert {"网格", "户数", "人口", "街道长度（公里）", "面积（平方公里）", "指标", "数值"} <= set(heads), heads
    assert not {"households", "street km", "metric"} & set(heads), heads
    assert "方案 1：" in zh.stdout and "个网格" in zh.stdout and "各网格指标" in zh.stdout, zh.stdout
    assert "measures per grid" not in zh.stdout and "grids," not in zh.stdout
    # check-grids in English by GRIDPATROL_LANG, and its own --lang zh wins over it.
    en = gp(db, "check-grids", env_lang="en").stdout
    assert "plan 1 summary" in en and "plan 1 is valid" in en and {"households", "street km"} <= set(headings(en)), en
    own = gp(db, "check-grids", "--lang", "zh", env_lang="en").stdout
    assert "方案 1 检查汇总" in own and "方案 1 通过检查" in own and "plan 1" not in own, own


def test_an_unknown_language_is_refused_clearly(tmp_path):
    db = f"gpkg:///{tmp_path / 'none.gpkg'}"
    for args, env in ((["--lang", "fr"], None), ([], "fr")):
        p = gp(db, *args, "info", env_lang=env, expect=2)
        assert "--lang" in p.stderr and "GRIDPATROL_LANG" in p.stderr and "zh 或 en" in p.stderr, p.stderr
        assert "must be zh or en, not 'fr'" in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "none.gpkg").exists()
