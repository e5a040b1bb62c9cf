"""Universal prompts: one prompt trained on the union of several source tasks' training rows.

Each row goes through its own task's template, and every epoch takes each source's rows up to
a cap (``TrainConfig.mix_cap``), so tasks are drawn in proportion to their size and no large
task dominates. The prompt is a task of kind ``universal`` with versions and lineage like any
other. An update continues its active version on added tasks with replay of the old sources,
and the before/after on every source is stored as evaluations (``universal-before-TASK``,
``universal-after-TASK``), with the gain on the added tasks and the forgetting on the others.
A universal prompt is a starting point for new tasks (``--init universal:NAME``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from engine.api.train_settings import UNIVERSAL_INSTRUCTION
from engine.errors import PromptbankError
from engine.forward.breaks import layer_breaks
from engine.library.records import Task
from engine.model.chat import OnRows
from engine.prompts.initial import initial_tensor, is_mix
from engine.training import continual
from engine.training.batches import SourcesEval, capped_order, encode, eval_set, replay_sample
from engine.training.config import TrainConfig
from engine.training.evaluation import SourcesEvaluator
from engine.training.job import TrainingJob, check_settings
from engine.training.slot import TaskSlot

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost


class UniversalSlot(TaskSlot):
    """A universal prompt's run: rows of several sources, mixed with a per-source cap, and
    evaluated on every source."""

    comparison_prefix = "universal"

    def __init__(self, *args, groups: list[int], sources: list[Task], added: set[str],
                 source_sets: dict, **kwargs) -> None:
        self.groups = groups  # the source of every row (the order below needs it)
        self.sources = sources
        self.new_sets = frozenset(added)
        self.source_sets = source_sets
        super().__init__(*args, **kwargs)

    def _epoch_order(self, epoch: int) -> list[list[int]]:
        return capped_order([len(r) for r in self.rows], self.groups, self.config.batch_size,
                            self.config.seed * 100_003 + epoch, self.config.mix_cap)

    def comparison_sets(self) -> dict:
        return dict(self.source_sets)

    def version_extra(self) -> dict:
        return {"sources": [t.name for t in self.sources],
                "source_ids": [t.id for t in self.sources]}

    def record_version(self, tensor: torch.Tensor, version) -> None:
        continual.record(self, tensor, version)


def _source(library: Library, name: str) -> Task:
    task = library.get_task(name)
    if task.kind == "universal":
        raise PromptbankError(f"The task '{name}' is a universal prompt itself.",
                              hint="Build a universal prompt from ordinary tasks.")
    if not library.examples(name, "train"):
        raise PromptbankError(f"The task '{name}' has no training examples.",
                              hint=f"Add a dataset to it first (promptbank data add {name}).")
    return task


def _source_names(text: Sequence[str]) -> list[str]:
    names = [n.strip() for n in text if n.strip()]
    if len(set(names)) != len(names):
        raise PromptbankError("A task is named more than once.", hint="Name each task once.")
    return names


class UniversalJob(TrainingJob):
    """The training run of a universal prompt (a one-slot job)."""

    @classmethod
    def build_slot(cls, library: Library, host: ModelHost, record, config: TrainConfig, run_id: int,
                   run_config: dict, init: torch.Tensor, parent, parent_tensor,
                   on_rows: OnRows | None = None, *, runtime=None,
                   sources: torch.Tensor | None = None) -> UniversalSlot:
        """The slot of a universal run: every source's rows through its own template (old
        sources replayed when continuing) and evaluation sets. A universal prompt never starts
        from a mix (``create`` refuses one), so there are no mixture ``sources`` to keep."""
        if sources is not None:
            raise PromptbankError("A universal prompt cannot start from a mix of prompts.",
                                  hint="Create it again without --init mix.")
        spec = run_config["universal"]
        sources = [library.get_task_by_id(i) for i in spec["sources"]]
        added = {library.get_task_by_id(i).name for i in spec["added"]}
        examples = {t.name: library.examples(t.name, "train") for t in sources}
        if parent is not None:
            examples.update(_replayed(sources, added, examples, config))
        total = sum(map(len, examples.values()))
        rows, groups = [], []
        for index, task in enumerate(sources):
            def progress(done: int, _: int, before: int = len(rows)) -> None:
                if on_rows is not None:
                    on_rows(before + done, total)

            encoded = encode(host, examples[task.name], template=task.input_template,
                             max_length=config.max_length, on_rows=progress)
            rows += encoded
            groups += [index] * len(encoded)
        sets = {t.name: eval_set(t.name, library.examples(t.name, "eval")
                                 or library.examples(t.name, "train"),
                                 config.eval_size, config.seed) for t in sources}
        evaluator = SourcesEvaluator(host, sources, max_length=config.max_length,
                                     graphs=config.graphs)
        return UniversalSlot(library, host, record, config, run_id, rows=rows,
                             eval_set=SourcesEval("sources", sets), evaluator=evaluator,
                             init_tensor=init, parent=parent, parent_tensor=parent_tensor,
                             groups=groups, sources=sources, added=added, source_sets=sets)

    @classmethod
    def create(cls, library: Library, host: ModelHost, name: str, sources: Sequence[str],
               config: TrainConfig, *,
               instruction: str | None = None,
               on_rows: OnRows | None = None) -> UniversalJob:
        """Check the sources, create the universal task and its run, and return the job."""
        check_settings(host, config)
        names = _source_names(sources)
        if len(names) < 2:
            raise PromptbankError("A universal prompt needs at least two source tasks.",
                                  hint="Give them as --from TASK,TASK.")
        tasks = [_source(library, n) for n in names]
        if any(t.name == name for t in library.list_tasks()):
            raise PromptbankError(f"A task named '{name}' already exists.",
                                  hint="Choose another name, or update that universal prompt "
                                  f"with `promptbank universal update {name} --add TASK`.")
        if is_mix(config.init):
            raise PromptbankError("A universal prompt cannot start from a mix of prompts.",
                                  hint="Leave --init out (its instruction), or use text.")
        description = f"Universal prompt from {', '.join(names)}."
        instruction = instruction or UNIVERSAL_INSTRUCTION
        draft = Task(0, name, "universal", [], description, instruction, None, None, "")
        init = initial_tensor(host, config.method, config.length, config.init, draft,
                              seed=config.seed, library=library)
        library.record_model(host.info().to_data())
        ids = [t.id for t in tasks]
        run_config = {"train": config.to_dict(), "model": host.fingerprint,
                      "universal": {"sources": ids, "added": ids}}
        with library.transaction():
            record = library.create_universal_task(name, description=description,
                                                   instruction=instruction)
            run = library.create_run(name, run_config, kind="universal")
        job = cls(cls.build_slot(library, host, record, config, run.id, run_config, init,
                                 None, None, on_rows))
        job.slot.save_checkpoint()
        return job

    @classmethod
    def update(cls, library: Library, host: ModelHost, name: str, add: Sequence[str],
               config: TrainConfig, *,
               between: Callable[[], None] | None = None,
               on_rows: OnRows | None = None) -> UniversalJob:
        """Continue a universal prompt's active version on added tasks, replaying its old
        sources; the parent is evaluated on every source first."""
        check_settings(host, config)
        record = library.get_task(name)
        if record.kind != "universal":
            raise PromptbankError(f"The task '{name}' is not a universal prompt.",
                                  hint="Use `promptbank continue` for an ordinary task.")
        parent, parent_tensor = continual.parent_of(library, host, name, config)
        old = parent.metrics.get("source_ids")
        if not old:
            raise PromptbankError(f"Version {parent.number} of '{name}' does not list its "
                                  "source tasks.", hint="Create a new universal prompt instead.")
        names = _source_names(add)
        if not names:
            raise PromptbankError("Name the tasks to add.", hint="Use --add TASK[,TASK].")
        tasks = [_source(library, n) for n in names]
        known = [t.name for t in tasks if t.id in old]
        if known:
            raise PromptbankError(f"'{known[0]}' is a source of '{name}' already.",
                                  hint="Add tasks it was not trained on.")
        library.record_model(host.info().to_data())
        config.init = f"continue:v{parent.number}"
        added = [t.id for t in tasks]
        run_config = {"train": config.to_dict(), "model": host.fingerprint,
                      "universal": {"sources": [*old, *added], "added": added}}
        run = library.create_run(name, run_config, parent_version_id=parent.id,
                                 kind="universal")
        job = cls(cls.build_slot(library, host, record, config, run.id, run_config,
                                 parent_tensor.clone(), parent, parent_tensor, on_rows))
        with layer_breaks(host.model, between):
            job.summary["before"] = job.slot.evaluate_sets(parent_tensor)
        job.slot.save_checkpoint()
        return job


def _replayed(sources: list[Task], added: set[str], examples: dict, config: TrainConfig
              ) -> dict:
    """The old sources' rows an update replays: ``config.replay`` of the pool, drawn from
    every old source in proportion to its size (the added tasks count up to the cap)."""
    fresh = sum(min(len(examples[t.name]), config.mix_cap) for t in sources if t.name in added)
    old = [(t.name, e) for t in sources if t.name not in added for e in examples[t.name]]
    kept: dict[str, list] = {t.name: [] for t in sources if t.name not in added}
    for name, example in replay_sample(old, fresh, config.replay, config.seed):
        kept[name].append(example)
    return kept
