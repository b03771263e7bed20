"""Service settings, in one place (pydantic-settings): defaults, then a TOML config file, then GRIDPATROL_* env vars."""
from __future__ import annotations

import os
import secrets
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from gridpatrol.gis.errors import InputError
from gridpatrol.layers.logins import LoginLimits
from gridpatrol.layers.time_zones import DEFAULT_ZONE, ZoneName
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIX = "GRIDPATROL_"
# The values read from the config file for the Settings being built (see load_settings).
_FILE_VALUES: ContextVar[dict[str, Any]] = ContextVar("gridpatrol_settings_file", default={})


class Settings(BaseSettings):
    """Everything the service can be configured with.

    Every field ``x`` can be set as ``x = …`` in the config file (``GRIDPATROL_CONFIG`` or
    ``--config``) and overridden by the environment variable ``GRIDPATROL_X``.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    db: str | None = None  # store URL; None → GRIDPATROL_DB or ./gridpatrol.gpkg
    production: bool = False  # refuse generated secrets and default passwords
    secret_key: str = ""  # signs access tokens; required in production
    token_ttl_s: int = 8 * 3600
    # Without a token, requests act as a viewer (public layers only); off in production.
    anonymous_read: bool | None = None
    max_body_bytes: int = 5 * 1024 * 1024
    ogc_default_limit: int = Field(100, ge=1)
    ogc_max_limit: int = Field(10_000, ge=1)
    lookup_radius_m: float = 200.0  # map click: incidents within 200 m …
    lookup_incident_days: int = 90  # … in the last 90 days (as the CLI lookup)
    # PostGIS connections per worker process for the map click's asyncio path (the rest of the
    # API uses the SQLAlchemy pool of the store).
    pg_async_pool: int = Field(8, ge=1)
    # A streaming replica of the PostGIS store (its URL, same database and search path): the map click
    # and the OGC item pages read from it, everything else (logins, writes, jobs) from the store.
    # Its answers lag the store by the replication delay (docs/province.md).
    replica_db: str | None = None
    # Optional online/intranet basemap: a Leaflet tile URL template, its attribution, and the
    # datum of its tiles (gcj02 for most Chinese web maps: our layers are shifted to match).
    tile_url: str | None = None
    tile_attribution: str = ""
    tile_crs: Literal["wgs84", "gcj02"] = "wgs84"
    # The county's time zone: pages show times in it (stored times are UTC).
    timezone: ZoneName = DEFAULT_ZONE
    # Working hours (local, HH:MM-HH:MM): patrol tracks with fixes outside are flagged, not counted.
    work_hours: str = "07:00-21:00"
    # Failed logins (see layers/logins.py): over max failures within the window, the account or
    # client address is locked for lockout_s, doubling with every further lockout up to lockout_max_s.
    login_max_failures_per_user: int = Field(5, ge=1)
    login_max_failures_per_address: int = Field(20, ge=1)
    login_window_s: int = Field(15 * 60, ge=1)
    login_lockout_s: int = Field(15 * 60, ge=1)
    login_lockout_max_s: int = Field(24 * 3600, ge=1)
    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("replica_db")
    @classmethod
    def _replica_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
            raise ValueError("must be a PostgreSQL URL (postgresql+psycopg://user@host/db), a replica of the store")
        return value or None

    @field_validator("work_hours")
    @classmethod
    def _work_hours(cls, value: str) -> str:
        from gridpatrol.gis.errors import InputError
        from gridpatrol.gis.tracks import format_work_hours, parse_work_hours

        try:
            return format_work_hours(parse_work_hours(value, where="work_hours"))
        except InputError as exc:
            raise ValueError(exc.message) from None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        """Command-line overrides win over environment variables, which win over the config file."""
        return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=_FILE_VALUES.get())

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


def _config_file_values(config_file: str | Path | None) -> dict[str, Any]:
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file {p} does not exist", hint="pass an existing TOML file or unset GRIDPATROL_CONFIG")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"config file is not valid TOML: {exc}", where=str(p)) from None
    data = data.get("gridpatrol", data)
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise InputError(f"unknown settings {', '.join(unknown)}", where=str(p),
                         hint="known: " + ", ".join(sorted(Settings.model_fields)))
    return data


def _settings_error(exc: ValidationError) -> InputError:
    """The first problem of a ValidationError as a message naming the setting and where to fix it."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err.get("loc") else "settings"
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    return InputError(f"setting {name} = {err.get('input')!r}: {msg}",
                      hint=f"fix it in the config file or in {ENV_PREFIX}{name.upper()}")


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Settings from defaults, the TOML ``config_file`` (or ``GRIDPATROL_CONFIG``), then env vars.

    Keyword ``overrides`` (from command-line options) win over everything. Unknown keys in the
    file are an error, so typos do not pass silently. In production a secret key is required;
    otherwise a random one is generated (tokens then die with the process group).
    """
    token = _FILE_VALUES.set(_config_file_values(config_file))
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise _settings_error(exc) from None
    finally:
        _FILE_VALUES.reset(token)
    if not settings.secret_key:
        if settings.production:
            raise InputError(
                "production mode needs a secret key for access tokens",
                hint=f"set {ENV_PREFIX}SECRET_KEY (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)",
            )
        settings = settings.model_copy(update={"secret_key": secrets.token_urlsafe(48)})
    else:
        check_secret_key(settings.secret_key)
    return settings


def configured_timezone(config_file: str | Path | None = None) -> str:
    """The county's time zone as the service is configured (the TOML ``config_file`` or ``GRIDPATROL_CONFIG``, then
    ``GRIDPATROL_TIMEZONE``; default Asia/Shanghai), for commands that need the zone and not the service's secrets."""
    token = _FILE_VALUES.set(_config_file_values(config_file))
    try:
        return Settings().timezone
    except ValidationError as exc:
        raise _settings_error(exc) from None
    finally:
        _FILE_VALUES.reset(token)


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
