"""One check for every human-entered name (worker, user, grid, camera, incident category) before it is stored."""
from __future__ import annotations

import unicodedata

from gridpatrol.gis.errors import InputError

MAX_NAME_LEN = 64
# What each field is called in messages: Chinese first, then English.
FIELDS: dict[str, str] = {
    "worker": "网格员姓名 worker name",
    "user": "用户名 user name",
    "grid": "网格名称 grid name",
    "camera": "摄像机名称 camera name",
    "category": "事件类别 incident category",
    "station": "站点名称 station name",
}


def name_problem(value: str, field: str, *, max_len: int = MAX_NAME_LEN) -> str | None:
    """Why ``value`` (already trimmed) cannot be stored as a ``field`` name, or None when it can."""
    label = FIELDS.get(field, field)
    if not value:
        return f"{label} 不能为空 / {field} name is empty"
    if len(value) > max_len:
        return f"{label} 超过 {max_len} 个字符 / is longer than {max_len} characters ({len(value)})"
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value):
        return f"{label} 含有控制字符 / contains control characters"
    if "<" in value or ">" in value:
        return f"{label} 不能包含 < 或 > / must not contain < or >: {value!r}"
    return None


def clean_name(value: object, field: str, *, max_len: int = MAX_NAME_LEN, where: str | None = None) -> str:
    """``value`` trimmed, or InputError saying which field is wrong and how."""
    text = str(value).strip() if value is not None else ""
    problem = name_problem(text, field, max_len=max_len)
    if problem:
        raise InputError(problem, where=where,
                         hint="用 1–64 个可打印字符，不含 < > / use 1–64 printable characters without < or >")
    return text
