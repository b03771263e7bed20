"""CLI commands of the service: ``create-user``, ``user``, ``set-password``, ``users`` and ``serve``."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer
from gridpatrol.gis.errors import InputError


def _read_password(password_file: Path | None, name: str, generate: bool) -> tuple[str, bool]:
    """The password from a file, generated, or from a hidden prompt; (password, was_generated)."""
    if password_file is not None and generate:
        raise InputError("give either --password-file or --generate-password, not both")
    if generate:
        return secrets.token_urlsafe(12), True
    if password_file is not None:
        if not password_file.is_file():
            raise InputError(f"password file {password_file} does not exist")
        lines = password_file.read_text(encoding="utf-8").splitlines()
        if not lines or not lines[0]:
            raise InputError(f"password file {password_file} is empty", hint="put the password on its first line")
        return lines[0], False
    from gridpatrol.scripts.cli_texts import t

    pw = typer.prompt(t("password_prompt", name=name), hide_input=True, confirmation_prompt=True)
    return pw, False


def _show_one_time(password: str) -> None:
    """Print a generated password, the one time it is shown."""
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import console

    console.print(t("one_time", pw=password))


def _actor() -> str:
    """Who runs the command, for the audit log: the login name, else ``cli``."""
    return os.environ.get("USER", "cli")


# The password options of create-user, set-password and user (without either, create-user and set-password
# ask for it; user leaves it as it is).
PasswordFileOption = Annotated[Optional[Path], typer.Option(help="Read the password from the first line of this file")]
GeneratePasswordOption = Annotated[
    bool, typer.Option("--generate-password", help="Make a random password and print it once")
]

app = typer.Typer()


@app.command("create-user")
def create_user_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name (1–64 characters)")],
    role: Annotated[str, typer.Option(help="admin | planner | dispatcher | worker | viewer")],
    password_file: PasswordFileOption = None,
    generate_password: GeneratePasswordOption = False,
    max_secrecy: Annotated[
        Optional[int], typer.Option(help="Highest camera secrecy level the user may see (default: 9 admin, 0 others)")
    ] = None,
) -> None:
    """Create a user of the service with one role (passwords are stored argon2-hashed)."""
    from gridpatrol.layers.users import ROLES, create_user
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import cli_store, console

    if role not in ROLES:
        raise InputError(f"unknown role {role!r}", hint="roles: " + ", ".join(ROLES))
    password, generated = _read_password(password_file, name, generate_password)
    with cli_store(ctx) as store:
        user = create_user(store, name, role, password, max_secrecy_level=max_secrecy, actor=_actor())
    console.print(t("created_user", name=user.name, role=user.role, level=user.max_secrecy_level))
    if generated:
        _show_one_time(password)


@app.command("set-password")
def set_password_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name")],
    password_file: PasswordFileOption = None,
) -> None:
    """Replace a user's password; the tokens issued before stop working (running servers: within 5 s)."""
    from gridpatrol.layers.users import set_password
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import cli_store, console

    password, _ = _read_password(password_file, name, False)
    with cli_store(ctx) as store:
        set_password(store, name, password, actor=_actor())
    console.print(t("password_changed", name=name))


@app.command("user")
def user_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="User name")],
    role: Annotated[Optional[str], typer.Option(help="New role: admin | planner | dispatcher | worker | viewer")] = None,
    max_secrecy: Annotated[
        Optional[int], typer.Option(help="Highest camera secrecy level the user may see (0–9)")
    ] = None,
    enable: Annotated[
        Optional[bool], typer.Option("--enable/--disable",
                                     help="Reactivate / deactivate the user (either way its tokens stop working)")
    ] = None,
    password_file: PasswordFileOption = None,
    generate_password: GeneratePasswordOption = False,
    revoke_tokens: Annotated[
        bool, typer.Option("--revoke-tokens", help="Revoke every token of the user issued so far (log out everywhere)")
    ] = False,
) -> None:
    """Change a user: role, secrecy level, deactivate/reactivate, reset the password, revoke tokens.

    A password reset, --disable, --enable and --revoke-tokens revoke the user's tokens issued before.
    Deactivating or demoting the last active admin is refused. Running servers apply the change within 5 s (their user cache).
    """
    from gridpatrol.layers.users import update_user
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import cli_store, print_table

    password, generated = (None, False)
    if password_file is not None or generate_password:
        password, generated = _read_password(password_file, name, generate_password)
    with cli_store(ctx, create=False) as store:
        row = update_user(store, name, role=role, max_secrecy_level=max_secrecy, active=enable, password=password,
                          revoke_tokens=revoke_tokens, actor=_actor())
    print_table([row], title=t("user_changed", name=name))
    if generated:
        _show_one_time(password)


@app.command("users")
def users_cmd(ctx: typer.Context) -> None:
    """List the users of the service."""
    from gridpatrol.layers.users import list_users
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import cli_store, print_table

    with cli_store(ctx) as store:
        print_table(list_users(store), title=t("users"))


@app.command("serve")
def serve_cmd(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for the whole intranet)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes")] = 1,
    config: Annotated[Optional[Path], typer.Option(help="TOML settings file (else GRIDPATROL_CONFIG)")] = None,
) -> None:
    """Serve the API, OGC API – Features and the map pages (uvicorn)."""
    from gridpatrol.scripts.cliutil import cli_options

    serve(cli_options(ctx).db, host=host, port=port, workers=workers, config=config)


def check_replica(settings, store) -> None:  # noqa: ANN001
    """Refuse a ``replica_db`` that cannot serve this store's reads: a GeoPackage store, a URL that
    does not answer, or a database without the store's tables (another database or search path);
    warn when it answers but is not a standby (reads still work, they just do not offload the store)."""
    if not settings.replica_db:
        return
    from gridpatrol.api.app import read_dsn
    from gridpatrol.gis.errors import StoreError
    from gridpatrol.layers.store import db_error_line, hide_password
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import err_console

    dsn = read_dsn(settings, store)
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            standby = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            has = conn.execute("SELECT to_regclass('gp_schema_version') IS NOT NULL AND to_regclass('cameras') IS NOT NULL"
                               ).fetchone()[0]
    except psycopg.Error as exc:
        raise StoreError(f"the replica {hide_password(settings.replica_db)} does not answer: "
                         f"{db_error_line(exc, dsn)}", where="replica_db") from None
    if not has:
        raise StoreError("the replica (replica_db) does not hold this store's tables: another database or search path?",
                         where="replica_db", hint="use the replica of the store's database, with the same options=-csearch_path")
    if not standby:
        err_console.print(f"[yellow]{t('replica_not_standby')}[/]")


def serve(db: str | None, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          config: Path | None = None) -> None:
    """Run the service for store ``db`` (None: settings/GRIDPATROL_DB) until interrupted.

    Used by ``gridpatrol serve`` and ``gridpatrol demo``. Settings are checked and the store is
    created/migrated once here, before the uvicorn workers start; the workers get the store URL
    and one token key through the environment.
    """
    import uvicorn
    from gridpatrol.api.config import load_settings
    from gridpatrol.api.logs import uvicorn_log_config
    from gridpatrol.api.static_assets import check_vendor
    from gridpatrol.layers.store import open_store, resolve_url
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import err_console

    if config is not None:
        os.environ["GRIDPATROL_CONFIG"] = str(config)
    settings = load_settings()  # fail here, with the message, not in every worker
    url = resolve_url(db or settings.db)
    os.environ["GRIDPATROL_DB"] = url
    store = open_store(url)
    try:
        check_replica(settings, store)
    finally:
        store.dispose()
    if not os.environ.get("GRIDPATROL_SECRET_KEY") and not settings.production:
        # All workers must sign and check tokens with the same key; tokens end with the server.
        os.environ["GRIDPATROL_SECRET_KEY"] = settings.secret_key
        err_console.print(f"[yellow]{t('no_secret_key')}[/]")
    check_vendor()
    err_console.print(t("serving", url=url.split("?")[0], host=host, port=port))
    uvicorn.run(
        "gridpatrol.api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
        log_config=uvicorn_log_config(settings.log_level), access_log=False, proxy_headers=False,
    )
