"""The ``gridpatrol`` command line's own texts: Chinese by default, English with ``--lang en`` / GRIDPATROL_LANG=en.

Titles, column headings, summaries and prefixes go through :func:`t`; machine-readable output (``--json``,
exported files, JSON keys) and the bodies of GridPatrolError messages (shared with the API) do not.
"""
from __future__ import annotations

from gridpatrol.api.i18n import TEXTS as PAGE_TEXTS
from gridpatrol.gis.errors import InputError

LANGS = ("zh", "en")
LANG_ENV = "GRIDPATROL_LANG"


def _page(key: str, en: str) -> tuple[str, str]:
    """The pages' Chinese for ``key`` (api/i18n.py), with the command line's English."""
    return PAGE_TEXTS[key][0], en


# key → (Chinese, English). A column heading's key is the English heading itself, so rows keep their keys and
# print_table translates them.
TEXTS: dict[str, tuple[str, str]] = {
    # prefixes and labels
    # a prefix holds its own separator: a full-width colon in Chinese, ": " in English
    "error:": ("错误：", "error: "),
    "hint": ("提示", "hint"),
    "warning:": ("警告：", "warning: "),
    "warning_kind": ("警告（{kind}）：", "warning {kind}: "),
    "dropped_cut": ("丢弃/裁切：{n} 个{what}（OSM 编号 {sample}）", "dropped/cut: {n} {what} (OSM ids {sample})"),
    "nothing": ("（无）", "(nothing)"),
    "and_more": ("… 另有 {n} 条", "… and {n} more"),
    "n_what": ("{n} 条{what}：", "{n} {what}:"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "none": ("（无）", "(none)"),
    "bad_rows": ("有误、未导入的行", "bad rows not imported"),
    "no_coordinates": ("无坐标、未导入的行", "no coordinates not imported"),
    "unmatched": ("不在任何建筑内的行", "rows in no building"),
    # import / export / info
    "progress_import": ("导入 {name}", "import {name}"),
    "imported": ("已导入 {name}", "imported {name}"),
    "imported_areas": ("已导入{level}区划", "imported {level} areas"),
    "wrote_n": ("已写入 {n} 条 {layer} 到 {path}", "wrote {n} {layer} to {path}"),
    "store_line": ("数据库：{url}（结构版本 {version}）", "store: {url}  (schema version {version})"),
    "layer": ("图层", "layer"),
    "count": ("数量", "count"),
    "rows": ("行数", "rows"),
    "extent": ("范围", "extent"),
    "file": ("文件", "file"),
    "county": ("县级", "county"),
    "district": ("区级", "district"),
    "street": ("街道级", "street"),
    "community": ("社区级", "community"),
    "areas": ("区划数", "areas"),
    "what": ("项目", "what"),
    "household source": ("户数来源", "household source"),
    "buildings by household source": ("按户数来源统计的建筑", "buildings by household source"),
    "register_rows": ("登记表 {rows} 行，{households:g} 户", "{rows} register rows, {households:g} households"),
    # grids
    "progress_draw": ("划分网格", "draw grids"),
    "progress_check": ("检查网格", "check grids"),
    "plan_summary": ("方案 {pid}：{grids} 个网格，{households:.0f} 户", "plan {pid}: {grids} grids, {households:.0f} households"),
    "plan_measures": ("方案 {pid}：各网格指标", "plan {pid}: measures per grid"),
    "plan_title": ("方案 {pid}", "plan {pid}"),
    "plan_summary_title": ("方案 {pid} 检查汇总", "plan {pid} summary"),
    "plan_problems": ("方案 {pid}：{n} 个问题", "plan {pid}: {n} problems"),
    "first_n": ("（前 {n} 条）", " (first {n})"),
    "plan_edit_same": ("方案 {pid}：{msg}", "plan {pid}: {msg}"),
    "plan_edit": ("方案 {pid}（由方案 {parent} 修改）：{msg}", "plan {pid} (from plan {parent}): {msg}"),
    "changed_grids": ("变更的网格：", "changed grids: "),
    "removed_grids": ("删除的网格：", "removed grids: "),
    "wrote_problems": ("已写入 {n} 个问题位置到 {path}", "wrote {n} problem locations to {path}"),
    "plan_invalid": ("方案 {pid} 未通过检查：{n} 个错误", "plan {pid} is NOT valid: {n} errors"),
    "plan_valid": ("方案 {pid} 通过检查", "plan {pid} is valid"),
    "buildings_changed": ("{n} 栋建筑变更了网格", "{n} buildings changed grid"),
    "plan_diff": ("方案 {a} → {b}", "plan {a} → {b}"),
    "plan_imported": ("方案 {pid}：已从 {path} 导入网格（模式 {mode}）", "plan {pid}: imported grids from {path} (mode {mode})"),
    "wrote": ("已写入 {path}", "wrote {path}"),
    "slivers": ("{n} 处碎片并入共边最长的相邻网格：{moves}",
                "{n} slivers absorbed into the neighbour sharing the longest boundary: {moves}"),
    "grid plans": ("网格方案", "grid plans"),
    "data_coverage_title": ("数据覆盖率（各区划中含街道或建筑的 250 米格子所占比例）",
                            "data coverage (share of each area whose 250 m cells hold streets or buildings)"),
    "grid": _page("grid", "grid"),
    "households": ("户数", "households"),
    "population": ("人口", "population"),
    "street km": ("街道长度（公里）", "street km"),
    "area km²": ("面积（平方公里）", "area km²"),
    "buildings": ("建筑数", "buildings"),
    "workload": ("工作量", "workload"),
    "in band": ("户数达标", "in band"),
    "exempt": ("豁免", "exempt"),
    "area": ("区划", "area"),
    "data coverage": ("数据覆盖率", "data coverage"),
    "km²": ("平方公里", "km²"),
    "households/km²": ("户/平方公里", "households/km²"),
    "metric": ("指标", "metric"),
    "value": ("数值", "value"),
    "check": ("检查项", "check"),
    "item": ("项目", "item"),
    "kind": ("类型", "kind"),
    "severity": ("级别", "severity"),
    "detail": ("详情", "detail"),
    "plan": ("方案", "plan"),
    "created_at": ("创建时间", "created_at"),
    "method": ("方法", "method"),
    "parent": ("上级方案", "parent"),
    "grids": ("网格数", "grids"),
    "share_in_band": ("达标比例", "share_in_band"),
    "note": ("备注", "note"),
    "id": ("编号", "id"),
    "osm_type": ("OSM 类型", "osm_type"),
    "osm_id": ("OSM 编号", "osm_id"),
    "name": _page("name", "name"),
    # routes
    "progress_routes": ("规划{mode}巡查路线", "plan {mode} routes"),
    "walk": ("步行", "walk"),
    "drive": ("车巡", "drive"),
    "routes_title": ("{mode}巡查路线（掉头 uturns；dead_end：其中在尽头路的；uturns_min：同样路段任何顺序至少的掉头数）",
                     "{mode} routes (uturns: 掉头; dead_end: of them at dead ends; uturns_min: the fewest any order of "
                     "the same passes makes)"),
    "routes": ("路线数", "routes"),
    "length_m": ("长度（米）", "length_m"),
    "required_m": ("必走长度（米）", "required_m"),
    "lower_bound_m": ("下界（米）", "lower_bound_m"),
    "gap": ("差距", "gap"),
    "turns/km": ("转弯/公里", "turns/km"),
    "uturns": ("掉头", "uturns"),
    "dead_end": ("尽头路掉头", "dead_end"),
    "uturns_min": ("至少掉头", "uturns_min"),
    "uturns/km": ("掉头/公里", "uturns/km"),
    "optimal": ("最优", "optimal"),
    "bounded": ("有界", "bounded"),
    "longest_mean": ("最长/平均 {v:.3f}", "longest/mean {v:.3f}"),
    "shifts_title": ("每班不超过 {m:g} 分钟（at_least：ceil(最优用时 / 上限)）",
                     "shifts of at most {m:g} min (at_least: ceil(optimal time / limit))"),
    "shifts": _page("shifts", "shifts"),
    "minutes": ("分钟", "minutes"),
    "whole_min": ("全程（分钟）", "whole_min"),
    "at_least": ("至少班次", "at_least"),
    "farthest_round_trip_min": ("最远往返（分钟）", "farthest_round_trip_min"),
    "calendar_title": ("巡查排班（{days} 天）", "patrol calendar (巡查排班) over {days} day(s)"),
    "worker": ("网格员", "worker"),
    "day": ("天", "day"),
    "shifts (grid#shift)": ("班次（网格#班次）", "shifts (grid#shift)"),
    "busiest_day_at_least_min": ("最忙一天至少（分钟）", "busiest_day_at_least_min"),
    "proven_lightest": ("已证明最轻", "proven_lightest"),
    "islands": ("{n} 处街道孤岛无法到达，已略去；修正方法：", "{n} street island(s) cannot be reached and are left out; to fix:"),
    "no_route": ("{n} 个区域没有路线（见备注）", "{n} area(s) without a route (see note)"),
    "stored_routes": ("已保存 {n} 条路线", "stored {n} route(s)"),
    "no_hot_spot": ("网格 {grid} 没有热点：最近 {days:g} 天内没有 {n} 起相距 {r:g} 米以内的事件",
                    "grid {grid} has no hot spot: no {n} incidents within {r:g} m of each other in the last {days:g} days"),
    "hot_spots_title": ("{grid} 的事件热点（最近 {days:g} 天）", "hot spots of {grid} (last {days:g} days)"),
    "hot spot": ("热点", "hot spot"),
    "importance": ("重要度", "importance"),
    "categories": ("类别", "categories"),
    "point": ("点位", "point"),
    "progress_visit": ("规划走访路线", "plan visit route"),
    "visit_title": ("走访顺序（{code}）", "visit order ({code})"),
    "visit_length": ("长度 {m:.0f} 米，约 {min:.0f} 分钟；下界 {lb:.0f} 米（差距 {gap:.2f}%，{bound}）",
                     "length {m:.0f} m, about {min:.0f} min; lower bound {lb:.0f} m (gap {gap:.2f}%, {bound})"),
    "visit_budget": ("按时间预算选中的点位：{sel}；重要度 {got:.2f} / {total:.2f}",
                     "points chosen for the budget: {sel}; importance {got:.2f} of {total:.2f}"),
    "not_visited": ("未走访（超出预算）：", "not visited (budget): "),
    "route_printed": ("{code}：{m:.0f} 米，{n} 步 → ", "{code}: {m:.0f} m, {n} steps → "),
    # cameras and incidents
    "incident_reported": ("事件 {id} 已登记（发现），网格 {grid}，网格员 {worker}",
                          "incident {id} reported (发现) in grid {grid}, worker {worker}"),
    "duplicate": ("可能与事件 {id} 重复", "possible duplicate of incident {id}"),
    "duplicate_why": ("（同类别，50 米、24 小时以内）", "(same category within 50 m and 24 h)"),
    "incident_advanced": ("事件 {id}：{a}（{a_zh}）→ {b}（{b_zh}），版本 {v}",
                          "incident {id}: {a} ({a_zh}) → {b} ({b_zh}), version {v}"),
    "incident_title": ("事件 {id}", "incident {id}"),
    "overdue_title": ("{n} 起事件超期", "{n} overdue incidents"),
    "cameras_title": ("{n} 台摄像机", "{n} cameras"),
    "progress_linking": ("关联事件与摄像机", "linking"),
    "reading_cameras": ("读取摄像机和事件", "reading cameras and incidents"),
    "wrote_pairs": ("已写入 {n} 对（{inc} 起事件，{view} 对在视野内）到 {path}",
                    "wrote {n} pairs ({inc} incidents, {view} in view) to {path}"),
    "pairs_title": ("{n} 对（前 50 对；--out 输出全部）", "{n} pairs (first 50; use --out for all)"),
    "coverage_title": ("各网格街道的摄像机覆盖率", "camera coverage of streets per grid"),
    "progress_synth": ("合成示范数据", "synthetic demo data"),
    "synth_title": ("合成示范数据（已标记为合成）", "synthetic demo data (marked synthetic)"),
    "category": ("类别", "category"),
    "state": ("状态", "state"),
    "state_zh": ("状态（中文）", "state_zh"),
    "grid_code": ("网格编号", "grid_code"),
    "due_at": ("期限", "due_at"),
    "overdue_h": ("超期（小时）", "overdue_h"),
    "code": ("编号", "code"),
    "project": ("项目", "project"),
    "distance_m": ("距离（米）", "distance_m"),
    "bearing_deg": ("方位角（度）", "bearing_deg"),
    "in_view": ("在视野内", "in_view"),
    "online": ("在线", "online"),
    "status": ("状态", "status"),
    "camera_type": ("摄像机类型", "camera_type"),
    # tracks
    "track_stored": ("已保存轨迹", "stored"),
    "track_already": ("已保存过，轨迹", "already stored as"),
    "track_line": ("{verb} {id}（{name}）：{n} 个定位点，{span}（{tz}）", "{verb} track {id} of {name}: {n} fixes, {span} ({tz})"),
    "suspicious": ("可疑轨迹，不计入考核：", "suspicious, not counted:"),
    # jobs
    "queued_jobs": ("已排队 {n} 个 {kind} 任务：", "queued {n} {kind} job(s): "),
    "run_workers": ("启动任务进程（gridpatrol worker）并跟踪：gridpatrol jobs --wait",
                    "run workers (gridpatrol worker) and follow them: gridpatrol jobs --wait"),
    "worker_on": ("任务进程：{url}（并发 {n}）", "worker on {url} (concurrency {n})"),
    "job_line": ("任务 {id}：{state}", "job {id}: {state}"),
    "progress_job": ("任务 {id} {kind}", "job {id} {kind}"),
    "progress_wait": ("等待任务", "waiting for jobs"),
    "open_jobs": ("{n} 个排队或运行中", "{n} queued or running"),
    "jobs waited for": ("等待的任务", "jobs waited for"),
    "jobs_failed": ("{n} 个任务失败：", "{n} job(s) failed:"),
    "jobs": ("任务", "jobs"),
    "by": ("提交人", "by"),
    "queued": ("排队时间", "queued"),
    "progress": ("进度", "progress"),
    "step": ("步骤", "step"),
    "tries": ("尝试次数", "tries"),
    "result / error": ("结果/错误", "result / error"),
    # service, users, trust, qgis
    "created_user": ("已创建用户 [bold]{name}[/]，角色 {role}（密级 ≤ {level}）",
                     "created user [bold]{name}[/] with role {role} (secrecy level ≤ {level})"),
    "one_time": ("一次性密码（仅此一次显示）：[bold]{pw}[/]", "one-time password (shown only now): [bold]{pw}[/]"),
    "password_prompt": ("{name} 的密码", "password for {name}"),
    "password_changed": ("{name} 的密码已修改", "password of {name} changed"),
    "user_changed": ("用户 {name} 已修改", "user {name} changed"),
    "users": ("用户", "users"),
    "role": ("角色", "role"),
    "max_secrecy_level": ("密级上限", "max_secrecy_level"),
    "active": ("启用", "active"),
    "tokens_revoked_at": ("令牌撤销时间", "tokens_revoked_at"),
    "replica_not_standby": ("replica_db 不是备库（pg_is_in_recovery() 为 false）：读取仍然发往它",
                            "replica_db is not a standby (pg_is_in_recovery() is false): reads go there all the same"),
    "no_secret_key": ("未设置 GRIDPATROL_SECRET_KEY：使用随机密钥；服务停止后令牌失效",
                      "no GRIDPATROL_SECRET_KEY set: using a random key; tokens end with this server"),
    "serving": ("服务 {url}，地址 http://{host}:{port}（文档：/docs，OGC API：/ogc）",
                "serving {url} at http://{host}:{port}  (docs: /docs, OGC API: /ogc)"),
    "audit_intact": ("审计日志完整：已校验 {n} 条；最新哈希 {hash}",
                     "audit log intact: {n} entries verified; newest hash {hash}"),
    "audit log": ("审计日志", "audit log"),
    "at": ("时间", "at"),
    "actor": ("操作人", "actor"),
    "actor_id": ("操作人编号", "actor_id"),
    "action": ("操作", "action"),
    "target": ("对象", "target"),
    "backup_written": ("{url} 的备份已写入 {path}（{size} 字节，结构版本 {version}）",
                       "backup of {url} written to {path} ({size} bytes, schema version {version})"),
    "restored": ("已恢复 {path}（结构版本 {version}）", "restored {path} (schema version {version})"),
    "wrote_qgis": ("已写入 {qgs} 和 {gpkg}：{layers}", "wrote {qgs} and {gpkg}: {layers}"),
    # demo
    "demo_title": ("成都示范", "Chengdu demo"),
    "timings": ("用时", "timings"),
    "seconds": ("秒", "seconds"),
    "demo_read": ("读取 chengdu.osm", "read chengdu.osm"),
    "demo_import": ("导入街道、建筑、障碍", "import streets, buildings, barriers"),
    "demo_areas": ("导入区界（GCJ-02 → WGS-84）", "import district boundaries (GCJ-02 → WGS-84)"),
    "demo_routes": ("为 {n} 个网格规划步行巡查路线", "plan walking routes for {n} grids"),
    "demo_synth": ("合成摄像机和事件（已标记为合成）", "synthetic cameras and incidents (marked synthetic)"),
    "demo_outputs": ("写入网格图和路线单样例", "write map and sample route sheet"),
    "demo_roads": ("道路 / 建筑", "roads / buildings"),
    "demo_grids": ("网格（方案 {pid}）", "grids (plan {pid})"),
    "demo_check": ("{n}，检查：{check}", "{n}, check: {check}"),
    "valid": ("通过", "valid"),
    "n_problems": ("{n} 个问题", "{n} problems"),
    "demo_routes_row": ("{ok} / {n} 个网格", "{ok} of {n} grids"),
    "demo_no_route": ("{n} 个网格没有路线（{codes}）：{why}", "no route for {n} grid(s) ({codes}): {why}"),
    "demo_files": ("{out}/ 中的文件：grids.html（离线网格图）、route-*.pdf（A4 路线单）、route-*.gpx",
                   "files in {out}/: grids.html (offline grid map), route-*.pdf (A4 sheet), route-*.gpx"),
    "demo_admin": ("[bold]示范管理员[/]：用户 [bold]demo-admin[/]，一次性密码 [bold]{pw}[/]"
                   "（用 `gridpatrol set-password demo-admin` 修改）",
                   "[bold]demo admin[/]: user [bold]demo-admin[/], one-time password [bold]{pw}[/] "
                   "(change it with `gridpatrol set-password demo-admin`)"),
    "demo_serving": ("服务地址 [bold]http://{host}:{port}/[/]（地图、接口文档 /docs、OGC API /ogc；Ctrl-C 停止）",
                     "serving at [bold]http://{host}:{port}/[/]  (maps, API docs /docs, OGC API /ogc; Ctrl-C stops)"),
}

_state = {"lang": "zh"}


def check_lang(lang: str | None, where: str = "--lang") -> str:
    """``lang`` if it is zh or en; an InputError (exit 2) naming ``where`` otherwise."""
    if lang not in LANGS:
        raise InputError(f"语言 {str(lang)[:20]!r} 不支持，应为 zh 或 en（{where} must be zh or en, not {str(lang)[:20]!r}）",
                         where=where, hint="zh（默认）或 en / zh (the default) or en")
    return lang


def set_lang(lang: str) -> None:
    """Make ``lang`` (zh or en) the language of everything the command prints from now on."""
    _state["lang"] = check_lang(lang)


def current_lang() -> str:
    """The language the command line prints in: zh or en."""
    return _state["lang"]


def t(key: str, **values: object) -> str:
    """The text of ``key`` in the current language, ``{name}`` fields filled in."""
    text = TEXTS[key][current_lang() == "en"]
    return text.format(**values) if values else text


def heading(key: object) -> str:
    """A column heading (or a row label) in the current language; keys without a text are shown as they are."""
    pair = TEXTS.get(str(key))
    return pair[current_lang() == "en"] if pair else str(key)
