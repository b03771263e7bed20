"""Reading generated files as their reader does, for the language tests: the text of a PDF (poppler) and of an
XLSX (openpyxl), and the Chinese left once proper names are taken out."""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

from tests.conftest import missing_dependency

# Chinese characters and full-width punctuation (，：（）、；).
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def leftover_chinese(text: str, names: list[str]) -> list[str]:
    """The Chinese left in ``text`` once the proper names are taken out (longest first). A street name written
    along a steep street comes out of pdftotext one character a line: Chinese split by white space is joined first."""
    text = re.sub(rf"(?<={CJK.pattern})\s+(?={CJK.pattern})", "", text)
    for n in sorted(names, key=len, reverse=True):
        text = text.replace(n, " ")
    return CJK.findall(text)


def pdf_text(pdf: bytes | Path, tmp_path: Path, name: str = "file.pdf") -> str:
    """pdftotext -raw of a PDF given as bytes or a path."""
    if not shutil.which("pdftotext"):
        missing_dependency("pdftotext (poppler-utils) is not installed")
    if isinstance(pdf, bytes):
        (tmp_path / name).write_bytes(pdf)
        pdf = tmp_path / name
    return subprocess.run(["pdftotext", "-raw", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def xlsx_texts(data: bytes | Path) -> tuple[list[str], list[str]]:
    """(sheet names, every text cell of every sheet in order) of an XLSX."""
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(data) if isinstance(data, bytes) else data)
    cells = [c.value for ws in wb.worksheets for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    return wb.sheetnames, cells


def english_only(cells: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    """Texts of a Chinese file with an English word and no Chinese (names, codes, times and zones aside)."""
    return [c for c in cells if re.search(r"[A-Za-z]{3,}", c) and not CJK.search(c) and c not in allowed]
