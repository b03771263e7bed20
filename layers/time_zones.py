"""Time zone names a user gives (settings, job and report parameters): the one check that a name is an IANA zone."""
from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from gridpatrol.gis.errors import InputError
from pydantic import AfterValidator

# The zone of a county that sets none (settings ``timezone``); times are shown and exported in the county's zone.
DEFAULT_ZONE = "Asia/Shanghai"


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; a folder such as "Asia" an OSError
        raise ValueError("is not an IANA time zone (e.g. Asia/Shanghai, Asia/Urumqi)") from None
    return value


# A pydantic field type: a string that names an IANA time zone, else a validation error saying so.
ZoneName = Annotated[str, AfterValidator(_iana_zone)]


def check_zone(value: str, *, where: str | None = None) -> str:
    """``value`` if it names an IANA time zone, else InputError saying so (for zones given outside the settings)."""
    try:
        return _iana_zone(value)
    except ValueError as exc:
        raise InputError(f"time zone {value!r} {exc}", where=where, hint="an IANA name such as Asia/Shanghai") from None
