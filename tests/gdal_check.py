"""GDAL as a GIS client sees files and services: every layer read, every GDAL message caught."""
from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyogrio


@contextmanager
def gdal_silent() -> Iterator[list[str]]:
    """Fail if GDAL says anything while the block runs.

    pyogrio's GDAL error handler turns CPLE warnings into Python RuntimeWarnings and logs other
    messages on its loggers; both are captured here and must stay empty."""
    said: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                said.append(record.getMessage())

    handler = _Catch()
    log = logging.getLogger("pyogrio")
    log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield said
        said += [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    finally:
        log.removeHandler(handler)
    assert not said, f"GDAL warned: {said[:5]}"


def read_every_table(path: Path | str) -> dict[str, object]:
    """Every table of the GeoPackage ``path`` (spatial layers and attribute tables) as GDAL reads
    it, asserting that GDAL warns about nothing."""
    out = {}
    with gdal_silent():
        for name, _ in pyogrio.list_layers(path):
            out[name] = pyogrio.read_dataframe(path, layer=name)
    return out
