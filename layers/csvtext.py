"""Read CSV tables in the encoding they were saved in (UTF-8, GB18030, or what the user names), and
say which encoding to use when a Chinese spreadsheet was saved in another one (e.g. Big5)."""
from __future__ import annotations

import codecs
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from gridpatrol.gis.errors import InputError

# Tried in turn when no --encoding is given: Chinese spreadsheets are often exported as GBK/GB18030.
DEFAULT_ENCODINGS = ("utf-8-sig", "gb18030")
# Also scored when the file is not UTF-8, to name the right --encoding (GB18030 decodes any Big5
# bytes, into the wrong characters, so decoding alone cannot tell them apart).
OTHER_ENCODINGS = ("big5", "shift_jis", "euc-kr")
HINT = "pass --encoding NAME (e.g. --encoding big5), or save the file as UTF-8"


def _header_score(raw: bytes, encoding: str, known: set[str]) -> int:
    """How many cells of the first line, decoded as ``encoding``, are known column names (-1: undecodable)."""
    try:
        first = raw.decode(encoding).splitlines()[0] if raw else ""
    except (UnicodeDecodeError, IndexError):
        return -1
    return sum(c.strip().strip('"').strip().lower() in known for c in first.split(","))


def _check_encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputError(f"unknown text encoding {name!r}", hint="e.g. utf-8, gb18030, big5") from None


def decode_text(path: Path, *, encoding: str | None = None, known: Iterable[str] = ()) -> tuple[str, str]:
    """The text of the file at ``path`` and the encoding it was decoded with: ``encoding``, or else
    UTF-8 then GB18030 (``known``: column names, as for :func:`read_csv`)."""
    raw = path.read_bytes()
    known = {k.lower() for k in known}
    tried = (_check_encoding(encoding),) if encoding else DEFAULT_ENCODINGS
    for enc in tried:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as exc:
            last = exc
            continue
        if encoding is None and enc != "utf-8-sig" and known:
            ours = _header_score(raw, enc, known)
            better = max(OTHER_ENCODINGS, key=lambda e: _header_score(raw, e, known))
            if _header_score(raw, better, known) > ours:
                raise InputError(f"{path}: the text is not UTF-8; read as {enc.upper()} its header names "
                                 f"{ours} known column(s), read as {better} it names "
                                 f"{_header_score(raw, better, known)}: the file is probably {better}",
                                 hint=f"pass --encoding {better}, or save the file as UTF-8")
        return text, enc
    names = " or ".join(e.upper().replace("-SIG", "") for e in tried)
    raise InputError(f"{path}: the text cannot be decoded as {names} ({last.reason} at byte {last.start})",
                     hint=HINT)


def read_csv(path: Path, *, encoding: str | None = None, known: Iterable[str] = ()) -> pd.DataFrame:
    """The CSV at ``path`` as strings, decoded as ``encoding`` or else UTF-8 then GB18030.

    ``known``: column names the caller understands (lower case); a file that is not UTF-8 whose
    header names more of them when read as e.g. Big5 than as GB18030 is refused with the
    encoding to pass. ``df.attrs["encoding"]`` says which encoding was used.
    """
    _text, enc = decode_text(path, encoding=encoding, known=known)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc, skipinitialspace=True)
    except pd.errors.ParserError as exc:
        raise InputError(f"{path}: not a readable CSV file: {str(exc).splitlines()[0]}") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty") from None
    df.attrs["encoding"] = enc
    return df


def encoding_note(df: pd.DataFrame) -> str:
    """For a "columns missing" message: the encoding a non-UTF-8 table was read in, and what to do."""
    enc = df.attrs.get("encoding")
    if not enc or enc == "utf-8-sig":
        return ""
    return f" (the text was read as {enc.upper()}; if the header above looks garbled, pass --encoding)"
