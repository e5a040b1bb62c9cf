"""Losses and label scores of batches run after a prompt's keys/values (engine.kv).

Logits are computed only where an answer token is predicted, which saves the large vocabulary
projection on every other position.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from engine.batching import DEFAULT_MAX_LENGTH, collate, encode_row
from engine.kv import Past, data_forward


def target_logprobs(host, past: Past, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of every answer token and the batch row each belongs to."""
    keep = batch.target_mask()
    logits = data_forward(host, past, batch.input_ids, batch.attention_mask,
                          logits_to_keep=keep)
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = batch.targets()
    logp = -F.cross_entropy(logits, targets, reduction="none")
    return logp, keep.nonzero()[:, 0]


def batch_loss(host, past: Past, batch) -> torch.Tensor:
    """Mean cross-entropy over the answer tokens of a batch."""
    logp, _ = target_logprobs(host, past, batch)
    return -logp.mean()


@torch.no_grad()
def label_logliks(host, past: Past, inputs: Sequence[str], labels: Sequence[str], *,
                  template: str | None = None, batch_size: int = 16,
                  max_length: int = DEFAULT_MAX_LENGTH) -> torch.Tensor:
    """Summed log-likelihood of each label (plus end-of-turn) for each input: (inputs, labels).

    Whole label sequences are scored, so labels that share their first tokens are still told
    apart exactly.
    """
    rows = [encode_row(host, text, label, template=template, max_length=max_length)
            for text in inputs for label in labels]
    pad = host.tokenizer.pad_token_id
    scores = torch.empty(len(rows))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = collate([rows[i] for i in idx], pad).to(host.device)
        logp, row = target_logprobs(host, past, batch)
        sums = torch.zeros(len(idx), device=logp.device).index_add_(0, row, logp)
        scores[idx] = sums.cpu()
    return scores.reshape(len(inputs), len(labels))


def rank_accuracy(scores: torch.Tensor, labels: Sequence[str], gold: Sequence[str]) -> float:
    """Share of inputs whose best-scoring label is the gold one."""
    if not gold:
        return 0.0
    picked = scores.argmax(dim=1).tolist()
    return sum(labels[p] == g for p, g in zip(picked, gold, strict=True)) / len(gold)
