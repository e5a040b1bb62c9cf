"""Loading a 16-bit folder in the other 16-bit type: read as stored (mapped, no copy) and cast
a tensor at a time, the model is the one transformers builds reading straight in that type."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.model.device import load_weights, stored_dtype
from tests.tiny_model import FAMILIES, build_tiny_model


def _half_folder(tmp_path, family: str):
    folder = build_tiny_model(tmp_path / family, family=family, lively=True)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float16)
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_float16_folder_loaded_in_bfloat16_is_transformers_own_bfloat16_load(tmp_path,
                                                                               family):
    folder = _half_folder(tmp_path, family)
    assert stored_dtype(folder, torch.bfloat16) == torch.float16
    ours = load_weights(folder, torch.bfloat16).eval()
    theirs = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).eval()
    assert ours.dtype == torch.bfloat16 and ours.config.dtype == torch.bfloat16
    for (name, mine), (_, reference) in zip(ours.state_dict().items(),
                                            theirs.state_dict().items(), strict=True):
        assert mine.dtype == reference.dtype and torch.equal(mine, reference), name
    for (name, mine), (_, reference) in zip(ours.named_buffers(), theirs.named_buffers(),
                                            strict=True):
        assert mine.dtype == reference.dtype and torch.equal(mine, reference), name
    if ours.config.tie_word_embeddings:
        assert ours.get_output_embeddings().weight is ours.get_input_embeddings().weight
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.no_grad():
        assert torch.equal(ours(ids).logits, theirs(ids).logits)


def test_float32_on_either_side_reads_as_asked(tmp_path):
    half = _half_folder(tmp_path, "llama")
    assert stored_dtype(half, torch.float32) == torch.float32
    single = build_tiny_model(tmp_path / "single")  # float32 as built
    assert stored_dtype(single, torch.bfloat16) == torch.bfloat16
