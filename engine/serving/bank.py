"""The prompt bank: soft prompts of many tasks held on the device as per-layer keys/values.

Each (task, version)'s prompt keys/values are computed once and kept in a bounded LRU, and so
are the keys/values of the template head its rows start with (``engine.forward.start``), so a
request runs only its own tokens; switching tasks is a dictionary lookup. The catalogue stays
the source of truth: an evicted library prompt is simply read again. Prompts registered in
memory (tests, benchmarks, prompts not yet saved) are kept until ``invalidate``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from engine.errors import PromptbankError
from engine.forward.decoder import Past, embeddings_past, extend_past, unpack
from engine.forward.start import Start
from engine.methods import get_method
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

#: ("lib", task, version id) for catalogue prompts, ("mem", task, number) for registered ones.
Key = tuple[str, str, int]


log = logging.getLogger("promptbank.bank")


@dataclass
class TaskSpec:
    """What the runtime needs to know about a task besides its prompt."""

    name: str
    kind: str = "generate"
    labels: list[str] = field(default_factory=list)
    input_template: str | None = None
    instruction: str = ""


@dataclass
class ResolvedPrompt:
    """A task's prompt ready to serve: its keys/values and which version they are.

    ``packed`` holds all keys/values in one (layers, 2, kv_heads, length, head_dim) tensor;
    ``past`` is per-layer views of it, so a mixed batch places a row with one copy.
    """

    key: Key
    packed: torch.Tensor
    number: int
    version_id: int | None

    @property
    def length(self) -> int:
        return int(self.packed.shape[3])

    @property
    def past(self) -> Past:
        return unpack(self.packed)


class PromptBank:
    """Prompt keys/values of any number of tasks and versions, resident on the host's device."""

    def __init__(self, host: ModelHost, library: Library | None = None, *, max_prompts: int = 256,
                 force: bool = False):
        if max_prompts < 1:
            raise PromptbankError("The prompt bank must hold at least one prompt.",
                                  hint="Use max_prompts of 1 or more.")
        self.host = host
        self.library = library
        self.max_prompts = max_prompts
        self.force = force
        self.geometry = ModelGeometry.of(host)
        self._cache: OrderedDict[Key, torch.Tensor] = OrderedDict()
        self._heads: OrderedDict[tuple, torch.Tensor] = OrderedDict()
        self._pinned: dict[str, dict[int, SoftPrompt]] = {}
        self._specs: dict[str, TaskSpec] = {}

    def __len__(self) -> int:
        """Number of prompts whose keys/values are resident now."""
        return len(self._cache)

    def register(self, spec: TaskSpec | str, prompt: SoftPrompt, *, version: int = 1) -> None:
        """Hold a prompt that is not (or not yet) in a library, as ``version`` of a task."""
        spec = TaskSpec(spec) if isinstance(spec, str) else spec
        prompt.check_fits(self.geometry, force=self.force)
        self._specs[spec.name] = spec
        self._pinned.setdefault(spec.name, {})[version] = prompt
        self._cache.pop(("mem", spec.name, version), None)

    def describe(self, spec: TaskSpec) -> None:
        """Know a task that is not in a library, without a prompt (baselines run it)."""
        self._specs[spec.name] = spec

    def spec(self, task: str) -> TaskSpec:
        """The task's kind, labels and template (registered, else from the library)."""
        if task in self._specs:
            return self._specs[task]
        record = self._library_task(task)
        return TaskSpec(record.name, record.kind, list(record.labels), record.input_template,
                        record.instruction or "")

    def resolve(self, task: str, version: int | None = None) -> ResolvedPrompt:
        """The keys/values of ``version`` of ``task`` (None: the active one), computed once."""
        pinned = self._pinned.get(task)
        if pinned:
            number = max(pinned) if version is None else version
            if number not in pinned:
                known = ", ".join(map(str, sorted(pinned)))
                raise PromptbankError(f"The task '{task}' has no version {number}.",
                                      hint=f"Known versions: {known}.")
            key: Key = ("mem", task, number)
            return self._serve(key, number, None, lambda: pinned[number])
        self._library_task(task)
        record = self.library.get_version(task, version)
        key = ("lib", task, record.id)
        return self._serve(key, record.number, record.id, lambda: self._load(record))

    def invalidate(self, task: str | None = None) -> None:
        """Drop cached keys/values (of one task, or all); the next request recomputes them."""
        for key in [k for k in self._cache if task is None or k[1] == task]:
            del self._cache[key]
        for key in [k for k in self._heads if task is None or (k[0] and k[0][1] == task)]:
            del self._heads[key]

    def forget(self, task: str) -> None:
        """Remove a registered task and its prompts from the bank."""
        self.invalidate(task)
        self._specs.pop(task, None)
        self._pinned.pop(task, None)

    def _library_task(self, task: str):
        if self.library is None:
            raise PromptbankError(f"Unknown task '{task}'.",
                                  hint="Open a library or register the task's prompt first.")
        return self.library.get_task(task)

    def _serve(self, key: Key, number: int, version_id: int | None, load) -> ResolvedPrompt:
        packed = self._cache.get(key)
        if packed is None:
            prompt = load()
            with torch.no_grad():
                packed = get_method(prompt.method).keys_values(self.host, prompt.tensor)
            self._cache[key] = packed
            while len(self._cache) > self.max_prompts:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return ResolvedPrompt(key, packed, number, version_id)

    def start(self, resolved: ResolvedPrompt | None, head: list[int]) -> Start:
        """What rows of a prompt (None: no prompt) whose contexts begin with ``head`` start
        from; the head's keys/values after the prompt are computed once and kept."""
        key = (resolved.key if resolved is not None else None, tuple(head))
        packed = resolved.packed if resolved is not None else None
        headed = self._heads.get(key)
        if headed is None and head:
            ids = torch.tensor(head, device=self.host.device)
            with torch.no_grad():
                headed = (extend_past(self.host, packed, ids) if packed is not None else
                          embeddings_past(self.host, self.host.embeddings()(ids)))
            self._heads[key] = headed
            while len(self._heads) > self.max_prompts:
                self._heads.popitem(last=False)
        elif headed is not None:
            self._heads.move_to_end(key)
        return Start(packed, list(head), headed)

    def _load(self, record) -> SoftPrompt:
        prompt = SoftPrompt.load(self.library.version_path(record), sha256=record.sha256)
        prompt.check_fits(self.geometry, force=self.force)
        trained = prompt.extra.get("quantization", "")
        if trained != getattr(self.host, "quantization", ""):
            log.warning("%s v%d was trained on the %s base of this model and runs on the %s "
                        "one; its answers may differ slightly.", prompt.task, record.number,
                        trained or "full-precision", self.host.quantization or "full-precision")
        return prompt
