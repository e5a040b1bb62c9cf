"""PEFT prompt tuning as the baseline benchmarks compare with (its usual concatenated pass)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.model.host import ModelHost


def peft_model(host: ModelHost, length: int, init_text: str | None = None):
    """PEFT's prompt tuning of ``length`` virtual tokens around the loaded model.

    PEFT wraps the loaded model itself (prompt tuning adds no layers to it), so a large model
    is not held twice.
    """
    from peft import PeftModelForCausalLM, PromptTuningConfig, PromptTuningInit, TaskType

    text = {"prompt_tuning_init": PromptTuningInit.TEXT, "prompt_tuning_init_text": init_text,
            "tokenizer_name_or_path": str(host.folder)} if init_text else {}
    config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=length, **text)
    return PeftModelForCausalLM(host.model, config).to(host.device)


def peft_batch(host: ModelHost, rows):
    """Right-padded ids, attention mask and labels (-100 outside the answers) of rows."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), host.chat.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row.ids)
        mask[i, : len(row)] = 1
        labels[i, len(row.prompt_ids): len(row)] = torch.tensor(row.answer_ids)
    return ids.to(host.device), mask.to(host.device), labels.to(host.device)
