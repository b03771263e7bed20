"""CLI commands for trust in the store: ``audit`` (list, ``--verify`` the hash chain), ``backup`` and ``restore``."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer()


@app.command("audit")
def audit_cmd(
    ctx: typer.Context,
    verify: Annotated[bool, typer.Option("--verify", help="Check the hash chain of every entry, oldest first")] = False,
    limit: Annotated[int, typer.Option(min=1, help="Entries to list, newest first")] = 50,
) -> None:
    """List the audit log, or verify its hash chain (exit 0: intact; else the first bad entry id)."""
    from gridpatrol.layers import audit
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import console, open_cli_store, print_table

    store = open_cli_store(ctx, create=False)
    try:
        if verify:
            report = audit.verify(store)  # AuditChainBroken: exit 7 with the entry id
            console.print(t("audit_intact", n=report.entries, hash=report.head_hash))
            return
        rows = audit.read_audit(store, limit=limit)
    finally:
        store.dispose()
    print_table([{"id": r["id"], "at": r["at"], "actor": r["actor"], "actor_id": r["actor_id"],
                  "action": r["action"], "target": r["target"],
                  "detail": json.dumps(r["detail"], ensure_ascii=False)[:120]} for r in rows], title=t("audit log"))


@app.command("backup")
def backup_cmd(ctx: typer.Context, path: Annotated[Path, typer.Argument(help="Backup file to write (GeoPackage: .gpkg; PostGIS: .dump)")]) -> None:
    """Write a consistent backup of the store, also while the server runs (GeoPackage: SQLite online
    backup; PostGIS: pg_dump custom format of the store's schema)."""
    from gridpatrol.layers.backup import backup
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import console, open_cli_store

    store = open_cli_store(ctx, create=False)
    try:
        info = backup(store, path)
    finally:
        store.dispose()
    console.print(t("backup_written", url=store.display_url(), path=info.path, size=info.size_bytes,
                    version=info.schema_version))


@app.command("restore")
def restore_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="Backup file made by `gridpatrol backup`")],
    force: Annotated[bool, typer.Option("--force", help="Replace a store that holds data")] = False,
) -> None:
    """Restore a backup into the store (refused onto a store with data unless --force, and for a
    backup of a newer schema); an older backup is upgraded to the current schema."""
    from gridpatrol.layers.backup import restore
    from gridpatrol.scripts.cli_texts import t
    from gridpatrol.scripts.cliutil import cli_options, console

    info = restore(cli_options(ctx).db, path, force=force)
    console.print(t("restored", path=info.path, version=info.schema_version))
