"""What every ``scripts/cmd_<topic>.py`` shares: the options in the typer context, consoles, progress, tables."""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from gridpatrol.scripts.cli_texts import current_lang, heading, set_lang, t
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from gridpatrol.layers.store import Store

console = Console()
if not console.is_terminal:
    # Piped or captured output: rich would cut tables at 80 columns; scripts want whole values.
    console = Console(width=200)
err_console = Console(stderr=True)


# Options the import commands share, defined once.
SkipBadOption = Annotated[bool, typer.Option(help="Import the good rows and list the bad ones (default: refuse the file)")]
EncodingOption = Annotated[
    Optional[str], typer.Option(help="Text encoding of a CSV file (default: UTF-8, else GB18030), e.g. big5")
]


@dataclass(frozen=True)
class CliOptions:
    """The options of the ``gridpatrol`` command itself, kept in the typer context (``ctx.obj``)."""

    db: str | None = None  # --db / GRIDPATROL_DB; None: the default ./gridpatrol.gpkg
    lang: str = "zh"  # --lang / GRIDPATROL_LANG: the language of what the commands print (zh or en)

    def open_store(self, create: bool = True) -> Store:
        """Open the store chosen by --db (``create=False``: a missing GeoPackage is an error)."""
        from gridpatrol.layers.store import open_store

        return open_store(self.db, create=create)


def cli_options(ctx: typer.Context) -> CliOptions:
    """The ``gridpatrol`` options of the running command (defaults when a sub-app runs on its own)."""
    return ctx.find_object(CliOptions) or CliOptions()


def command_lang(ctx: typer.Context, lang: str | None) -> str:
    """The language of the running command: its own ``--lang`` when given, else ``gridpatrol --lang`` /
    GRIDPATROL_LANG (default zh). Checked (InputError otherwise) and used for everything it prints."""
    chosen = lang if lang is not None else cli_options(ctx).lang
    set_lang(chosen)
    return current_lang()


def open_cli_store(ctx: typer.Context, create: bool = True) -> Store:
    """Open the store chosen by --db / GRIDPATROL_DB for the running command."""
    return cli_options(ctx).open_store(create=create)


@contextmanager
def cli_store(ctx: typer.Context, create: bool = True) -> Iterator[Store]:
    """:func:`open_cli_store` for a ``with`` block; its pooled connections are closed when the block ends."""
    store = open_cli_store(ctx, create=create)
    try:
        yield store
    finally:
        store.dispose()


def county_zone(tz: str | None) -> str:
    """The time zone a command writes times in: ``tz`` (--tz) when given and an IANA zone, else the county's as the
    service is configured (setting ``timezone``: config file, GRIDPATROL_TIMEZONE; default Asia/Shanghai)."""
    from gridpatrol.api.config import configured_timezone
    from gridpatrol.layers.time_zones import check_zone

    return check_zone(tz, where="--tz") if tz else configured_timezone()


@contextmanager
def progress_steps(title: str) -> Iterator[Callable[[str], None]]:
    """A spinner with the current step, on stderr, for long work."""
    quiet = not err_console.is_terminal
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                  console=err_console, transient=True, disable=quiet) as prog:
        task = prog.add_task(title)

        def step(msg: str) -> None:
            prog.update(task, description=f"{title}: {msg}")

        yield step


def model_options(model: type[BaseModel]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: the command's options for ``model``'s fields (type, default and help from the
    model), handed to the command as one checked instance in its ``params`` argument."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        own = [p.replace(annotation=eval(p.annotation, fn.__globals__) if isinstance(p.annotation, str) else p.annotation)
               for p in inspect.signature(fn).parameters.values() if p.name != "params"]
        derived = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                     annotation=Annotated[f.annotation, typer.Option(help=f.description)])
                   for name, f in model.model_fields.items()]

        @functools.wraps(fn)
        def command(**kwargs: object) -> None:
            values = {name: kwargs.pop(name) for name in model.model_fields}
            fn(params=model.parse(values), **kwargs)

        del command.__wrapped__  # typer must read the signature below, not fn's
        command.__signature__ = inspect.Signature(own + derived)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in own + derived}
        return command

    return wrap


def _cell(v) -> str:  # noqa: ANN001
    """A table cell: booleans in the CLI's language, floats to 12 significant digits, so sums of estimates read 94394.3, not 94394.29999999999."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return t(str(v))  # 是/否 in Chinese, True/False in English
    return format(v, ".12g") if isinstance(v, float) else str(v)


def print_table(rows: list[dict], title: str | None = None, translate: bool = True) -> None:
    """Print rows (dicts with the same keys) as a rich table; the keys are the column headings, in the CLI's
    language (cli_texts.heading) unless ``translate`` is False (headings already in the reader's language)."""
    if not rows:
        console.print(t("nothing"))
        return
    table = Table(title=title)
    for k in rows[0]:
        table.add_column(heading(k) if translate else str(k))
    for r in rows:
        table.add_row(*[_cell(v) for v in r.values()])
    console.print(table)


def print_import_problems(res, lists: dict[str, str], limit: int = 30) -> None:  # noqa: ANN001
    """Print an import's warnings and its dropped-row lists (``lists``: key in ``res.dropped`` → the cli_texts key
    of what they are)."""
    for w in res.warnings:
        err_console.print(f"[yellow]{t('warning:')}[/]{w}", highlight=False, soft_wrap=True)
    for key, what in lists.items():
        lines = res.dropped.get(key) or []
        if lines:
            err_console.print(f"[yellow]{t('n_what', n=len(lines), what=t(what))}[/]")
            for line in lines[:limit]:
                err_console.print(f"  {line}", highlight=False)
            if len(lines) > limit:
                err_console.print(f"  {t('and_more', n=len(lines) - limit)}")
