"""The one forward path is exact: a training pass (prompt and shared head run once, then only
the rest of each row) gives the loss and gradients of the naive concatenation (PEFT's way),
rows of several prompts share a pass without changing each other, and a padded row computes
what it computes alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from transformers import DynamicCache

from engine.methods import get_method
from engine.prompts.soft_prompt import ModelGeometry
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes

EXAMPLES = [("the movie was great", "positive"), ("bad", "negative"),
            ("a terrible boring film with bad jokes and the acting", "negative sentiment")]
TEMPLATE = "Review: {input}\nSentiment?"


def _prompt(host, method: str, length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = get_method(method).shape(length, ModelGeometry.of(host))
    return (torch.randn(shape, generator=gen) * 0.5).to(host.device)


def _naive_loss(host, method: str, tensor: torch.Tensor, rows) -> torch.Tensor:
    """Mean answer-token cross-entropy of the whole rows, each run alone after its prompt."""
    total, count = 0.0, 0
    for row in rows:
        ids = torch.tensor([row.ids], device=host.device)
        if method == "prompt":
            embeds = torch.cat([tensor.to(host.dtype).unsqueeze(0), host.embeddings()(ids)], dim=1)
            logits = host.model(inputs_embeds=embeds).logits[0, tensor.shape[0]:]
        else:
            cache = DynamicCache(ddp_cache_data=[(layer[0].unsqueeze(0), layer[1].unsqueeze(0))
                                                 for layer in tensor.to(host.dtype)])
            mask = torch.ones(1, tensor.shape[3] + ids.shape[1], dtype=torch.long,
                              device=host.device)
            logits = host.model(input_ids=ids, past_key_values=cache,
                                attention_mask=mask).logits[0]
        start = len(row.prompt_ids)
        losses = F.cross_entropy(logits[start - 1:-1].float(), ids[0, start:], reduction="none")
        total = total + losses.sum()
        count += len(row.answer_ids)
    return total / count


def _ours(host, method: str, tensor: torch.Tensor, rows, **passes_args):
    params = PromptParams(get_method(method), tensor, ModelGeometry.of(host))
    passes = Passes(host, [params], [host.chat.head(template=TEMPLATE)], **passes_args)
    count = sum(len(r.answer_ids) for r in rows)
    sums, grads = passes.run(Pass(rows, [0] * len(rows), [1.0 / count] * len(rows)))
    return passes, sums[0], grads[0]


#: float32: both sides compute the same sums in another order, so they agree to rounding.
#: bfloat16 keeps 8 bits of mantissa (relative rounding 2^-9 ≈ 2e-3 per operation); the two
#: sides round at different places (other matrix shapes, the head's keys/values stored in
#: bf16 before the rest attends to them). The loss is summed in float32 from bf16 logits and
#: moves by about 1e-6 relative on a CPU; gradients keep their direction (cosine 0.99998) and
#: size to ~2e-3. The bf16 form allows one rounding step on the loss (2e-3), the gradient's
#: direction to cosine 0.999 and its size to 2 %, room for a GPU's other kernels.
PRECISION = {"tiny_host": None, "tiny_host_bf16": (2e-3, 0.999, 0.02)}


def _same(loss, grad, naive_loss, naive_grad, tolerance) -> None:
    if tolerance is None:
        assert loss.item() == pytest.approx(naive_loss.item(), abs=1e-5)
        assert torch.allclose(grad, naive_grad, atol=1e-5)
        return
    rel, cosine, size = tolerance
    assert loss.item() == pytest.approx(naive_loss.item(), rel=rel)
    assert F.cosine_similarity(grad.flatten(), naive_grad.flatten(), dim=0) > cosine
    assert grad.norm().item() == pytest.approx(naive_grad.norm().item(), rel=size)


@pytest.mark.parametrize("fixture", list(PRECISION))
@pytest.mark.parametrize(("method", "length"), [("prompt", 1), ("prompt", 17), ("prefix", 4)])
def test_training_pass_matches_the_concatenation(request, fixture, method, length):
    host = request.getfixturevalue(fixture)
    rows = host.chat.rows(EXAMPLES, template=TEMPLATE)
    base = _prompt(host, method, length, seed=length)
    naive = base.clone().requires_grad_(True)
    naive_loss = _naive_loss(host, method, naive, rows)
    naive_loss.backward()
    passes, loss, grad = _ours(host, method, base, rows)
    assert all(passes._headed(0, row) for row in rows)  # the head really was shared
    assert len(passes.heads[0]) > 5
    _same(loss, grad, naive_loss, naive.grad, PRECISION[fixture])
    assert grad.abs().sum() > 0


def test_rows_without_the_head_get_their_own_slot(tiny_host):
    """A row that does not start with the head runs whole after the bare prompt, beside rows
    that share the head; a truncated row keeps the head. The result is still exact."""
    long_input = "the movie was great " * 30
    rows = tiny_host.chat.rows([*EXAMPLES, (long_input, "positive")], template=TEMPLATE,
                               max_length=48)
    rows += tiny_host.chat.rows(EXAMPLES[:1])  # no template: not the head of TEMPLATE
    base = _prompt(tiny_host, "prefix", 3, seed=5)
    passes, loss, grad = _ours(tiny_host, "prefix", base, rows)
    assert rows[3].truncated and len(rows[3]) == 48 and passes._headed(0, rows[3])
    assert not passes._headed(0, rows[-1])
    naive = base.clone().requires_grad_(True)
    naive_loss = _naive_loss(tiny_host, "prefix", naive, rows)
    naive_loss.backward()
    assert loss.item() == pytest.approx(naive_loss.item(), abs=1e-5)
    assert torch.allclose(grad, naive.grad, atol=1e-5)


def test_prompts_sharing_a_pass_get_their_own_tasks_gradients(tiny_host):
    """Two prompts of different methods and lengths in one pass: each prompt's loss and
    gradient equal those of a pass holding only its own rows."""
    rows = tiny_host.chat.rows(EXAMPLES * 2, template=TEMPLATE)
    owners = [0, 1, 0, 1, 1, 0]
    tensors = [_prompt(tiny_host, "prompt", 3, seed=1), _prompt(tiny_host, "prefix", 6, seed=2)]
    methods = ["prompt", "prefix"]
    geometry = ModelGeometry.of(tiny_host)
    params = [PromptParams(get_method(m), t, geometry) for m, t in zip(methods, tensors,
                                                                      strict=True)]
    head = tiny_host.chat.head(template=TEMPLATE)
    joint = Passes(tiny_host, params, [head, head])
    counts = [sum(len(r.answer_ids) for r, o in zip(rows, owners, strict=True) if o == k)
              for k in (0, 1)]
    sums, grads = joint.run(Pass(rows, owners, [1.0 / counts[o] for o in owners]))
    for k in (0, 1):
        own = [r for r, o in zip(rows, owners, strict=True) if o == k]
        _, alone_loss, alone_grad = _ours(tiny_host, methods[k], tensors[k], own)
        assert sums[k].item() == pytest.approx(alone_loss.item(), abs=1e-5)
        assert torch.allclose(grads[k], alone_grad, atol=1e-5)


def test_a_padded_row_scores_what_it_scores_alone(tiny_host):
    from engine.forward.scoring import answer_logliks
    from engine.forward.start import Start

    rows = tiny_host.chat.rows(EXAMPLES)
    for method, length in (("prompt", 3), ("prefix", 3)):
        packed = get_method(method).keys_values(tiny_host, _prompt(tiny_host, method, length, 0))
        start = Start(packed.detach(), [])
        together, sizes = answer_logliks(tiny_host, [start], [0] * len(rows), rows)
        assert sizes == [len(r.answer_ids) for r in rows]
        for row, value in zip(rows, together, strict=True):
            alone, _ = answer_logliks(tiny_host, [start], [0], [row])
            assert alone[0] == pytest.approx(value, abs=1e-5)
