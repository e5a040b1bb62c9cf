"""What a run trains on, and continual learning: a new version trained from the task's active
one on new data, with replayed earlier rows, an optional pull towards the parent, and the gain
on the new data and the forgetting on the old measured before and after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from engine.library.readers import Example
from engine.methods import get_method
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.training.batches import EvalSet, eval_set, replay_sample
from engine.training.config import TrainConfig

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost


@dataclass
class Pools:
    """What a run trains on and evaluates on (and, when continuing, the old data's eval set).

    ``select_on_loss``: the evaluation set is the training rows themselves (few-shot without
    held-out examples), so the run keeps the prompt with the lowest loss on them.
    ``on_train``: the evaluation set is made of training rows (no held-out rows), which
    every result of the run then says.
    """

    train: list[Example]
    evals: list[Example]
    eval_name: str
    old_eval: EvalSet | None
    select_on_loss: bool = False
    on_train: bool = False


def parent_of(library: Library, host: ModelHost, task: str, config: TrainConfig) -> tuple:
    """The active version to continue and its tensor; the run takes its method and length."""
    parent = library.get_version(task)
    if parent.method != config.method and config.lr == get_method(config.method).default_lr:
        config.lr = get_method(parent.method).default_lr
    config.method, config.length = parent.method, parent.length
    prompt = SoftPrompt.load(library.version_path(parent), sha256=parent.sha256)
    prompt.check_fits(ModelGeometry.of(host))
    return parent, prompt.tensor


def pools(library: Library, task: str, config: TrainConfig, new_dataset: int | None) -> Pools:
    """All of a task's data for a new run; for a continual run the new dataset plus replay."""
    if new_dataset is None:
        # Held-out rows never train, however few (few-shot mode too): a task is judged by its
        # metric on rows it never saw. Without any, a few-shot run stops on its rows' own loss.
        train, evals = library.examples(task, "train"), library.examples(task, "eval")
        return Pools(train, evals or train, "eval", None,
                     select_on_loss=config.mode == "few-shot" and not evals, on_train=not evals)
    train = library.examples(task, "train", dataset_id=new_dataset)
    held = library.examples(task, "eval", dataset_id=new_dataset)
    evals = held or train
    old_ids = [d.id for d in library.list_datasets(task) if d.id != new_dataset]
    old_train = [e for i in old_ids for e in library.examples(task, "train", dataset_id=i)]
    old_evals = [e for i in old_ids for e in library.examples(task, "eval", dataset_id=i)]
    train = train + replay_sample(old_train, len(train), config.replay, config.seed)
    old_eval = eval_set("old", old_evals or old_train, config.eval_size, config.seed)
    return Pools(train, evals, "new", old_eval, on_train=not held)


def change(before: dict, after: dict, metric_name: str) -> float:
    """How much better ``after`` is than ``before`` (lower is better for a loss)."""
    sign = -1.0 if metric_name == "eval_loss" else 1.0
    return sign * (after["metric"] - before["metric"])


def record(slot, tensor: torch.Tensor, version) -> None:
    """Store the evaluations before (the parent's) and after (the new version's) on every
    comparison set, and sum up gain on the new sets and forgetting on the old ones in the
    slot's summary."""
    before = slot.summary.get("before", {})
    after = slot.evaluate_sets(tensor.to(slot.host.device))
    sets = slot.comparison_sets()
    prefix = slot.comparison_prefix
    for name, result in after.items():
        for label, version_id, res in (("before", slot.parent.id if slot.parent else None,
                                        before.get(name)), ("after", version.id, result)):
            if res is None:
                continue
            slot.library.add_evaluation(slot.task, version_id, data_sha256=sets[name].sha256,
                                        baseline=f"{prefix}-{label}-{name}", metrics=res,
                                        n=res["n"])
    slot.summary["after"] = after
    changes = {name: change(before[name], after[name],
                            after[name].get("metric_name", slot.metric_name))
               for name in after if name in before}
    gains = [v for name, v in changes.items() if name in slot.new_sets]
    losses = [-v for name, v in changes.items() if name not in slot.new_sets]
    if gains:
        slot.summary["gain_new"] = sum(gains) / len(gains)
    if losses:
        slot.summary["forgetting_old"] = sum(losses) / len(losses)
