"""Reading the first rows of a data file for previews, and showing rows in a table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from PySide6.QtWidgets import QTableWidget

from desktop.widgets.tables import fill_table
from engine.library.readers import Example

PREVIEW_ROWS = 50
DATASET_FILTER = "Datasets (*.jsonl *.json *.csv *.tsv);;All files (*)"
TABLE_FILTER = "Tables (*.csv *.tsv *.jsonl);;All files (*)"


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() == ".tsv" else ","


def table_columns(path: Path) -> list[str]:
    """Header names of a CSV/TSV file, field names of a JSONL file's first object ([] when
    unreadable or another format)."""
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            with path.open(newline="", encoding="utf-8") as fh:
                return next(csv.reader(fh, delimiter=_delimiter(path)))
        if suffix == ".jsonl":
            with path.open(encoding="utf-8") as fh:
                first = next((line for line in fh if line.strip()), "")
            obj = json.loads(first) if first else {}
            return [k for k, v in obj.items() if isinstance(v, str)] \
                if isinstance(obj, dict) else []
    except (OSError, StopIteration, UnicodeDecodeError, csv.Error, ValueError):
        return []
    return []


def preview_rows(path: Path, limit: int) -> tuple[list[str], list[list[str]]]:
    """Header and first ``limit`` rows of a CSV/TSV/JSONL file (OSError/ValueError when
    unreadable)."""
    if path.suffix.lower() == ".jsonl":
        columns = table_columns(path)
        rows = []
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if len(rows) >= limit:
                    break
                if line.strip():
                    obj = json.loads(line)
                    rows.append([str(obj.get(c, "")) for c in columns])
        return columns, rows
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter=_delimiter(path))
        header = next(reader, [])
        return header, [row for _, row in zip(range(limit), reader, strict=False)]


def fill_examples(table: QTableWidget, examples: list[Example], limit: int = PREVIEW_ROWS) -> None:
    """Show the first ``limit`` examples in a two-column input/output table."""
    fill_table(table, ["input", "output"],
               [[ex.input, ex.output] for ex in examples[:limit]], max_width=380)
