"""The ``gridpatrol`` command's skeleton: every topic module's commands reach the top level once, and
--db reaches the commands however the CLI is started."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

GRIDPATROL = str(Path(sys.executable).with_name("gridpatrol"))


def test_every_topic_command_is_reachable_once():
    """A command name defined twice would silently shadow the first (typer merges nameless sub-apps)."""
    from gridpatrol.scripts import cli

    names = [c.name for c in cli.app.registered_commands]
    for group in cli.app.registered_groups:
        names += [c.name for c in group.typer_instance.registered_commands]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    top = typer.main.get_command(cli.app)
    assert sorted(top.commands) == sorted(names)  # merged into the top level, none nested
    assert {"import-osm", "draw-grids", "plan-routes", "lookup", "serve", "demo", "restore"} <= set(names)


@pytest.mark.parametrize("start", [[GRIDPATROL], [sys.executable, "-m", "gridpatrol.scripts.cli"]],
                         ids=["entry-point", "python-m"])
@pytest.mark.parametrize("args", [["info"], ["backup", "out.gpkg"], ["users"]], ids=lambda a: a[0])
def test_db_option_reaches_commands(start, args, tmp_path):
    """--db given to the top command is the store every command opens (no module-level copy of it)."""
    missing = tmp_path / "no-such-dir" / "store.gpkg"
    p = subprocess.run([*start, "--db", str(missing), *args], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert p.returncode != 0
    err = " ".join(p.stderr.split())
    assert str(missing) in err.replace("\n", ""), p.stderr
    assert not (tmp_path / "gridpatrol.gpkg").exists()  # never the default store
