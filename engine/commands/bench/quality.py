"""``promptbank bench quality``: zero-shot instruction vs our default prompt vs PEFT prompt tuning.

Real data from ``../shared/data`` (skipped cleanly when absent). Every prompt is scored the
same way: rank classification over the label words on a held-out evaluation sample.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import PromptbankError
from engine.support.paths import resources_dir

if TYPE_CHECKING:
    from engine.api.generation import LabelScores
    from engine.model.host import ModelHost

DATA_DIR = resources_dir().parent.parent / "shared" / "data"


@dataclass
class QualityTask:
    """A benchmark task: its labels, instruction and train/eval examples."""

    name: str
    labels: list[str]
    instruction: str
    train: list[tuple[str, str]]
    eval: list[tuple[str, str]]


def _sst2(root: Path) -> tuple[list, list]:
    def read(name):
        rows = []
        for line in (root / "sst2" / name).read_text().splitlines():
            if line.strip():
                label, text = line.split(" ", 1)
                rows.append((text, "positive" if label == "1" else "negative"))
        return rows
    return read("stsa.binary.train"), read("stsa.binary.dev")


AG_LABELS = ["World", "Sports", "Business", "Sci/Tech"]


def _agnews(root: Path) -> tuple[list, list]:
    with (root / "agnews" / "train.tsv").open(newline="") as fh:
        train = [(r[0], r[1]) for r in csv.reader(fh, delimiter="\t") if len(r) == 2]
    with (root / "agnews" / "test.csv").open(newline="") as fh:
        test = [(r["Description"], AG_LABELS[int(r["Class Index"]) - 1])
                for r in csv.DictReader(fh)]
    return train, test


def _sms(root: Path) -> tuple[list, list]:
    with (root / "sms_spam" / "SMSSpamCollection.tsv").open(newline="") as fh:
        rows = [(r["SMS"], r["Label"]) for r in csv.DictReader(fh, delimiter="\t")]
    random.Random(0).shuffle(rows)
    cut = len(rows) * 4 // 5
    return rows[:cut], rows[cut:]


def _e2e(root: Path) -> tuple[list, list]:
    def read(name):
        with (root / "e2e" / name).open(newline="") as fh:
            return [(r["mr"], r["ref"]) for r in csv.DictReader(fh) if r["ref"].strip()]
    return read("train.csv"), read("test.csv")


#: name: (loader, labels (none: a generation task), instruction).
LOADERS = {
    "sst2": (_sst2, ["positive", "negative"],
             "Classify the sentiment of this movie review as positive or negative."),
    "agnews": (_agnews, AG_LABELS,
               "Classify the topic of this news article as World, Sports, Business or Sci/Tech."),
    "sms_spam": (_sms, ["ham", "spam"],
                 "Classify this SMS message as ham (a normal message) or spam."),
    "e2e": (_e2e, [], "Describe the restaurant in one or two sentences using every "
            "attribute given."),
}


def load_task(name: str, data_dir: Path, train_rows: int, eval_rows: int,
              seed: int = 0) -> QualityTask:
    """A benchmark task with shuffled train and eval samples."""
    loader, labels, instruction = LOADERS[name]
    train, test = loader(data_dir)
    rng = random.Random(seed)
    rng.shuffle(train)
    rng.shuffle(test)
    return QualityTask(name, labels, instruction, train[:train_rows], test[:eval_rows])


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
    return path


def scored(host: ModelHost, task: QualityTask, prompt=None,
           template: str | None = None) -> list[LabelScores]:
    """Rank classification of the task's eval rows (each label's probability), served like
    any task: with ``prompt``, else with the instruction ``template`` and no soft prompt."""
    from engine.serving.bank import TaskSpec
    from engine.serving.runtime import Runtime

    runtime = Runtime(host)
    spec = TaskSpec(task.name, "classify", task.labels, template)
    if prompt is None:
        runtime.bank.describe(spec)
    else:
        runtime.register(spec, prompt)
    return runtime.score(task.name, [i for i, _ in task.eval], use_prompt=prompt is not None)


def accuracy(host: ModelHost, task: QualityTask, prompt=None,
             template: str | None = None) -> float:
    """The share of the task's eval rows whose best label is the right one."""
    return share_right(task, scored(host, task, prompt, template))


def share_right(task: QualityTask, results: list[LabelScores]) -> float:
    """The share of ``results`` (one per eval row of ``task``) naming the right label."""
    return sum(r.label == o for r, (_, o) in zip(results, task.eval, strict=True)) / len(task.eval)


def zero_shot_accuracy(host: ModelHost, task: QualityTask) -> float:
    """Rank-classification accuracy of the instruction in the user turn, no soft prompt."""
    return accuracy(host, task, template=task.instruction + "\n\n{input}")


def train_ours(host: ModelHost, task: QualityTask, config, folder: Path) -> dict:
    """Train a prompt with our trainer and return its accuracy on the test rows and timing.

    The run picks its best checkpoint on a validation slice of the training rows, never on
    the test rows, which score the saved version exactly as PEFT's prompt is scored."""
    from engine.library import Library
    from engine.prompts.soft_prompt import SoftPrompt
    from engine.training.job import TrainingJob, run_job

    held = min(config.eval_size, len(task.train) // 5)
    lib = Library(folder / "lib")
    lib.create_task(task.name, kind="classify", labels=task.labels,
                    instruction=task.instruction)
    lib.add_dataset(task.name, write_jsonl(folder / "train.jsonl", task.train[held:]),
                    eval_path=write_jsonl(folder / "validation.jsonl", task.train[:held]))
    started = time.perf_counter()
    result = run_job(TrainingJob.start(lib, host, task.name, config))
    seconds = round(time.perf_counter() - started, 1)
    version = lib.get_version(task.name, result.version)
    prompt = SoftPrompt.load(lib.version_path(version), sha256=version.sha256)
    return {"accuracy": accuracy(host, task, prompt), "validation": result.best_metric,
            "seconds": seconds, "tokens_per_s": round(result.tokens_per_s, 1)}


def train_peft(host: ModelHost, task: QualityTask, config) -> dict:
    """PEFT prompt tuning (text init from the instruction) on the same batches and schedule."""
    import torch

    from engine.commands.bench._peft import peft_batch, peft_model
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
    from engine.training.batches import length_grouped_order

    model = peft_model(host, config.length, init_text=task.instruction)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
    rows = host.chat.rows(task.train)
    order = length_grouped_order([len(r) for r in rows], config.batch_size, config.seed)
    warm = max(1, int(config.warmup * config.steps))
    started = time.perf_counter()
    for step in range(config.steps):
        lr = config.lr * ((step + 1) / warm if step < warm
                          else max(0.0, 1 - (step - warm) / max(1, config.steps - warm)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        ids, mask, labels = peft_batch(host, [rows[i] for i in order[step % len(order)]])
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - started
    tensor = model.prompt_encoder["default"].embedding.weight.detach()
    prompt = SoftPrompt("prompt", tensor, ModelGeometry.of(host), task=task.name)
    return {"accuracy": accuracy(host, task, prompt), "seconds": round(seconds, 1)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("quality", help="zero-shot vs our default prompt vs PEFT on real data")
    p.add_argument("--tasks", default="sst2", help="comma list of sst2, agnews, sms_spam")
    p.add_argument("--data", default=str(DATA_DIR), help="folder of the benchmark data")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: ours)")
    p.add_argument("--eval-size", type=int, default=300)
    p.add_argument("--train-rows", type=int, default=4000)
    p.add_argument("--method", default=None)
    p.add_argument("--length", type=int, default=None)
    p.add_argument("--init", default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--peft-lr", type=float, default=0.3)
    p.add_argument("--no-peft", action="store_true", help="skip the PEFT baseline")
    p.add_argument("--no-ours", action="store_true",
                   help="skip our training (to fill in a baseline measured apart)")
    p.set_defaults(func=cmd_quality)


def cmd_quality(args: argparse.Namespace) -> int:
    from engine.commands._common import emit, load_host
    from engine.training.config import TrainConfig

    data_dir = Path(args.data)
    if not data_dir.is_dir():
        emit(args, {"skipped": f"no benchmark data at {data_dir}"})
        return 0
    host = load_host(args)
    overrides = {k: getattr(args, k) for k in ("method", "length", "init", "lr", "steps")
                 if getattr(args, k) is not None}
    results = []
    for name in [t.strip() for t in args.tasks.split(",") if t.strip()]:
        if name not in LOADERS or not LOADERS[name][1]:
            raise PromptbankError(f"'{name}' is not a classification benchmark task.",
                                  hint="Use sst2, agnews or sms_spam.")
        task = load_task(name, data_dir, args.train_rows, args.eval_size)
        config = TrainConfig(**{**overrides, "eval_every": 0, "checkpoint_every": 0})
        row = {"task": name, "eval_n": len(task.eval), "steps": config.steps,
               "batch_size": config.batch_size, "zero_shot": zero_shot_accuracy(host, task)}
        print(f"{name}: zero-shot {row['zero_shot']:.3f}", file=sys.stderr)
        if not args.no_ours:
            with tempfile.TemporaryDirectory() as tmp:
                row["ours"] = {"method": config.method, "length": config.length,
                               "init": config.init, "lr": config.lr,
                               **train_ours(host, task, config, Path(tmp))}
            print(f"{name}: ours {row['ours']}", file=sys.stderr)
        if not args.no_peft:
            peft_config = TrainConfig(method="prompt", length=config.length, steps=config.steps,
                                      lr=args.peft_lr, batch_size=config.batch_size)
            row["peft"] = {"length": config.length, "lr": args.peft_lr,
                           **train_peft(host, task, peft_config)}
            print(f"{name}: peft {row['peft']}", file=sys.stderr)
        results.append(row)
    emit(args, {"model": host.name, "device": str(host.device), "results": results})
    return 0
