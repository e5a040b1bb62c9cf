"""Starting tensors for new prompts: instruction text, label words, vocabulary, random, transfer
from another task's prompt (``task:NAME``) or from a universal prompt (``universal:NAME``).

For ``prefix`` the chosen token embeddings are run through the model once and their per-layer
keys/values become the prefix, so step 0 already acts like the text placed before the chat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from engine.errors import PromptbankError
from engine.methods import get_method
from engine.methods.base import fit_length
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

INITS = ("text", "labels", "vocab", "random")
#: Vocabulary samples come from the first ids, which BPE tokenizers give to common tokens.
COMMON_VOCAB = 5000


def _text_ids(host: ModelHost, text: str) -> torch.Tensor:
    ids = host.tokenizer(text, add_special_tokens=False)["input_ids"]
    return torch.tensor(ids, dtype=torch.long)


def _task_text(task) -> str:
    return (task.instruction or task.description or "").strip()


def init_token_ids(host: ModelHost, init: str, length: int, task, seed: int) -> torch.Tensor | None:
    """Token ids for the text/labels/vocab inits (None for random)."""
    if init == "text":
        text = _task_text(task)
        if not text:
            raise PromptbankError(
                f"The task '{task.name}' has no instruction or description to start from.",
                hint="Give the task an instruction, or use --init labels, vocab or random.")
        return fit_length(_text_ids(host, text), length)
    if init == "labels":
        if not task.labels:
            raise PromptbankError(f"The task '{task.name}' has no labels to start from.",
                                  hint="Use --init text, vocab or random.")
        return fit_length(_text_ids(host, " " + " ".join(task.labels)), length)
    if init == "vocab":
        gen = torch.Generator().manual_seed(seed)
        top = min(COMMON_VOCAB, int(host.config.vocab_size))
        return torch.randint(0, top, (length,), generator=gen)
    return None


def _embeddings(host: ModelHost, init: str, length: int, task, seed: int) -> torch.Tensor:
    """Token embeddings as the model's embedding module gives them: some families scale
    them there (Gemma 3), and a start must act like the tokens it comes from."""
    module = host.embeddings()
    ids = init_token_ids(host, init, length, task, seed)
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
                   library: Library | None = None) -> torch.Tensor:
    """The starting tensor of a new ``method`` prompt of ``length`` tokens (float32, CPU)."""
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
        embeds = _embeddings(host, init, length, task, seed)
        tensor = get_method(method).from_embeddings(host, embeds)
    else:
        raise PromptbankError(f"Unknown init '{init}'.",
                              hint="Use text, labels, vocab, random, task:OTHER or universal:NAME.")
    assert tuple(tensor.shape) == prompt_shape(method, length, ModelGeometry.of(host))
    return tensor.float().contiguous()
