"""Running tasks: generation, label scores, evaluation and batch apply.

Torch-free: each op is declared beside the payloads it answers with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.api.payload import Payload
from engine.api.spec import (
    VERSION_ARG,
    Arg,
    OpSpec,
    task_arg,
)
from engine.api.wire import ProtocolError


@dataclass
class Token(Payload):
    """A piece of generated text for row ``row`` of a ``generate`` request."""

    EVENT: ClassVar[str] = "token"
    row: int = 0
    text: str = ""


@dataclass
class RowsProgress(Payload):
    """Rows done of an evaluation or a batch apply (with rows/s and ETA when known)."""

    EVENT: ClassVar[str] = "progress"
    KIND: ClassVar[str] = "rows"
    done: int = 0
    total: int = 0
    rows_per_s: float | None = None
    eta_s: float | None = None


@dataclass
class GeneratedText(Payload):
    """One row's answer; ``finish_reason`` is eos, stop, length, cancelled or refused (a row
    that joined a running request and could not run; see ``RowDone``)."""

    text: str = ""
    tokens: list[int] = field(default_factory=list)
    finish_reason: str = ""
    truncated: bool = False
    version: int | None = None
    prompt_tokens: int = 0  # the row's context tokens (template and input; not the prompt's)


@dataclass
class RowDone(Payload):
    """Row ``row`` of a streamed ``generate`` is over: its answer, or why it was refused
    (a row that joined the running request from the HTTP server's queue)."""

    EVENT: ClassVar[str] = "row_done"
    row: int = 0
    result: GeneratedText | None = None
    error: str = ""


@dataclass
class Generated(Payload):
    """The answer to ``generate``: one result per row; ``status`` is done or cancelled."""

    results: list[GeneratedText] = field(default_factory=list)
    status: str = "done"


@dataclass
class LabelScores(Payload):
    """The best label of one text and every label's probability."""

    label: str = ""
    probs: dict[str, float] = field(default_factory=dict)
    truncated: bool = False
    version: int | None = None


@dataclass
class Scored(Payload):
    """The answer to ``score``: one result per text."""

    results: list[LabelScores] = field(default_factory=list)


@dataclass
class EvalOutcome(Payload):
    """The answer to ``eval``: metrics on ``n`` examples whose content hashes to
    ``data_sha256`` (same hash, same examples); ``status`` is done or cancelled."""

    status: str = "done"
    task: str = ""
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    n: int = 0
    baseline: str = "none"
    data_sha256: str = ""


@dataclass
class ApplyOutcome(Payload):
    """The answer to ``apply``: the file written, or (cancelled) how far it got."""

    status: str = "done"
    out_path: str = ""
    rows: int = 0
    done: int = 0
    resumed_from: int = 0
    truncated: int = 0
    complete: bool = True
    columns: list[str] = field(default_factory=list)


@dataclass
class HttpServerState(Payload):
    """The answer to ``serve_http``: whether the OpenAI-compatible server runs, where, what
    it serves (the model ids) and whether requests need the API key."""

    running: bool = False
    url: str = ""
    models: list[str] = field(default_factory=list)
    key_required: bool = False


#: Tokens one serving input may hold unless the engine is started with another
#: ``--max-input-tokens``: longer inputs are refused with a clear error rather than prefilled
#: for minutes (an input within it that overflows the model's context is cut to fit).
DEFAULT_MAX_INPUT_TOKENS = 8192
#: The environment variable that sets it for every engine process (CLI, worker, desktop).
MAX_INPUT_TOKENS_ENV = "PROMPTBANK_MAX_INPUT_TOKENS"
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


SPECS = (
    OpSpec("generate", "Generate text for one or more rows, each with its own task; "
           "streams tokens.",
           (Arg("rows", "list", doc="[{text, task?, version?, max_new_tokens?, temperature?, "
                "top_p?, stop?, seed?, system?, shots?}]"),
            Arg("text", "str", doc="shorthand for one row"),
            task_arg(required=False), VERSION_ARG,
            Arg("max_new_tokens", "int", default=64, minimum=1),
            Arg("temperature", "float", default=0.0, minimum=0.0),
            Arg("top_p", "float", default=1.0, minimum=0.0),
            Arg("stop", "list", default=[]),
            Arg("seed", "int", doc="sampling seed"),
            Arg("system", "str", doc="system message"),
            Arg("stream", "bool", default=True, doc="send token events")),
           "token*, row_done*, result",
           result=Generated),
    OpSpec("serve_http", "Start the OpenAI-compatible server in this engine process (or, "
           "with stop, stop it); its requests share the model and the scheduler.",
           (Arg("host", "str", default="127.0.0.1", doc="address (another than this computer "
                "needs api_key)"),
            Arg("port", "int", default=8000, minimum=0, doc="0: any free port"),
            Arg("api_key", "str", doc="required as 'Authorization: Bearer KEY'"),
            Arg("stop", "bool", default=False)),
           "result", "long",
           result=HttpServerState),
    OpSpec("score", "Label probabilities of texts for a classification task.",
           (task_arg(), Arg("texts", "list", required=True), VERSION_ARG,
            Arg("baseline", "str", default="none", choices=("none", "base", "instruction"),
                doc="none: the soft prompt; base: no prompt; instruction: the instruction "
                "as the system message, no prompt")),
           result=Scored),
    OpSpec("eval", "Evaluate a version (or a baseline) on a task's eval split or a file.",
           (task_arg(), VERSION_ARG, Arg("data", "str", doc="data file (default: the eval split)",
                                        file="in"),
            Arg("baseline", "str", default="none", choices=("none", "instruction", "fewshot"),
                doc="none (the prompt) | instruction | fewshot")),
           "progress*, result", "long",
           result=EvalOutcome),
    OpSpec("apply", "Run tasks over a column of a CSV/JSONL file, writing a new file.",
           (Arg("tasks", "str|list", required=True), Arg("input", "str", required=True, file="in"),
            Arg("column", "str", required=True),
            Arg("output", "str", required=True, file="out"),
            Arg("overwrite", "bool", default=False)),
           "progress*, result", "long",
           result=ApplyOutcome),
)
PROGRESS = (RowsProgress,)
