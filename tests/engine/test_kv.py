"""The shared-prefix forward equals the naive concatenation (PEFT's way), values and gradients."""

from __future__ import annotations

import pytest
import torch

from engine.kv import data_forward, prompt_past


def _batch(host, texts: list[str]):
    enc = host.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
    return enc["input_ids"], enc["attention_mask"], labels


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def _naive_prompt_logits(host, prompt, ids, mask):
    embeds = host.embeddings()(ids)
    batch, n = ids.shape[0], prompt.shape[0]
    full = torch.cat([prompt.unsqueeze(0).expand(batch, -1, -1), embeds], dim=1)
    full_mask = torch.cat([torch.ones(batch, n, dtype=mask.dtype), mask], dim=1)
    return host.model(inputs_embeds=full, attention_mask=full_mask).logits[:, n:]


TEXTS = ["the movie was great", "a terrible boring film with bad jokes and", "hello"]


@pytest.mark.parametrize("length", [1, 5, 17])
def test_prompt_shared_prefix_matches_concatenation(tiny_host, length):
    torch.manual_seed(length)
    ids, mask, labels = _batch(tiny_host, TEXTS)
    base = torch.randn(length, tiny_host.hidden_size) * 0.5

    naive = base.clone().requires_grad_(True)
    naive_loss = _loss(_naive_prompt_logits(tiny_host, naive, ids, mask), labels)
    naive_loss.backward()

    shared = base.clone().requires_grad_(True)
    logits = data_forward(tiny_host, prompt_past(tiny_host, "prompt", shared), ids, mask)
    shared_loss = _loss(logits, labels)
    shared_loss.backward()

    assert shared_loss.item() == pytest.approx(naive_loss.item(), abs=1e-5)
    assert torch.allclose(shared.grad, naive.grad, atol=1e-5)
    assert shared.grad.abs().sum() > 0


def test_prefix_past_matches_peft_style_past(tiny_host):
    torch.manual_seed(0)
    h = tiny_host
    n = 4
    prefix = torch.randn(h.num_layers, 2, h.num_kv_heads, n, h.head_dim).requires_grad_(True)
    ids, mask, labels = _batch(h, TEXTS)
    logits = data_forward(h, prompt_past(h, "prefix", prefix), ids, mask)
    _loss(logits, labels).backward()
    assert prefix.grad is not None and prefix.grad.abs().sum() > 0

    from transformers import DynamicCache

    past = DynamicCache(ddp_cache_data=[
        (prefix[i, 0].detach().unsqueeze(0).expand(3, -1, -1, -1),
         prefix[i, 1].detach().unsqueeze(0).expand(3, -1, -1, -1)) for i in range(h.num_layers)])
    full_mask = torch.cat([torch.ones(3, n, dtype=mask.dtype), mask], dim=1)
    ref = h.model(input_ids=ids, attention_mask=full_mask, past_key_values=past).logits
    real = mask.bool()
    assert torch.allclose(logits.detach()[real], ref[real], atol=1e-5)


def test_padded_row_computes_what_it_computes_alone(tiny_host):
    torch.manual_seed(1)
    prompt = torch.randn(3, tiny_host.hidden_size)
    past = prompt_past(tiny_host, "prompt", prompt)
    ids, mask, _ = _batch(tiny_host, TEXTS)
    batched = data_forward(tiny_host, past, ids, mask)
    for row, text in enumerate(TEXTS):
        one_ids, one_mask, _ = _batch(tiny_host, [text])
        alone = data_forward(tiny_host, past, one_ids, one_mask)[0]
        assert torch.allclose(batched[row, : alone.shape[0]], alone, atol=1e-5)
