"""Evaluation of a task's prompt version (or a baseline) on held-out data, and the table that
compares them. Results go to the catalogue with the data's hash, so rows of the table that share
a hash were measured on the same examples.

Baselines run the base model without a soft prompt: ``instruction`` gives the task's
instruction as the system message, ``fewshot`` adds a few training examples as earlier chat
turns (with the instruction, when there is one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.api.measures import label as metric_label
from engine.api.measures import value_text
from engine.errors import PromptbankError
from engine.library.readers import Example, read_examples
from engine.serving.metrics import classify_metrics, generate_metrics

if TYPE_CHECKING:
    from engine.library import Library

BASELINES = ("none", "instruction", "fewshot")
FEWSHOT_EXAMPLES = 4
MAX_ANSWER_TOKENS = 256
CHUNK = 16
#: Progress callback: (examples done, examples in all).
OnProgress = Callable[[int, int], None]


@dataclass
class EvalResult:
    """Metrics of one version (``version`` None for a baseline) on ``n`` examples."""

    task: str
    version: int | None
    metrics: dict
    n: int
    baseline: str = "none"
    data_sha256: str = ""

    def to_dict(self) -> dict:
        return {"task": self.task, "version": self.version, "metrics": self.metrics,
                "n": self.n, "baseline": self.baseline, "data_sha256": self.data_sha256}


def examples_sha256(examples: list[Example]) -> str:
    """A hash of the examples' content, the same whichever file or split they came from."""
    payload = json.dumps([[e.input, e.output] for e in examples], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def fewshot_examples(examples: list[Example], labels: list[str], k: int = FEWSHOT_EXAMPLES
                     ) -> list[tuple[str, str]]:
    """The first ``k`` training examples, taking labels in turn when the task has labels."""
    if not labels:
        return [(e.input, e.output) for e in examples[:k]]
    by_label = {label: [e for e in examples if e.output == label] for label in labels}
    chosen: list[Example] = []
    for i in range(k):
        for label in labels:
            if len(chosen) < k and i < len(by_label[label]):
                chosen.append(by_label[label][i])
    return [(e.input, e.output) for e in chosen]


def evaluate(runtime, library: Library, task: str, *, version: int | None = None,
             data: Path | str | None = None, baseline: str = "none",
             on_progress: OnProgress | None = None) -> EvalResult:
    """Evaluate ``version`` of ``task`` (None: the active one) or a baseline; store the result."""
    if baseline not in BASELINES:
        raise PromptbankError(f"Unknown baseline '{baseline}'.",
                              hint=f"Use one of: {', '.join(BASELINES)}.")
    record = library.get_task(task)
    examples = _eval_examples(library, task, data)
    version_id = number = None
    if baseline == "none":
        chosen = library.get_version(task, version)
        version_id, number = chosen.id, chosen.number
    system, shots = _baseline_context(library, record, baseline)
    if record.kind == "classify":
        predictions = _classify(runtime, task, examples, number, baseline, system, shots,
                                on_progress)
        metrics = classify_metrics(predictions, [e.output for e in examples], record.labels)
    else:
        predictions = _generate(runtime, task, examples, number, baseline, system, shots,
                                on_progress)
        metrics = generate_metrics(predictions, [e.output for e in examples])
    digest = examples_sha256(examples)
    library.add_evaluation(task, version_id, data_sha256=digest, baseline=baseline,
                           metrics=metrics, n=len(examples))
    return EvalResult(task, number, metrics, len(examples), baseline, digest)


def _eval_examples(library: Library, task: str, data: Path | str | None) -> list[Example]:
    examples = read_examples(data).examples if data is not None else library.examples(task,
                                                                                        "eval")
    if not examples:
        raise PromptbankError(f"The task '{task}' has no evaluation examples.",
                              hint="Add a dataset with a held-out split, or pass --data FILE.")
    return examples


def _baseline_context(library: Library, record, baseline: str) -> tuple[str | None, list]:
    if baseline == "none":
        return None, []
    instruction = (record.instruction or "").strip() or None
    if baseline == "instruction":
        if instruction is None:
            raise PromptbankError(f"The task '{record.name}' has no instruction to compare with.",
                                  hint="Set one with `promptbank task edit`.")
        return instruction, []
    shots = fewshot_examples(library.examples(record.name, "train"), record.labels)
    if not shots:
        raise PromptbankError(f"The task '{record.name}' has no training examples to show.",
                              hint="Add a dataset to the task first.")
    return instruction, shots


def _chunks(items: list, on_progress: OnProgress | None):
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]
        if on_progress is not None:
            on_progress(min(start + CHUNK, len(items)), len(items))


def _classify(runtime, task, examples, number, baseline, system, shots, on_progress):
    out: list[str] = []
    for chunk in _chunks(examples, on_progress):
        results = runtime.score(task, [e.input for e in chunk], version=number,
                                use_prompt=baseline == "none", system=system, shots=shots)
        out += [r.label for r in results]
    return out


def _generate(runtime, task, examples, number, baseline, system, shots, on_progress):
    from engine.serving.runtime import GenRow

    tok = runtime.host.tokenizer
    longest = max(len(tok(e.output, add_special_tokens=False)["input_ids"]) for e in examples)
    budget = min(MAX_ANSWER_TOKENS, longest + 8)
    out: list[str] = []
    for chunk in _chunks(examples, on_progress):
        rows = [GenRow(e.input, task, number, max_new_tokens=budget, system=system,
                       shots=shots, prompt=baseline == "none") for e in chunk]
        out += [r.text.strip() for r in runtime.generate(rows)]
    return out


def compare_rows(library: Library, task: str) -> list[dict]:
    """One row per stored evaluation of ``task``: what was measured, on which data, scores."""
    rows = []
    for ev in library.list_evaluations(task):
        what = ev.baseline
        if ev.version_id:
            # A version measured for a comparison (continual or universal before/after) says
            # which one, e.g. "v2 universal-after-sst2".
            what = f"v{library.version_by_id(ev.version_id).number}" + (
                f" {ev.baseline}" if ev.baseline != "none" else "")
        rows.append({"what": what, "baseline": ev.baseline, "data": ev.data_sha256[:12],
                     "n": ev.n, "metrics": ev.metrics, "created": ev.created})
    return rows


def compare_text(rows: list[dict]) -> str:
    """``compare_rows`` as an aligned text table."""
    if not rows:
        return "No evaluations yet."
    names = sorted({k for r in rows for k in r["metrics"]})
    header = ["what", "data", "rows", *map(metric_label, names), "created"]
    table = [[r["what"], r["data"], f"{r['n']:,}",
              *(_cell(k, r["metrics"].get(k)) for k in names),
              r["created"]] for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *table, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in [header, *table]]
    return "\n".join(lines)


def _cell(name: str, value) -> str:
    """A metric as a table cell: as people read it, other values as they are."""
    if value is None:
        return "-"
    return value_text(name, value) if isinstance(value, int | float) else str(value)
