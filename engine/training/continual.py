"""Continual learning: a new version trained from the task's active one on new data, with
replayed earlier rows, an optional pull towards the parent, and the gain on the new data and
the forgetting on the old measured before and after."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.data import Example
from engine.methods import get_method
from engine.prompts import ModelGeometry, SoftPrompt
from engine.training.config import TrainConfig
from engine.training.data import EvalSet, eval_set, replay_sample


@dataclass
class Pools:
    """What a run trains on and evaluates on (and, when continuing, the old data's eval set)."""

    train: list[Example]
    evals: list[Example]
    eval_name: str
    old_eval: EvalSet | None


def parent_of(library, host, task: str, config: TrainConfig) -> tuple:
    """The active version to continue and its tensor; the run takes its method and length."""
    parent = library.get_version(task)
    if parent.method != config.method and config.lr == get_method(config.method).default_lr:
        config.lr = get_method(parent.method).default_lr
    config.method, config.length = parent.method, parent.length
    prompt = SoftPrompt.load(library.version_path(parent), sha256=parent.sha256)
    prompt.check_fits(ModelGeometry.of(host))
    return parent, prompt.tensor


def pools(library, task: str, config: TrainConfig, new_dataset: int | None) -> Pools:
    """All of a task's data for a new run; for a continual run the new dataset plus replay."""
    if new_dataset is None:
        train = library.examples(task, "train")
        return Pools(train, library.examples(task, "eval") or train, "eval", None)
    train = library.examples(task, "train", dataset_id=new_dataset)
    evals = library.examples(task, "eval", dataset_id=new_dataset) or train
    old_ids = [d.id for d in library.list_datasets(task) if d.id != new_dataset]
    old_train = [e for i in old_ids for e in library.examples(task, "train", dataset_id=i)]
    old_evals = [e for i in old_ids for e in library.examples(task, "eval", dataset_id=i)]
    train = train + replay_sample(old_train, len(train), config.replay, config.seed)
    old_eval = eval_set("old", old_evals or old_train, config.eval_size, config.seed)
    return Pools(train, evals, "new", old_eval)


def record(job, tensor: torch.Tensor, version) -> None:
    """Store the before/after evaluations on the new and old data and sum up gain and
    forgetting in the job's summary."""
    before = job.summary.get("before", {})
    after = job.evaluate_sets(tensor.to(job.host.device))
    sets = {"new": job.eval_set, "old": job.old_eval}
    for name, result in after.items():
        for label, version_id, res in (("before", job.parent.id, before.get(name)),
                                       ("after", version.id, result)):
            if res is None:
                continue
            job.library.add_evaluation(job.task, version_id, data_sha256=sets[name].sha256,
                                       baseline=f"continual-{label}-{name}", metrics=res,
                                       n=res["n"])
    sign = -1.0 if job.metric_name == "eval_loss" else 1.0
    job.summary["after"] = after
    if "new" in before:
        job.summary["gain_new"] = sign * (after["new"]["metric"] - before["new"]["metric"])
    if "old" in before and "old" in after:
        job.summary["forgetting_old"] = sign * (before["old"]["metric"]
                                                - after["old"]["metric"])
