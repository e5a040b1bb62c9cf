"""Batch apply: run one or more tasks over a column of a CSV, TSV or JSONL file.

Every row keeps its columns and gains one column per task (classify tasks also get
``TASK_probability``). Rows of all tasks go through the runtime as mixed-task batches. Work is
appended to ``OUT.partial`` in complete batches; after each batch the file is fsynced and a
small state file records how many rows and bytes are complete, so a re-run after a kill cuts
the partial file back to the last complete row and continues. The output appears at its name
only when whole (atomic rename).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PromptbankError
from engine.library.readers import jsonl_records
from engine.support.fileio import atomic_write_bytes, sha256_file

FORMATS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
BATCH = 16
MAX_NEW_TOKENS = 64
#: Progress callback: (rows done, rows in all, rows per second, seconds left or None).
OnProgress = Callable[[int, int, float, float | None], None]


@dataclass
class Table:
    """The rows of an input file and its column names."""

    columns: list[str]
    rows: list[dict]
    format: str


@dataclass
class ApplyResult:
    """What an apply run did; ``complete`` is False when it was stopped (resumable)."""

    out_path: str
    rows: int
    done: int
    resumed_from: int
    truncated: int
    complete: bool
    columns: list[str]

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def file_format(path: Path) -> str:
    """csv, tsv or jsonl from a file name; anything else is refused."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise PromptbankError(f"{path.name} is not a .csv, .tsv or .jsonl file.",
                              hint="Use one of those formats.")
    return kind


def read_table(path: Path | str) -> Table:
    """Read a whole CSV/TSV (with a header row) or JSONL file, refusing non-UTF-8 text."""
    path = Path(path)
    kind = file_format(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise PromptbankError(f"The input file {path} does not exist.",
                              hint="Check the path.") from exc
    except UnicodeDecodeError as exc:
        raise PromptbankError(f"{path.name} is not UTF-8 text.",
                              hint="Save the file as UTF-8 and try again.") from exc
    if kind == "jsonl":
        rows = [record for _, record in jsonl_records(text, path.name)]
        columns = list(dict.fromkeys(k for r in rows for k in r))
        return Table(columns, rows, kind)
    reader = csv.DictReader(io.StringIO(text, newline=""),
                            delimiter="\t" if kind == "tsv" else ",")
    rows = list(reader)
    return Table(list(reader.fieldnames or []), rows, kind)


def _texts(table: Table, column: str, path: Path) -> list[str]:
    if column not in table.columns:
        raise PromptbankError(f"{path.name} has no column '{column}'.",
                              hint=f"Its columns are: {', '.join(table.columns) or 'none'}.")
    if not table.rows:
        raise PromptbankError(f"{path.name} has no rows.", hint="Give a file with some rows.")
    texts = []
    for number, row in enumerate(table.rows, start=1):
        value = row.get(column)
        if not isinstance(value, str) or not value.strip():
            raise PromptbankError(f"Row {number} of {path.name} has an empty '{column}' value.",
                                  hint="Fill or remove the empty rows and try again.")
        texts.append(value)
    return texts


def _output_columns(runtime, tasks: list[str], existing: list[str]) -> dict[str, list[str]]:
    """Each task's new column names, made distinct from the input's."""
    out: dict[str, list[str]] = {}
    taken = set(existing)
    for task in tasks:
        wanted = [task] + ([f"{task}_probability"]
                           if runtime.bank.spec(task).kind == "classify" else [])
        names = []
        for name in wanted:
            while name in taken:
                name += "_out"
            taken.add(name)
            names.append(name)
        out[task] = names
    return out


def _encode(rows: list[dict], columns: list[str], kind: str) -> bytes:
    if kind == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter="\t" if kind == "tsv" else ",",
                            lineterminator="\n", extrasaction="ignore")
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _header(columns: list[str], kind: str) -> bytes:
    if kind == "jsonl":
        return b""
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t" if kind == "tsv" else ",",
               lineterminator="\n").writerow(columns)
    return buffer.getvalue().encode()


class _Partial:
    """The ``.partial`` output and its state file: complete rows only, resumable."""

    def __init__(self, out_path: Path, signature: dict) -> None:
        self.path = out_path.with_name(out_path.name + ".partial")
        self.state = out_path.with_name(out_path.name + ".partial.json")
        self.signature = signature

    def open(self, header: bytes) -> int:
        """Open for appending; return how many rows are already complete."""
        done, size = self._resume_point()
        if done == 0:
            self.path.write_bytes(header)
            size = len(header)
            self._save(0, size)
        self.fh = self.path.open("r+b")
        self.fh.truncate(size)  # drop anything written after the last complete batch
        self.fh.seek(size)
        return done

    def _resume_point(self) -> tuple[int, int]:
        try:
            state = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return 0, 0
        if state.get("signature") != self.signature or not self.path.is_file():
            return 0, 0
        if self.path.stat().st_size < state.get("bytes", 0):
            return 0, 0
        return int(state.get("rows", 0)), int(state.get("bytes", 0))

    def append(self, data: bytes, rows: int) -> None:
        self.fh.write(data)
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self._save(rows, self.fh.tell())

    def _save(self, rows: int, size: int) -> None:
        atomic_write_bytes(self.state, json.dumps(
            {"signature": self.signature, "rows": rows, "bytes": size}).encode())

    def close(self) -> None:
        self.fh.close()

    def finish(self, out_path: Path) -> None:
        os.replace(self.path, out_path)
        self.state.unlink(missing_ok=True)


def apply_file(runtime, tasks: list[str], in_path: Path | str, column: str,
               out_path: Path | str, *, overwrite: bool = False,
               on_progress: OnProgress | None = None,
               should_stop: Callable[[], bool] | None = None, batch_size: int = BATCH,
               max_new_tokens: int = MAX_NEW_TOKENS) -> ApplyResult:
    """Apply ``tasks`` to ``column`` of ``in_path`` and write ``out_path`` (see module doc)."""
    in_path, out_path = Path(in_path), Path(out_path)
    if not tasks:
        raise PromptbankError("No task to apply.", hint="Name at least one task.")
    if len(set(tasks)) != len(tasks):
        raise PromptbankError("A task is named twice.", hint="Name each task once.")
    out_kind = file_format(out_path)
    if out_path.exists() and not overwrite:
        raise PromptbankError(f"The output file {out_path} already exists.",
                              hint="Choose another name or pass --overwrite.")
    if out_path.resolve() == in_path.resolve():
        raise PromptbankError("The output file is the input file.",
                              hint="Write the results to a new file.")
    table = read_table(in_path)
    texts = _texts(table, column, in_path)
    # Pin each task's version now, so a version activated mid-run does not mix into the file.
    versions = {t: runtime.bank.resolve(t).number for t in tasks}
    names = _output_columns(runtime, tasks, table.columns)
    columns = table.columns + [n for t in tasks for n in names[t]]
    signature = {"input": sha256_file(in_path), "column": column, "format": out_kind,
                 "tasks": [[t, versions[t]] for t in tasks],
                 "max_new_tokens": max_new_tokens}
    partial = _Partial(out_path, signature)
    done = start = partial.open(_header(columns, out_kind))
    truncated = 0
    began = time.perf_counter()
    try:
        while done < len(texts):
            if should_stop is not None and should_stop():
                return ApplyResult(str(out_path), len(texts), done, start, truncated, False,
                                   columns)
            stop = min(done + batch_size, len(texts))
            outputs, cut = _run_batch(runtime, versions, names, texts[done:stop],
                                      max_new_tokens)
            truncated += cut
            rows = [{**table.rows[i], **outputs[i - done]} for i in range(done, stop)]
            partial.append(_encode(rows, columns, out_kind), stop)
            done = stop
            if on_progress is not None:
                rate = (done - start) / max(time.perf_counter() - began, 1e-9)
                on_progress(done, len(texts), rate, (len(texts) - done) / rate if rate else None)
    finally:
        partial.close()
    partial.finish(out_path)
    return ApplyResult(str(out_path), len(texts), done, start, truncated, True, columns)


def _run_batch(runtime, versions: dict[str, int], names: dict[str, list[str]],
               texts: list[str], max_new_tokens: int) -> tuple[list[dict], int]:
    """Every task on every text of one batch: one mixed generate call, one mixed scoring call."""
    from engine.serving.runtime import GenRow

    out: list[dict] = [{} for _ in texts]
    truncated = [False] * len(texts)
    tasks = list(versions)
    kinds = {t: runtime.bank.spec(t).kind for t in tasks}
    generate = [(i, t) for t in tasks if kinds[t] != "classify" for i in range(len(texts))]
    classify = [(i, t) for t in tasks if kinds[t] == "classify" for i in range(len(texts))]
    if generate:
        rows = [GenRow(texts[i], t, versions[t], max_new_tokens=max_new_tokens)
                for i, t in generate]
        for (i, t), result in zip(generate, runtime.generate(rows), strict=True):
            out[i][names[t][0]] = result.text.strip()
            truncated[i] |= result.truncated
    if classify:
        scored = runtime.score_rows([(t, texts[i]) for i, t in classify], versions=versions)
        for (i, t), result in zip(classify, scored, strict=True):
            out[i][names[t][0]] = result.label
            out[i][names[t][1]] = round(result.probs[result.label], 4)
            truncated[i] |= result.truncated
    return out, sum(truncated)
