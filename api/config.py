"""Service settings, in one place: defaults, then a TOML config file, then GRIDPATROL_* env vars."""
from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gis.errors import InputError
from layers.logins import LoginLimits

ENV_PREFIX = "GRIDPATROL_"


@dataclass(frozen=True)
class Settings:
    """Everything the service can be configured with.

    Every field ``x`` can be set as ``x = …`` in the config file (``GRIDPATROL_CONFIG`` or
    ``--config``) and overridden by the environment variable ``GRIDPATROL_X``.
    """

    db: str | None = None  # store URL; None → GRIDPATROL_DB or ./gridpatrol.gpkg
    production: bool = False  # refuse generated secrets and default passwords
    secret_key: str = ""  # signs access tokens; required in production
    token_ttl_s: int = 8 * 3600
    # Without a token, requests act as a viewer (public layers only); off in production.
    anonymous_read: bool | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    ogc_default_limit: int = 100
    ogc_max_limit: int = 10_000
    lookup_radius_m: float = 200.0  # map click: incidents within 200 m …
    lookup_incident_days: int = 90  # … in the last 90 days (as the CLI lookup)
    # PostGIS connections per worker process for the map click's asyncio path (the rest of the
    # API uses the SQLAlchemy pool of the store).
    pg_async_pool: int = 8
    # Optional online/intranet basemap: a Leaflet tile URL template, its attribution, and the
    # datum of its tiles (gcj02 for most Chinese web maps: our layers are shifted to match).
    tile_url: str | None = None
    tile_attribution: str = ""
    tile_crs: str = "wgs84"
    # The county's time zone: pages show times in it (stored times are UTC).
    timezone: str = "Asia/Shanghai"
    # Failed logins (see layers/logins.py): over max failures within the window, the account or
    # client address is locked for lockout_s, doubling with every further lockout up to lockout_max_s.
    login_max_failures_per_user: int = 5
    login_max_failures_per_address: int = 20
    login_window_s: int = 15 * 60
    login_lockout_s: int = 15 * 60
    login_lockout_max_s: int = 24 * 3600
    log_level: str = "INFO"
    log_json: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def login_limits(self) -> LoginLimits:
        """The failed-login limits of these settings."""
        return LoginLimits(per_user=self.login_max_failures_per_user, per_address=self.login_max_failures_per_address,
                           window_s=self.login_window_s, lockout_s=self.login_lockout_s,
                           lockout_max_s=self.login_lockout_max_s)

    @property
    def allow_anonymous(self) -> bool:
        """Whether unauthenticated requests may read public layers."""
        return (not self.production) if self.anonymous_read is None else self.anonymous_read


def _coerce(name: str, raw: Any, typ: str) -> Any:
    if raw is None:
        return None
    try:
        if "bool" in typ:
            if isinstance(raw, bool):
                return raw
            value = str(raw).strip().lower()
            if value in ("1", "true", "yes", "on"):
                return True
            if value in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(value)
        if typ.startswith("int"):
            return int(raw)
        if typ.startswith("float"):
            return float(raw)
        return str(raw)
    except ValueError:
        kind = ("true/false" if "bool" in typ else "integer" if typ.startswith("int")
                else "number" if typ.startswith("float") else "text")
        raise InputError(
            f"setting {name} = {raw!r} is not a valid {kind}",
            hint=f"fix it in the config file or in {ENV_PREFIX}{name.upper()}",
        ) from None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the TOML ``config_file`` (or ``GRIDPATROL_CONFIG``), then env vars.

    Keyword ``overrides`` (from command-line options) win over everything. Unknown keys in the
    file are an error, so typos do not pass silently. In production a secret key is required;
    otherwise a random one is generated (tokens then die with the process group).
    """
    known = {f.name: str(f.type) for f in fields(Settings) if f.name != "extra"}
    values: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        p = Path(path)
        if not p.is_file():
            raise InputError(f"config file {p} does not exist", hint="pass an existing TOML file or unset GRIDPATROL_CONFIG")
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"config file is not valid TOML: {exc}", where=str(p)) from None
        data = data.get("gridpatrol", data)
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InputError(
                f"unknown settings {', '.join(unknown)}", where=str(p), hint="known: " + ", ".join(sorted(known))
            )
        for k, v in data.items():
            values[k] = _coerce(k, v, known[k])
    for k, typ in known.items():
        env = os.environ.get(ENV_PREFIX + k.upper())
        if env is not None:
            values[k] = _coerce(k, env, typ)
    for k, v in overrides.items():
        if v is not None:
            values[k] = _coerce(k, v, known[k]) if k in known else v
    settings = replace(Settings(), **values)
    if settings.tile_crs not in ("wgs84", "gcj02"):
        raise InputError(f"tile_crs must be wgs84 or gcj02, not {settings.tile_crs!r}")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(settings.timezone)
    except (ValueError, KeyError, OSError):
        raise InputError(f"timezone {settings.timezone!r} is not an IANA time zone",
                         hint="e.g. Asia/Shanghai, Asia/Urumqi") from None
    if settings.pg_async_pool < 1:
        raise InputError("pg_async_pool must be at least 1")
    if settings.ogc_max_limit < 1 or settings.ogc_default_limit < 1:
        raise InputError("ogc_max_limit and ogc_default_limit must be positive")
    if not settings.secret_key:
        if settings.production:
            raise InputError(
                "production mode needs a secret key for access tokens",
                hint=f"set {ENV_PREFIX}SECRET_KEY (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
            )
        settings = replace(settings, secret_key=secrets.token_urlsafe(48))
    else:
        check_secret_key(settings.secret_key)
    for name in ("login_max_failures_per_user", "login_max_failures_per_address", "login_window_s",
                 "login_lockout_s", "login_lockout_max_s"):
        if getattr(settings, name) < 1:
            raise InputError(f"{name} must be at least 1", hint=f"fix it in the config file or {ENV_PREFIX}{name.upper()}")
    return settings


# Values from examples and templates that people paste unchanged; a key containing one is no key.
PLACEHOLDER_KEYS = ("changeme", "change-me", "change_me", "secret", "password", "example", "placeholder",
                    "your-key", "yourkey", "your_key", "insecure", "default", "0123456789", "abcdef", "qwerty")
MIN_KEY_CHARS = 32
MIN_KEY_DISTINCT = 16


def check_secret_key(key: str) -> None:
    """Raise InputError unless ``key`` is long and varied enough to sign access tokens.

    Refused: fewer than 32 characters, fewer than 16 distinct characters (one letter repeated,
    ``abab…``), or a known placeholder (``changeme``, ``secret``, ``0123456789``, …) inside it.
    """
    hint = (f"set {ENV_PREFIX}SECRET_KEY to a random value, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`")
    if len(key) < MIN_KEY_CHARS:
        raise InputError(f"secret_key must be at least {MIN_KEY_CHARS} characters", hint=hint)
    distinct = len(set(key))
    if distinct < MIN_KEY_DISTINCT:
        raise InputError(f"secret_key is not a key: it has only {distinct} distinct characters "
                         f"(at least {MIN_KEY_DISTINCT} needed)", hint=hint)
    lowered = key.lower()
    for word in PLACEHOLDER_KEYS:
        if word in lowered:
            raise InputError(f"secret_key contains the placeholder {word!r}: it is an example value, not a key",
                             hint=hint)
