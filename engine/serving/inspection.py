"""Looking inside trained prompts: nearest vocabulary tokens and task-by-task similarity.

Computed in the engine so the desktop can show them without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from engine.errors import PromptbankError
from engine.methods import get_method

if TYPE_CHECKING:
    from engine.model.host import ModelHost

POOLINGS = ("mean", "tokens")


def nearest_tokens(host: ModelHost, prompt: Any, k: int = 5) -> list[list[dict[str, Any]]]:
    """For each virtual token of a ``prompt``-method SoftPrompt, the ``k`` vocabulary tokens
    whose input embeddings are nearest by cosine: ``[[{id, token, score}, …], …]``."""
    if not get_method(prompt.method).input_embeddings:
        raise PromptbankError(
            f"Nearest tokens do not apply to a {prompt.method}: its vectors are per-layer "
            "keys and values, not input embeddings.",
            hint="Use a version trained with the 'prompt' method.")
    table = host.embeddings().weight.detach().to("cpu", torch.float32)
    if prompt.tensor.shape[1] != table.shape[1]:
        raise PromptbankError(
            f"The prompt's vectors have size {prompt.tensor.shape[1]} but the model's "
            f"embeddings have size {table.shape[1]}.", hint="Load the model it was trained on.")
    k = max(1, min(int(k), table.shape[0]))
    with torch.no_grad():
        sims = F.normalize(prompt.tensor.float(), dim=-1) @ F.normalize(table, dim=-1).T
        scores, ids = sims.topk(k, dim=-1)
    tokenizer = host.tokenizer
    return [
        [{"id": int(i), "token": tokenizer.decode([int(i)]), "score": round(float(s), 4)}
         for s, i in zip(row_scores, row_ids, strict=True)]
        for row_scores, row_ids in zip(scores, ids, strict=True)
    ]


def token_vectors(prompt: Any) -> torch.Tensor:
    """A prompt's tensor as one vector per virtual token: (length, features); for a prefix a
    token's vector is every layer's key and value at that position."""
    return get_method(prompt.method).token_rows(prompt.tensor.float())


def prompt_similarity(a: torch.Tensor, b: torch.Tensor, pooling: str = "mean") -> float:
    """Cosine similarity of two prompts' token vectors (SPoT's two task-embedding measures).

    ``mean``: cosine of the mean-pooled vectors; ``tokens``: mean cosine over all pairs of
    virtual tokens. Both work for prompts of different lengths.
    """
    if pooling == "mean":
        return float(F.cosine_similarity(a.mean(0), b.mean(0), dim=0))
    if pooling == "tokens":
        return float((F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T).mean())
    raise PromptbankError(f"Unknown pooling '{pooling}'.", hint="Use 'mean' or 'tokens'.")


def similarity(prompts: dict[str, Any], pooling: str = "mean") -> dict[str, Any]:
    """Task-by-task cosine similarity of prompts of one method on one model.

    Returns ``{"tasks": [...], "matrix": [[...]], "pooling": ...}`` (a symmetric matrix).
    """
    if pooling not in POOLINGS:
        raise PromptbankError(f"Unknown pooling '{pooling}'.", hint="Use 'mean' or 'tokens'.")
    methods = {p.method for p in prompts.values()}
    if len(methods) > 1:
        raise PromptbankError("Only prompts of one method can be compared.",
                              hint="Compare 'prompt' versions and 'prefix' versions apart.")
    shapes = {tuple(token_vectors(p).shape[1:]) for p in prompts.values()}
    if len(shapes) > 1:
        raise PromptbankError("These prompts were made for models of different sizes.",
                              hint="Compare prompts trained on the same model.")
    names = list(prompts)
    vectors = [token_vectors(prompts[n]) for n in names]
    with torch.no_grad():
        matrix = [[round(prompt_similarity(a, b, pooling), 4) for b in vectors]
                  for a in vectors]
    return {"tasks": names, "matrix": matrix, "pooling": pooling}
