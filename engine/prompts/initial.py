"""Starting tensors for new prompts: instruction text, label words, the task's name and outputs,
vocabulary, random, transfer from another task's prompt (``task:NAME``) or from a universal
prompt (``universal:NAME``); ``auto`` picks the first the task has. ``mix`` (or
``mix:A,B``) starts the task's own part as ``auto`` does and mixes it with the library's
prompts (``engine.training.params``).

For ``prefix`` the chosen token embeddings are run through the model once and their per-layer
keys/values become the prefix, so step 0 already acts like the text placed before the chat.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from engine.api.training import INITS
from engine.errors import PromptbankError
from engine.methods import get_method
from engine.methods.base import fit_length
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

#: Training outputs an ``examples`` start reads (a prompt of 20 tokens holds only a few).
EXAMPLE_OUTPUTS = 5
#: Vocabulary samples come from the first ids, which BPE tokenizers give to common tokens.
COMMON_VOCAB = 5000


def _text_ids(host: ModelHost, text: str) -> torch.Tensor:
    ids = host.tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def _task_text(task) -> str:
    return (task.instruction or task.description or "").strip()


def resolve_init(init: str, task, outputs: Sequence[str] = ()) -> tuple[str, str]:
    """The init a run starts from and, when ``auto`` had to fall back, why (else "").

    ``auto`` takes the task's instruction or description, else its label words (classify),
    else its name and a few training ``outputs``, else common vocabulary. An explicit
    ``text`` on a task without text is refused with the fix.
    """
    if init == "text" and not _task_text(task):
        raise PromptbankError(
            f"The task '{task.name}' has no instruction or description to start from.",
            hint=f"Give it one (promptbank task edit {task.name} --instruction \"...\"), or "
                 "leave --init out to start from what the task has.")
    if init != "auto":
        return init, ""
    if _task_text(task):
        return "text", ""
    if task.labels:
        return "labels", "The task has no instruction, so the prompt starts from its label words."
    if any(o.strip() for o in outputs):
        return "examples", ("The task has no instruction or labels, so the prompt starts from "
                            "its name and a few training outputs.")
    return "vocab", ("The task has no instruction, labels or outputs to read, so the prompt "
                     "starts from common vocabulary.")


def _examples_text(task, outputs: Sequence[str]) -> str:
    picked = [o.strip() for o in outputs if o.strip()][:EXAMPLE_OUTPUTS]
    return f"{task.name}: " + " | ".join(picked)


def init_token_ids(host: ModelHost, init: str, length: int, task, seed: int,
                   outputs: Sequence[str] = ()) -> torch.Tensor | None:
    """Token ids for the text/labels/examples/vocab inits (None for random)."""
    init, _why = resolve_init(init, task, outputs)
    if init == "text":
        return fit_length(_text_ids(host, _task_text(task)), length)
    if init == "examples":
        return fit_length(_text_ids(host, _examples_text(task, outputs)), length)
    if init == "labels":
        if not task.labels:
            raise PromptbankError(f"The task '{task.name}' has no labels to start from.",
                                  hint="Leave --init out, or use text, vocab or random.")
        return fit_length(_text_ids(host, " " + " ".join(task.labels)), length)
    if init == "vocab":
        gen = torch.Generator().manual_seed(seed)
        top = min(COMMON_VOCAB, int(host.config.vocab_size))
        return torch.randint(0, top, (length,), generator=gen)
    return None


def _embeddings(host: ModelHost, init: str, length: int, task, seed: int,
                outputs: Sequence[str]) -> torch.Tensor:
    """Token embeddings as the model's embedding module gives them: some families scale
    them there (Gemma 3), and a start must act like the tokens it comes from."""
    module = host.embeddings()
    ids = init_token_ids(host, init, length, task, seed, outputs)
    with torch.no_grad():
        if ids is not None:
            return module(ids.to(host.device)).float().cpu()
        common = torch.arange(min(COMMON_VOCAB, int(host.config.vocab_size)), device=host.device)
        scale = module(common).float().std().cpu()
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(length, module.embedding_dim, generator=gen) * scale


def transfer_tensor(library: Library, host: ModelHost, other: str, method: str,
                    length: int) -> torch.Tensor:
    """Another task's active prompt (same method and model), repeated or cut to ``length``."""
    version = library.get_version(other)
    return version_tensor(library, host, version, other, method, length)


def is_mix(init: str) -> bool:
    """Whether ``init`` is a mixed start (``mix`` or ``mix:A,B``)."""
    return init.partition(":")[0] == "mix"


def library_prompts(library: Library, host: ModelHost, method: str, length: int, *,
                    exclude: str = "", names: Sequence[str] = ()):
    """(task, active version, tensor) of the library's prompts of ``method`` and ``length`` on
    this model: every task's but ``exclude``'s, or only those ``names``."""
    tasks = ([library.get_task(n) for n in names] if names else
             [t for t in library.list_tasks() if t.name != exclude])
    for task in tasks:
        try:
            version = library.get_version(task.name)
        except PromptbankError:
            if names:
                raise
            continue
        if (version.method, version.length, version.fingerprint) != (
                method, length, host.fingerprint):
            if names:
                raise PromptbankError(
                    f"The task '{task.name}' has no {method} prompt of length {length} on this "
                    "model to mix in.", hint="Mix prompts of the run's method and length.")
            continue
        yield task, version, version_tensor(library, host, version, task.name, method, length)


def mixture_sources(library: Library, host: ModelHost, init: str, method: str, length: int,
                    task: str) -> tuple[str, torch.Tensor]:
    """A ``mix`` start's sources: (the init naming them, ``mix:A,B``; their stacked tensors)."""
    names = [n.strip() for n in init.partition(":")[2].split(",") if n.strip()]
    if task in names:
        raise PromptbankError(f"The task '{task}' cannot mix in its own prompt.",
                              hint="Name other tasks, or continue it instead.")
    found = list(library_prompts(library, host, method, length, exclude=task, names=names))
    if not found:
        raise PromptbankError(
            f"The library has no other {method} prompt of length {length} on this model to mix "
            f"'{task}' with.", hint="Train another task first, or use --init auto.")
    return ("mix:" + ",".join(t.name for t, _, _ in found),
            torch.stack([tensor.float() for _, _, tensor in found]))


def version_tensor(library: Library, host: ModelHost, version, task: str, method: str, length: int
                   ) -> torch.Tensor:
    """A stored version's prompt as the start of a ``method`` prompt of ``length`` tokens."""
    if version.method != method:
        raise PromptbankError(
            f"The task '{task}' has a {version.method} prompt, not a {method} one.",
            hint=f"Use --method {version.method}, or another init.")
    source = SoftPrompt.load(library.version_path(version), sha256=version.sha256)
    geometry = ModelGeometry.of(host)
    source.check_fits(geometry)
    return get_method(method).fit_length(source.tensor, length, geometry)


def initial_tensor(host: ModelHost, method: str, length: int, init: str, task, *, seed: int = 0,
                   library: Library | None = None,
                   outputs: Sequence[str] = ()) -> torch.Tensor:
    """The starting tensor of a new ``method`` prompt of ``length`` tokens (float32, CPU);
    ``outputs`` are training outputs for the ``examples`` start."""
    if length < 1:
        raise PromptbankError("The prompt length must be at least 1.", hint="Use --length 20.")
    if init.startswith(("task:", "universal:")):
        if library is None:
            raise PromptbankError("Transfer from another task needs the library.")
        kind, other = init.split(":", 1)
        if kind == "universal" and library.get_task(other).kind != "universal":
            raise PromptbankError(f"The task '{other}' is not a universal prompt.",
                                  hint=f"Use --init task:{other} to start from its prompt.")
        tensor = transfer_tensor(library, host, other, method, length)
    elif init in INITS:
        embeds = _embeddings(host, init, length, task, seed, outputs)
        tensor = get_method(method).from_embeddings(host, embeds)
    else:
        raise PromptbankError(f"Unknown init '{init}'.",
                              hint=f"Use {', '.join(INITS)}, task:OTHER, universal:NAME or mix.")
    assert tuple(tensor.shape) == prompt_shape(method, length, ModelGeometry.of(host))
    return tensor.float().contiguous()
