"""Training rows and batches: chat-formatted inputs, loss on the answer only, right padding.

A row is the chat template applied to the input (the prompt part, no loss) followed by the
output and the end-of-turn token (the answer part, with loss). Over-long rows are truncated:
the answer keeps at most half the budget, then the prompt loses tokens from its start, because
its end (the input's last words and the assistant header) is what the answer follows.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

import torch

IGNORE = -100
#: End-of-turn markers of common chat templates, tried before the tokenizer's eos token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
DEFAULT_MAX_LENGTH = 256


def end_of_turn(tokenizer) -> str:
    """The token that closes an assistant turn in this tokenizer's chat format."""
    vocab = tokenizer.get_vocab()
    for token in END_OF_TURN_TOKENS:
        if token in vocab:
            return token
    return tokenizer.eos_token or ""


def format_input(text: str, template: str | None = None) -> str:
    """The user message for an input: the task's template with ``{input}`` filled, or the text."""
    if template and "{input}" in template:
        return template.replace("{input}", text)
    return text


@dataclass
class Row:
    """One tokenised example: prompt ids (no loss) then answer ids (loss)."""

    prompt_ids: list[int]
    answer_ids: list[int]

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.answer_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


@dataclass
class Batch:
    """Right-padded tensors of a batch; ``labels`` is IGNORE outside the answers."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    @property
    def tokens(self) -> int:
        """Real (non-padding) data tokens."""
        return int(self.attention_mask.sum())

    def target_mask(self) -> torch.Tensor:
        """Positions whose next token is an answer token (where logits are needed)."""
        keep = torch.zeros_like(self.attention_mask, dtype=torch.bool)
        keep[:, :-1] = self.labels[:, 1:] != IGNORE
        return keep

    def targets(self) -> torch.Tensor:
        """The answer tokens, flattened in the order of ``target_mask`` positions."""
        return self.labels[:, 1:][self.labels[:, 1:] != IGNORE]

    def to(self, device) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device),
                     self.labels.to(device))


def encode_row(host, text: str, output: str, *, template: str | None = None,
               max_length: int = DEFAULT_MAX_LENGTH) -> Row:
    """Tokenise one example through the model's chat template, truncating as the module says."""
    tok = host.tokenizer
    prompt = tok(host.chat_text(format_input(text, template)),
                 add_special_tokens=False)["input_ids"]
    answer = tok(output + end_of_turn(tok), add_special_tokens=False)["input_ids"]
    answer = answer[: max(1, max_length // 2)]
    keep = max(1, max_length - len(answer))
    return Row(prompt[-keep:], answer)


def collate(rows: Sequence[Row], pad_id: int) -> Batch:
    """Right-pad rows into one batch; padding has mask 0 and no loss."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    for i, row in enumerate(rows):
        n, p = len(row), len(row.prompt_ids)
        ids[i, :n] = torch.tensor(row.ids)
        mask[i, :n] = 1
        labels[i, p:n] = torch.tensor(row.answer_ids)
    return Batch(ids, mask, labels)


def length_grouped_order(lengths: Sequence[int], batch_size: int, seed: int,
                         *, group: int = 32) -> list[list[int]]:
    """Batches of row indices for one epoch: shuffled, sorted by length within groups of
    ``group`` batches (so a batch wastes little padding), batch order shuffled again.

    Deterministic in ``seed`` so a resumed run sees the same order.
    """
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    span = batch_size * group
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        chunk = sorted(order[start:start + span], key=lambda i: lengths[i])
        batches.extend(chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
