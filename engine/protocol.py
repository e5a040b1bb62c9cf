"""The engine process's wire format: one JSON object per line, both ways. Torch-free.

A request is ``{"id": str, "op": str, "args": {...}}``; an event is
``{"id": str, "type": str, ...fields}``. Events of one request share its id and the last one
is ``result`` or ``error`` (with ``message``). On start-up the worker sends a ``hello`` event
with id ``""``. ``OP_SPECS`` lists every op with its arguments; ``validate_args`` checks a
request against it and names the offending argument.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from engine import safe_json
from engine.methods import METHODS

PROTOCOL_VERSION = 1
EVENT_TYPES = ("hello", "progress", "token", "result", "error", "log")
MAX_LINE = 16 << 20


class ProtocolError(ValueError):
    """A line that is not a valid request or event, or a request with bad arguments."""


@dataclass
class Request:
    """One request to the engine process."""

    id: str
    op: str
    args: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The request as one JSON line."""
        return json.dumps({"id": self.id, "op": self.op, "args": self.args}) + "\n"


@dataclass
class Event:
    """One event from the engine process about request ``id``."""

    id: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)

    def encode(self) -> str:
        """The event as one JSON line (``id`` and ``type`` win over same-named fields)."""
        return json.dumps({**self.data, "id": self.id, "type": self.type}, default=str) + "\n"

    @property
    def final(self) -> bool:
        """True for the event that ends a request (its result or its error)."""
        return self.type in ("result", "error")

    @property
    def message(self) -> str:
        """The error message of an ``error`` event (empty otherwise)."""
        return str(self.data.get("message", ""))


def error(rid: str, message: str, **fields: Any) -> Event:
    """The final event of a request that failed: one readable sentence in ``message``.

    Every other event is built from its typed payload (``engine.payloads``)."""
    return Event(rid, "error", {"message": message, **fields})


# --- ops and their arguments -------------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "str|list": (str, list),
}


@dataclass(frozen=True)
class Arg:
    """One argument of an op: JSON type name, whether required, default, allowed values."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    doc: str = ""

    def check(self, op: str, value: Any) -> Any:
        """The value if it fits, else a ProtocolError naming the argument."""
        allowed = _TYPES[self.type]
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be a {self.type}, "
                                f"not {type(value).__name__}.")
        if self.choices and value not in self.choices:
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be one of "
                                f"{', '.join(map(str, self.choices))}; got {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be at least "
                                f"{self.minimum:g}; got {value!r}.")
        if self.type == "str" and self.required and not value.strip():
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must not be empty.")
        return value


@dataclass(frozen=True)
class OpSpec:
    """One op: its arguments, what it answers, one line of documentation."""

    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    events: str = "result"
    # quick: answered at once, also while an eval/apply runs; job: queued training;
    # long: runs inline and waits for a running eval/apply to end.
    kind: str = "quick"


def _task(required: bool = True) -> Arg:
    return Arg("task", "str", required=required, doc="task name")


_VERSION = Arg("version", "int", minimum=1, doc="version number (default: the active one)")
_LABELS = Arg("labels", "list", doc="label words (classify; default: the data's outputs)")
_DATA_OPTIONS = (
    Arg("eval", "str", doc="a separate evaluation file (default: hold out eval_fraction)"),
    Arg("input_column", "str"), Arg("output_column", "str"),
    Arg("eval_fraction", "float", default=0.1, minimum=0.0),
    Arg("seed", "int", default=0, doc="seed of the train/eval split"),
)
_TRAIN_CONFIG = Arg("config", "dict", default={}, doc="TrainConfig fields (method, length, …)")

OP_SPECS: dict[str, OpSpec] = {spec.name: spec for spec in (
    OpSpec("hello", "Protocol version, engine version, model info (null until loaded)."),
    OpSpec("ping", "Answers at once; measures the round trip."),
    OpSpec("load_model", "Load (or switch to) a base model; streams load progress.",
           (Arg("model", "str", doc="model spec (default: the worker's --model)"),
            Arg("device", "str", doc="auto | cpu | cuda[:N] | mps"),
            Arg("quantize", "str", choices=("", "8bit", "4bit"),
                doc="hold the base in 8 or 4 bits (\"\": full precision; default: as started)")),
           "progress*, result", "long"),
    OpSpec("model_info", "The loaded model's description (loads it if needed)."),
    OpSpec("generate", "Generate text for one or more rows, each with its own task; "
           "streams tokens.",
           (Arg("rows", "list", doc="[{text, task?, version?, max_new_tokens?, temperature?, "
                "top_p?, stop?, seed?, system?, shots?}]"),
            Arg("text", "str", doc="shorthand for one row"),
            _task(required=False), _VERSION,
            Arg("max_new_tokens", "int", default=64, minimum=1),
            Arg("temperature", "float", default=0.0, minimum=0.0),
            Arg("top_p", "float", default=1.0, minimum=0.0),
            Arg("stop", "list", default=[]),
            Arg("seed", "int", doc="sampling seed"),
            Arg("system", "str", doc="system message"),
            Arg("stream", "bool", default=True, doc="send token events")),
           "token*, result"),
    OpSpec("score", "Label probabilities of texts for a classification task.",
           (_task(), Arg("texts", "list", required=True), _VERSION)),
    OpSpec("train", "Queue a training job for a task; streams progress until it ends.",
           (_task(), _TRAIN_CONFIG), "progress*, result", "job"),
    OpSpec("plan", "The memory a training of the tasks needs on the loaded model's device, "
           "part by part, and the rows per pass (and checkpointing) that make it fit.",
           (Arg("tasks", "list", required=True, doc="one or more task names"), _TRAIN_CONFIG)),
    OpSpec("train_joint", "Queue one joint job training several tasks' prompts in mixed "
           "batches (each task its own optimiser, schedule, early stopping and version).",
           (Arg("tasks", "list", required=True, doc="two or more task names"), _TRAIN_CONFIG),
           "progress*, result", "job"),
    OpSpec("universal", "Queue training a universal prompt on source tasks (sources), or "
           "continuing one on added tasks with replay of its sources (add).",
           (_task(), Arg("sources", "list", doc="source task names (create)"),
            Arg("add", "list", doc="task names to add (update)"),
            Arg("instruction", "str", doc="its instruction (text init; create)"),
            _TRAIN_CONFIG), "progress*, result", "job"),
    OpSpec("rank_starts", "Rank the library's prompts of one method and length (and the "
           "text init) as starting points for a task or a dataset file, by a short probe.",
           (_task(required=False), Arg("data", "str", doc="a dataset file (instead of task)"),
            Arg("input_column", "str"), Arg("output_column", "str"),
            Arg("input_template", "str"), Arg("instruction", "str"),
            Arg("method", "str", choices=METHODS), Arg("length", "int", minimum=1),
            Arg("rows", "int", default=32, minimum=1, doc="rows the probe trains on"),
            Arg("steps", "int", default=5, minimum=1, doc="steps from each start")),
           "progress*, result", "long"),
    OpSpec("continue", "Queue continual learning of the active version on new data.",
           (_task(), Arg("data", "str", required=True, doc="path of the new data file"),
            _TRAIN_CONFIG), "progress*, result", "job"),
    OpSpec("resume", "Queue a cancelled or interrupted run again from its last checkpoint.",
           (Arg("run_id", "int", required=True, minimum=1),), "progress*, result", "job"),
    OpSpec("cancel", "Stop a job at the next step boundary (checkpointed, resumable), "
           "a running eval/apply at its next batch, or a generate at its next token.",
           (Arg("job", "str", required=True, doc="the id of the train/train_joint/universal/"
                "continue/resume/eval/apply/generate request"),)),
    OpSpec("jobs", "Running and queued jobs, and interrupted runs that can be resumed."),
    OpSpec("eval", "Evaluate a version (or a baseline) on a task's eval split or a file.",
           (_task(), _VERSION, Arg("data", "str", doc="data file (default: the eval split)"),
            Arg("baseline", "str", default="none", choices=("none", "instruction", "fewshot"),
                doc="none (the prompt) | instruction | fewshot")),
           "progress*, result", "long"),
    OpSpec("apply", "Run tasks over a column of a CSV/JSONL file, writing a new file.",
           (Arg("tasks", "str|list", required=True), Arg("input", "str", required=True),
            Arg("column", "str", required=True), Arg("output", "str", required=True),
            Arg("overwrite", "bool", default=False)),
           "progress*, result", "long"),
    OpSpec("nearest_tokens", "Per virtual token of a `prompt` version, the k nearest "
           "vocabulary tokens by cosine.",
           (_task(), _VERSION, Arg("k", "int", default=5, minimum=1))),
    OpSpec("similarity", "Task-by-task cosine similarity of prompts of one method (SPoT).",
           (Arg("tasks", "list", doc="task names (default: all with a version)"),
            Arg("method", "str", default="prompt", choices=METHODS),
            Arg("pooling", "str", default="mean", choices=("mean", "tokens")))),
    OpSpec("export", "Export a version as a PEFT folder, KoboldAI zip, prompt pack or "
           "safetensors file.",
           (_task(), _VERSION,
            Arg("format", "str", required=True, choices=("peft", "kobold", "pack", "safetensors")),
            Arg("out", "str", required=True, doc="output path"),
            Arg("include_eval", "bool", default=True, doc="packs: add the eval data"))),
    # The library's changes: the desktop only reads the catalogue and sends these.
    OpSpec("library_info", "Open (create or update) the library; its folder, schema version "
           "and task count.", kind="long"),
    OpSpec("create_task", "Create a task, with its first dataset if given, in one transaction.",
           (_task(), Arg("kind", "str", default="generate", choices=("generate", "classify")),
            _LABELS, Arg("description", "str", default=""),
            Arg("instruction", "str", default=""), Arg("input_template", "str"),
            Arg("data", "str", doc="dataset file"), *_DATA_OPTIONS),
           kind="long"),
    OpSpec("edit_task", "Rename a task and/or change its fields, in one transaction.",
           (_task(), Arg("new_name", "str"),
            Arg("kind", "str", choices=("generate", "classify")), _LABELS,
            Arg("description", "str"), Arg("instruction", "str"), Arg("input_template", "str")),
           kind="long"),
    OpSpec("delete_task", "Delete a task with its datasets, versions and runs.", (_task(),),
           kind="long"),
    OpSpec("activate", "Make a version the one a task serves.",
           (_task(), Arg("version", "int", required=True, minimum=1)), kind="long"),
    OpSpec("add_dataset", "Snapshot another dataset file into a task.",
           (_task(), Arg("data", "str", required=True, doc="dataset file"),
            Arg("role", "str", default="train", choices=("train", "eval")), *_DATA_OPTIONS),
           kind="long"),
    OpSpec("import", "Import a prompt pack, PEFT folder, KoboldAI zip or prompt file.",
           (Arg("path", "str", required=True),
            Arg("task", "str", doc="task for a single prompt (default: its own name)"),
            Arg("force", "bool", default=False,
                doc="accept prompts of another model of the same size")),
           kind="long"),
    OpSpec("install_examples", "Fill an empty library with the example tasks.",
           (Arg("folder", "str", doc="examples folder (default: the shipped examples)"),),
           kind="long"),
    OpSpec("shutdown", "Checkpoint the running job, then exit."),
)}
OPS = tuple(OP_SPECS)


def validate_args(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments with defaults filled in; ProtocolError names an unknown op or bad arg."""
    spec = OP_SPECS.get(op)
    if spec is None:
        raise ProtocolError(f"Unknown op '{op}'; known ops: {', '.join(OPS)}.")
    known = {a.name: a for a in spec.args}
    for name in args:
        if name not in known:
            expected = ", ".join(known) or "none"
            raise ProtocolError(f"Unknown argument '{name}' for '{op}' (expected: {expected}).")
    out: dict[str, Any] = {}
    for arg in spec.args:
        if arg.name in args and args[arg.name] is not None:
            out[arg.name] = arg.check(op, args[arg.name])
        elif arg.required:
            raise ProtocolError(f"Missing argument '{arg.name}' for '{op}'.")
        else:
            out[arg.name] = arg.default
    return out


def ops_table_markdown() -> str:
    """The op reference as a Markdown table (for the README)."""
    lines = ["| op | arguments | events | what it does |", "| --- | --- | --- | --- |"]
    for spec in OP_SPECS.values():
        args = ", ".join(a.name if a.required else f"{a.name}?" for a in spec.args) or "—"
        lines.append(f"| `{spec.name}` | {args} | {spec.events} | {spec.doc} |")
    return "\n".join(lines)


# --- decoding ---------------------------------------------------------------------------

def _parse_object(line: str | bytes, *, finite: bool) -> dict[str, Any]:
    # Bounded in size and nesting before parsing: one deep line must not raise
    # RecursionError in the thread that reads the pipe.
    try:
        obj = safe_json.loads(line, max_bytes=MAX_LINE, finite=finite)
    except safe_json.JsonRefused as exc:
        raise ProtocolError(str(exc)) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("a line must be one JSON object")
    return obj


def decode_request(line: str | bytes) -> Request:
    """Parse a request line; ProtocolError says what is wrong with it (also a line too long,
    nested too deep, or holding a number out of range)."""
    obj = _parse_object(line, finite=True)
    rid, op, args = obj.get("id"), obj.get("op"), obj.get("args", {})
    if not isinstance(rid, str) or not rid:
        raise ProtocolError("a request needs a non-empty string 'id'")
    if not isinstance(op, str) or not op:
        raise ProtocolError("a request needs a string 'op'")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ProtocolError("'args' must be an object")
    return Request(rid, op, args)


def read_lines(stream: BinaryIO, limit: int = MAX_LINE) -> Iterator[bytes]:
    """The lines of a byte stream, each read into at most ``limit + 1`` bytes: the rest of a
    longer line is skipped unread, so it costs no memory and decodes as too long."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        rest = line
        while len(rest) > limit and not rest.endswith(b"\n"):
            rest = stream.readline(limit + 1)
        yield line


def request_id_of(line: str | bytes) -> str:
    """The id of a line that failed to decode, when one can still be read (else "")."""
    try:
        rid = safe_json.loads(line, max_bytes=MAX_LINE).get("id")
    except (ValueError, AttributeError, TypeError):
        return ""
    return rid if isinstance(rid, str) else ""


def decode_event(line: str | bytes) -> Event:
    """Parse an event line; ProtocolError says what is wrong with it."""
    obj = _parse_object(line, finite=False)  # the engine's own numbers may be NaN
    rid, kind = obj.pop("id", None), obj.pop("type", None)
    if not isinstance(rid, str) or kind not in EVENT_TYPES:
        raise ProtocolError("an event needs a string 'id' and a known 'type'")
    return Event(rid, kind, obj)


ROW_FIELDS = {"text": str, "task": str, "version": int, "max_new_tokens": int,
              "temperature": (int, float), "top_p": (int, float), "stop": list, "seed": int,
              "system": str, "shots": list}


def generate_rows(args: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of a validated ``generate`` request: ``rows``, or one row from ``text``.

    Per-row fields fall back to the request's own (task, version, max_new_tokens, …).
    """
    if (args.get("rows") is None) == (args.get("text") is None):
        raise ProtocolError("'generate' needs exactly one of the arguments 'rows' or 'text'.")
    rows = args["rows"] if args.get("rows") is not None else [{"text": args["text"]}]
    if not rows:
        raise ProtocolError("Argument 'rows' of 'generate' must not be empty.")
    defaults = {k: args.get(k) for k in ROW_FIELDS if k not in ("text", "shots")}
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ProtocolError(f"Argument 'rows[{i}]' of 'generate' must be an object.")
        for name, value in row.items():
            kind = ROW_FIELDS.get(name)
            if kind is None:
                raise ProtocolError(f"Unknown field 'rows[{i}].{name}' for 'generate'.")
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise ProtocolError(f"Field 'rows[{i}].{name}' of 'generate' has the wrong type "
                                    f"({type(value).__name__}).")
        if not isinstance(row.get("text"), str):
            raise ProtocolError(f"Field 'rows[{i}].text' of 'generate' is required.")
        merged = {**defaults, **{k: v for k, v in row.items() if v is not None}}
        out.append({k: v for k, v in merged.items() if v is not None})
    return out
