"""The pages' language: Chinese by default, English on ``?lang=en`` (remembered in a cookie), and their texts."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: the command line reads TEXTS without importing FastAPI
    from fastapi import Request, Response

LANG_COOKIE = "gp_lang"
LANGS = ("zh", "en")
LANG_HELP = "zh or en (default: the pages' choice, else Accept-Language, else zh)"
HTML_LANG = {"zh": "zh-CN", "en": "en"}

# key → (Chinese, English)
TEXTS: dict[str, tuple[str, str]] = {
    "app": ("网格化服务管理", "Grid management"),
    "home": ("首页", "Home"),
    "login": ("登录", "Log in"),
    "logout": ("退出登录", "Log out"),
    "username": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "wrong_login": ("用户名或密码错误。", "Wrong user name or password."),
    "login_locked": ("登录失败次数过多，已暂时锁定：请在 {s} 秒后重试。",
                     "Too many failed logins: locked for now, try again in {s} s."),
    "try_again": ("重试", "Try again"),
    "signed_in_as": ("当前用户", "Signed in as"),
    "anonymous": ("匿名（仅公开图层）", "anonymous (public layers only)"),
    "grid_map": ("网格图", "Grid plan map"),
    "grid_map_note": ("方案 {plan}，共 {n} 个网格", "plan {plan}, {n} grids"),
    "incident_map": ("事件地图", "Incident map"),
    "incident_map_note": ("点击地图：所在网格、网格员、可见摄像机、附近事件",
                          "click anywhere: grid, worker, cameras in view, nearby incidents"),
    "route_map": ("巡查路线", "Patrol route map"),
    "route_sheet": ("路线单（PDF）", "Route sheet (PDF)"),
    "routes_need_login": ("巡查路线和路线单：请以规划员、调度员、网格员或管理员身份登录",
                          "Route maps and route sheets: log in as planner, dispatcher, worker or admin"),
    "routes_you_see": ("可查看的巡查路线（{n} 个网格）", "Patrol routes you may see ({n} grids)"),
    "more_routes": ("另有 {n} 个网格的路线未列出，请在网格图中查看。", "{n} more grids with routes are not listed; see the grid map."),
    "grid": ("网格", "Grid"),
    "name": ("名称", "Name"),
    "shifts": ("班次", "Shifts"),
    "length_km": ("长度（公里）", "Length (km)"),
    "minutes": ("用时（分钟）", "Time (min)"),
    "api_docs": ("接口文档（OpenAPI）", "API documentation (OpenAPI)"),
    "ogc_note": ("QGIS：图层 ▸ 添加图层 ▸ WFS / OGC API – Features，地址", "QGIS: Layer ▸ Add Layer ▸ WFS / OGC API – Features, URL"),
    "readiness": ("服务就绪状态", "Readiness"),
    "synthetic": ("中国示范区的摄像机和事件为合成数据。", "Cameras and incidents of the Chinese demo areas are synthetic."),
    "osm": ("地图数据 © OpenStreetMap 贡献者（ODbL）", "Map data © OpenStreetMap contributors (ODbL)"),
    "error": ("出错了", "Error"),
    "switch_lang": ("English", "中文"),
    "households_per_grid": ("每个网格的户数", "households per grid"),
    "band": ("标准 {lo}–{hi} 户", "band {lo}–{hi}"),
    "click_map": ("点击地图查询：所在网格、网格员、可见摄像机、附近事件",
                  "Click the map: grid, worker, cameras in view, nearby incidents"),
    "directions": ("路线指引", "Directions"),
    "loading": ("加载中…", "Loading…"),
    "planner": ("网格规划工作台", "Grid planner's workbench"),
    "grid_name": ("网格名称，如 锦官驿社区第3网格", "grid name, e.g. Jinguanyi community grid 3"),
    "rename": ("命名", "Rename"),
    "undo": ("撤销", "Undo"),
    "redo": ("重做", "Redo"),
    "export": ("导出当前版本", "Export this version"),
    "tab_grids": ("网格", "Grids"),
    "tab_move": ("移动街区", "Move blocks"),
    "tab_problems": ("问题", "Problems"),
    "tab_versions": ("版本", "Versions"),
    "search_grids": ("搜索编号、名称或网格员", "search code, name or worker"),
    "sort": ("排序", "Sort"),
    "sort_code": ("按编号", "by code"),
    "sort_households": ("按户数", "by households"),
    "sort_deviation": ("按偏差", "by deviation"),
    "sort_street": ("按街道长度", "by street km"),
    "parts": ("份数", "parts"),
    "split": ("拆分", "Split"),
    "merge": ("合并所选", "Merge selected"),
    "rebalance": ("重新平衡所选", "Rebalance selected"),
    "long_work": ("耗时操作（后台任务，显示进度）", "Long work (queued jobs, with progress)"),
    "draw_all": ("重新划分全部网格", "Redraw every grid"),
    "plan_routes_all": ("规划全部巡查路线", "Plan every patrol route"),
    "cancel_job": ("取消任务", "Cancel the job"),
    "lock": ("锁定", "Lock"),
    "unlock": ("解锁", "Unlock"),
    "worker_name": ("网格员姓名", "worker name"),
    "pick_station": ("在地图上选站点", "Pick station on map"),
    "assign": ("指定网格员", "Assign worker"),
    "grids_hint": ("勾选网格后用上面的按钮编辑；点击网格名称定位到地图。",
                   "Tick grids, then use the buttons; click a grid to zoom to it."),
    "move_hint": ("点击地图上的街区选择（Shift 点击加选，Shift 拖动框选），选择目标网格，确认前先看预览。",
                  "Click blocks on the map (shift-click adds, shift-drag selects a box), pick the target grid, "
                  "check the preview, then commit."),
    "nothing_selected": ("未选择街区", "No block selected"),
    "target": ("目标网格", "Target grid"),
    "clear": ("清除选择", "Clear"),
    "force": ("接受超出户数标准", "accept households outside the band"),
    "commit_move": ("确认移动", "Commit the move"),
    # The worker's phone page (/m/).
    "m_today": ("今日班次", "Today's shifts"),
    "m_next": ("下一步", "Next"),
    "m_left": ("剩余路程", "Distance left"),
    "m_start": ("开始巡查", "Start patrol"),
    "m_stop": ("结束巡查", "End patrol"),
    "m_report": ("发现/上报", "Report an incident"),
    "m_category": ("类别", "Category"),
    "m_text": ("情况描述", "What you found"),
    "m_photos": ("照片", "Photos"),
    "m_position": ("位置", "Position"),
    "m_use_gps": ("用当前定位", "Use my GPS position"),
    "m_pos_hint": ("点击地图可调整上报位置（红点）。", "Tap the map to move the report's position (red dot)."),
    "m_send": ("上报", "Report"),
    "m_queue": ("我的上报", "My reports"),
    "m_send_now": ("立即发送", "Send now"),
}


def page_lang(request: Request) -> str:
    """``zh`` or ``en``: the ``lang`` query parameter, else the remembered choice, else Chinese."""
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    return c if c in LANGS else "zh"


def file_lang(request: Request) -> str:
    """The language of a generated file (route sheet, 考核表): ``?lang=``, else the pages' remembered choice,
    else the best of zh/en in ``Accept-Language``, else Chinese."""
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    if c in LANGS:
        return c
    from werkzeug.datastructures import LanguageAccept
    from werkzeug.http import parse_accept_header

    best = parse_accept_header(request.headers.get("accept-language", "")[:500], LanguageAccept).best_match(LANGS)
    return best or "zh"


def remember_lang(request: Request, response: Response) -> None:
    """Keep a ``?lang=`` choice in a cookie so the other pages follow it."""
    q = request.query_params.get("lang")
    if q in LANGS and request.cookies.get(LANG_COOKIE) != q:
        response.set_cookie(LANG_COOKIE, q, max_age=365 * 86400, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")


def translator(lang: str):  # noqa: ANN201
    """``t(key, **values)``: the text of ``key`` in ``lang`` with ``{name}`` fields filled in."""
    i = 1 if lang == "en" else 0

    def t(key: str, **values: object) -> str:
        text = TEXTS[key][i]
        return text.format(**values) if values else text

    return t
