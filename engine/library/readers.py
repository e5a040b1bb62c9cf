"""Dataset readers: JSONL (four layouts) and CSV/TSV, validated with file:line errors.

Torch-free, so the desktop can preview and validate files itself. Detected formats:
``input/output``, ``prompt/completion``, ``messages`` (OpenAI chat; the last assistant turn
is the output), ``alpaca`` (instruction, optional input, output), ``columns`` (JSONL with
chosen keys), ``csv`` and ``tsv`` (chosen or well-known columns).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.errors import PromptbankError
from engine.support import safe_json

MAX_BYTES = 1 << 30
JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
INPUT_COLUMNS = ("input", "text", "prompt", "sentence", "question", "source")
OUTPUT_COLUMNS = ("output", "label", "completion", "target", "answer", "response")
FORMAT_NAMES = {
    "input/output": "JSONL with input/output",
    "prompt/completion": "JSONL with prompt/completion",
    "messages": "JSONL chat messages (last assistant turn is the output)",
    "alpaca": "JSONL alpaca instruction/input/output",
    "columns": "JSONL with chosen keys",
    "csv": "CSV with a header row",
    "tsv": "TSV with a header row",
}


@dataclass(frozen=True)
class Example:
    """One training or evaluation example: the user's input text and the wanted output."""

    input: str
    output: str


def examples_sha256(examples: list[Example]) -> str:
    """A hash of examples' content, the same whichever file or split they came from: the one
    key under which evaluations on the same data line up."""
    payload = json.dumps([[e.input, e.output] for e in examples], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class ReadResult:
    """The examples of one file and the format that was detected."""

    examples: list[Example]
    format: str
    input_column: str | None = None
    output_column: str | None = None

    @property
    def description(self) -> str:
        """A human description of the detected format."""
        return FORMAT_NAMES.get(self.format, self.format)


def read_examples(path: Path | str, *, input_column: str | None = None,
                  output_column: str | None = None) -> ReadResult:
    """Read and validate a dataset file; a defect raises a PromptbankError naming file and line."""
    path = Path(path)
    return parse_examples(read_dataset_bytes(path), path.name, input_column=input_column,
                          output_column=output_column)


def read_dataset_bytes(path: Path | str) -> bytes:
    """A dataset file's bytes, or a clear error if it cannot be read."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise PromptbankError(f"{path.name} is larger than 1 GiB.",
                                  hint="Split it into smaller files.")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise PromptbankError(f"The dataset file {path} does not exist.",
                              hint="Check the path.") from exc
    except IsADirectoryError as exc:
        raise PromptbankError(f"{path} is a folder, not a dataset file.",
                              hint="Give a .jsonl, .csv or .tsv file.") from exc
    except OSError as exc:
        raise PromptbankError(f"The dataset file {path} could not be read ({exc.strerror}).",
                              hint="Check its permissions.") from exc


def parse_examples(data: bytes, name: str, *, input_column: str | None = None,
                   output_column: str | None = None) -> ReadResult:
    """Parse a dataset in memory; ``name`` (the file name) picks the format and labels errors."""
    if len(data) > MAX_BYTES:
        raise PromptbankError(f"{name} is larger than 1 GiB.", hint="Split it into smaller files.")
    text = _decode(data, name)
    if not text.strip():
        raise PromptbankError(f"{name} is empty.", hint="Give a file with at least one example.")
    kind = _detect_kind(text, name)
    if kind == "jsonl":
        return _read_jsonl(text, name, input_column, output_column)
    return _read_table(text, name, kind, input_column, output_column)


def _decode(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptbankError(f"{name} is not UTF-8 text (line {line}).",
                              hint="Save the file as UTF-8 and try again.") from exc


def _detect_kind(text: str, name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    if suffix in (".tsv", ".tab"):
        return "tsv"
    if suffix == ".csv":
        return "csv"
    if text.lstrip().startswith("{"):
        return "jsonl"
    first = text.lstrip("\n").split("\n", 1)[0]
    return "tsv" if "\t" in first else "csv"


def _scalar(value: object) -> str | None:
    """A JSON value usable as text (numbers and booleans become text, e.g. labels); NaN and
    infinities are not (they would train as the words "nan" and "inf")."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    return None


def _detect_jsonl_format(record: dict, name: str, line: int) -> str:
    keys = set(record)
    if "messages" in keys:
        return "messages"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt/completion"
    if {"input", "output"} <= keys:
        return "input/output"
    raise PromptbankError(
        f"Line {line} of {name} has the keys {sorted(keys)}, which match no known format.",
        hint="Use input/output, prompt/completion, messages or instruction/input/output, or "
        "choose keys with --input-column and --output-column.")


def _field(record: dict, key: str, name: str, line: int, *, required: bool = True) -> str:
    if key not in record:
        if not required:
            return ""
        raise PromptbankError(f"Line {line} of {name} has no '{key}' field.",
                              hint="Every line must use the same format.")
    value = _scalar(record[key])
    if value is None:
        raise PromptbankError(f"Line {line} of {name}: '{key}' must be text (it is "
                              f"{str(record[key])[:40]}).", hint="Use a string value.")
    return value


def _chat_example(record: dict, name: str, line: int) -> Example:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PromptbankError(f"Line {line} of {name}: 'messages' must be a non-empty list.")
    turns: list[tuple[str, str]] = []
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise PromptbankError(f"Line {line} of {name}: each message needs a 'role'.")
        content = _scalar(message.get("content"))
        if content is None:
            raise PromptbankError(f"Line {line} of {name}: each message needs text 'content'.")
        turns.append((message["role"], content))
    last = max((i for i, (role, _) in enumerate(turns) if role == "assistant"), default=None)
    if last is None:
        raise PromptbankError(f"Line {line} of {name} has no assistant message to learn from.",
                              hint="The last assistant turn is the output.")
    # The system prompt is what the soft prompt replaces, so it is not part of the input.
    history = [(role, content) for role, content in turns[:last] if role != "system"]
    if len(history) == 1:
        return Example(history[0][1], turns[last][1])
    text = "\n".join(f"{role.capitalize()}: {content}" for role, content in history)
    return Example(text, turns[last][1])


def _jsonl_example(record: dict, fmt: str, name: str, line: int, keys: tuple[str, str]) -> Example:
    if fmt == "messages":
        return _chat_example(record, name, line)
    if fmt == "alpaca":
        instruction = _field(record, "instruction", name, line)
        extra = _field(record, "input", name, line, required=False)
        text = f"{instruction}\n\n{extra}" if extra else instruction
        return Example(text, _field(record, "output", name, line))
    return Example(_field(record, keys[0], name, line), _field(record, keys[1], name, line))


FORMAT_KEYS = {"input/output": ("input", "output"), "prompt/completion": ("prompt", "completion")}


def jsonl_records(text: str, name: str) -> Iterator[tuple[int, dict]]:
    """(line number, object) for each non-blank line; malformed lines name file and line."""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            record = safe_json.loads(raw, unique_keys=True)
        except safe_json.JsonRefused as exc:
            raise PromptbankError(f"Malformed JSON on line {number} of {name}: {exc}.",
                                  hint="Fix that line; each line must be one JSON object.") from exc
        if not isinstance(record, dict):
            raise PromptbankError(f"Line {number} of {name} is not a JSON object.",
                                  hint="Each line must be one JSON object.")
        yield number, record


def _read_jsonl(text: str, name: str, input_column: str | None,
                output_column: str | None) -> ReadResult:
    examples: list[Example] = []
    fmt = "columns" if input_column or output_column else ""
    keys = (input_column or "input", output_column or "output")
    for number, record in jsonl_records(text, name):
        if not fmt:
            fmt = _detect_jsonl_format(record, name, number)
            keys = FORMAT_KEYS.get(fmt, keys)
        example = _jsonl_example(record, fmt, name, number, keys)
        _check_output(example, name, number)
        examples.append(example)
    if fmt == "columns":
        return ReadResult(examples, fmt, input_column, output_column)
    return ReadResult(examples, fmt)


def _check_output(example: Example, name: str, line: int) -> None:
    if not example.output.strip():
        raise PromptbankError(f"Line {line} of {name} has an empty output.",
                              hint="Every example needs the answer the prompt should learn.")


def likely_text_column(header: list[str], rows: list[list[str]]) -> str:
    """The column a task should read: a known input name, else the one with the longest
    texts that are not numbers (an ``id`` column is never it); "" for no columns."""
    lowered = [h.strip().lower() for h in header]
    known = next((header[lowered.index(c)] for c in INPUT_COLUMNS if c in lowered), None)
    if known is not None or not header:
        return known or ""

    def wordiness(index: int) -> float:
        cells = [r[index] for r in rows if index < len(r) and r[index].strip()]
        texts = [c for c in cells if not _is_number(c)]
        return sum(len(c) for c in texts) / len(cells) if cells else 0.0

    return header[max(range(len(header)), key=wordiness)]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _pick_column(header: list[str], chosen: str | None, known: tuple[str, ...], role: str,
                 name: str) -> int:
    if chosen is not None:
        if chosen not in header:
            raise PromptbankError(f"{name} has no column '{chosen}' (columns: "
                                  f"{', '.join(header)}).", hint=f"Pick the {role} column.")
        return header.index(chosen)
    lowered = [h.strip().lower() for h in header]
    for candidate in known:
        if candidate in lowered:
            return lowered.index(candidate)
    raise PromptbankError(
        f"{name} has no {role} column (columns: {', '.join(header)}).",
        hint=f"Choose it with --{role}-column.")


def _read_table(text: str, name: str, kind: str, input_column: str | None,
                output_column: str | None) -> ReadResult:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
    try:
        header = next(reader)
        twice = sorted({h for h in header if header.count(h) > 1})
        if twice:
            raise PromptbankError(f"{name} names the column {', '.join(map(repr, twice))} "
                                  "more than once, so which one is meant is unclear.",
                                  hint="Rename the columns so each name is used once.")
        in_idx = _pick_column(header, input_column, INPUT_COLUMNS, "input", name)
        out_idx = _pick_column(header, output_column, OUTPUT_COLUMNS, "output", name)
        if in_idx == out_idx:
            raise PromptbankError(f"{name}: the input and output columns are the same.",
                                  hint="Choose two different columns.")
        examples: list[Example] = []
        line = reader.line_num
        for row in reader:
            if not any(cell.strip() for cell in row):
                line = reader.line_num
                continue
            if len(row) != len(header):
                raise PromptbankError(
                    f"Line {line + 1} of {name} has {len(row)} fields; the header has "
                    f"{len(header)}.", hint="Quote fields that contain the delimiter.")
            example = Example(row[in_idx], row[out_idx])
            _check_output(example, name, line + 1)
            examples.append(example)
            line = reader.line_num
    except csv.Error as exc:
        raise PromptbankError(f"{name} is not valid {kind.upper()} near line {reader.line_num}: "
                              f"{exc}.", hint="Check the quoting on that line.") from exc
    if not examples:
        raise PromptbankError(f"{name} has a header but no rows.",
                              hint="Give a file with at least one example.")
    return ReadResult(examples, kind, header[in_idx], header[out_idx])
