"""Time zone names a user gives (settings, job and report parameters): the one check that a name is an IANA zone."""
from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator


def _iana_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError; a folder such as "Asia" an OSError
        raise ValueError("is not an IANA time zone (e.g. Asia/Shanghai, Asia/Urumqi)") from None
    return value


# A pydantic field type: a string that names an IANA time zone, else a validation error saying so.
ZoneName = Annotated[str, AfterValidator(_iana_zone)]
