"""The worker's ops for many tasks at once: a joint training job, universal prompts, and
ranking starting points for a new task.

``MultitaskRequests`` is mixed into ``Worker``: it uses the worker's ``library``, ``send``,
``scheduler``, ``ensure_model``, ``_train_config`` and ``_submit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import PromptbankError
from engine.payloads import ProbeProgress, RankedStarts, StartRank
from engine.protocol import ProtocolError


def _names(op: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ProtocolError(f"Argument '{name}' of '{op}' must be a list of task names.")
    return value


class MultitaskRequests:
    """Ops that train several tasks together, build universal prompts and rank starts."""

    library: Any
    scheduler: Any

    def op_train_joint(self, rid: str, args: dict) -> None:
        from engine.training.joint import JointJob

        tasks = [self.library.get_task(t).name for t in _names("train_joint", "tasks",
                                                                args["tasks"])]
        if len(tasks) < 2 or len(set(tasks)) != len(tasks):
            raise ProtocolError("Argument 'tasks' of 'train_joint' must name two or more "
                                "different tasks.")
        configs = [self._train_config(args["config"], t) for t in tasks]
        self._submit(rid, "train_joint", tasks[0],
                     lambda between, on_rows: JointJob.start(
                         self.library, self.ensure_model(rid), tasks, configs, on_rows=on_rows),
                     tuple(tasks))

    def op_universal(self, rid: str, args: dict) -> None:
        from engine.training.config import UNIVERSAL_REPLAY
        from engine.training.universal import UniversalJob

        name = args["task"]
        sources = _names("universal", "sources", args["sources"])
        add = _names("universal", "add", args["add"])
        if bool(sources) == bool(add):
            raise ProtocolError("'universal' needs either 'sources' (create a universal prompt) "
                                "or 'add' (add tasks to one).")
        config = dict(args["config"])
        if add:
            config.setdefault("replay", UNIVERSAL_REPLAY)
        settings = self._train_config(config)
        if sources:
            def start(between, on_rows):
                return UniversalJob.create(self.library, self.ensure_model(rid), name, sources,
                                           settings, instruction=args["instruction"],
                                           on_rows=on_rows)
        else:
            def start(between, on_rows):
                return UniversalJob.update(self.library, self.ensure_model(rid), name, add,
                                           settings, between=between, on_rows=on_rows)
        self._submit(rid, "universal", name, start, (name, *sources, *add))

    def op_rank_starts(self, rid: str, args: dict) -> None:
        from engine.data import read_examples
        from engine.training.config import TrainConfig
        from engine.training.probe import candidates, rank_starts

        task, data = args["task"], args["data"]
        if (task is None) == (data is None):
            raise ProtocolError("'rank_starts' needs either 'task' (a task of the library) or "
                                "'data' (a dataset file).")
        settings = {k: args[k] for k in ("method", "length") if args[k] is not None}
        config = TrainConfig(**settings)
        config.check()
        if task is not None:
            record = self.library.get_task(task)
            examples = self.library.examples(task, "train")
            template, instruction = record.input_template, record.instruction
            instruction = instruction or record.description
        else:
            path = Path(data).expanduser()
            if not path.is_file():
                raise PromptbankError(f"The data file {path} does not exist.",
                                      hint="Check the path.")
            examples = read_examples(path, input_column=args["input_column"],
                                     output_column=args["output_column"]).examples
            template, instruction = args["input_template"], args["instruction"] or ""
        host = self.ensure_model(rid)

        def work(should_stop: Any) -> None:
            found = candidates(self.library, host, config.method, config.length,
                               exclude=task or "", instruction=instruction)

            def on_progress(done: int, total: int) -> None:
                self.send(ProbeProgress(done=done, total=total).event(rid))
                self.scheduler.serve_pending()

            scores = rank_starts(host, examples, found, template=template, config=config,
                                 rows=args["rows"], steps=args["steps"],
                                 on_progress=on_progress)
            self.send(RankedStarts(method=config.method, length=config.length,
                                   starts=[StartRank(**s.to_dict()) for s in scores],
                                   best=scores[0].init if scores else None).event(rid))

        self.scheduler.run_long(rid, "rank_starts", task or str(data), work)
