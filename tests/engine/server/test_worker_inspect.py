"""engine.serving.inspection in-process: nearest tokens and SPoT-style prompt similarity."""

from __future__ import annotations

import pytest
import torch

from engine.errors import PromptbankError
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.serving.inspection import nearest_tokens, prompt_similarity, similarity, token_vectors


def _prompt(host, tensor, method="prompt"):
    return SoftPrompt(method, tensor, ModelGeometry.of(host))


def test_nearest_tokens_finds_the_embedding_rows_it_was_made_of(tiny_host):
    table = tiny_host.embeddings().weight.detach()
    ids = [5, 77, 123]
    res = nearest_tokens(tiny_host, _prompt(tiny_host, table[ids] * 3.0), k=4)
    assert [row[0]["id"] for row in res] == ids  # cosine ignores the scale
    for row, i in zip(res, ids, strict=True):
        assert row[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert row[0]["token"] == tiny_host.tokenizer.decode([i])
        assert [r["score"] for r in row] == sorted((r["score"] for r in row), reverse=True)
    assert len(nearest_tokens(tiny_host, _prompt(tiny_host, table[ids]), k=10_000)[0]) == \
        table.shape[0]


def test_nearest_tokens_refuses_a_prefix(tiny_host):
    shape = (tiny_host.num_layers, 2, tiny_host.num_kv_heads, 2, tiny_host.head_dim)
    with pytest.raises(PromptbankError, match="do not apply to a prefix"):
        nearest_tokens(tiny_host, _prompt(tiny_host, torch.zeros(shape), "prefix"))


def test_prefix_token_vectors_gather_every_layer_of_one_position(tiny_host):
    shape = (tiny_host.num_layers, 2, tiny_host.num_kv_heads, 3, tiny_host.head_dim)
    tensor = torch.randn(shape)
    vectors = token_vectors(_prompt(tiny_host, tensor, "prefix"))
    assert vectors.shape == (3, tensor.numel() // 3)
    assert torch.equal(vectors[1], tensor[:, :, :, 1, :].reshape(-1))


def test_similarity_matrix_is_symmetric_with_unit_diagonal(tiny_host):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4, 32, generator=gen)
    prompts = {"a": _prompt(tiny_host, a), "scaled": _prompt(tiny_host, a * 2),
               "neg": _prompt(tiny_host, -a), "short": _prompt(tiny_host, a[:2])}
    for pooling in ("mean", "tokens"):
        sim = similarity(prompts, pooling=pooling)
        m = torch.tensor(sim["matrix"])
        assert sim["tasks"] == list(prompts) and torch.allclose(m, m.T)
        assert m[0, 1] == pytest.approx(m[0, 0].item(), abs=1e-4)  # scale does not matter
        assert m[0, 2] == pytest.approx(-m[0, 0].item(), abs=1e-4)
    assert similarity(prompts)["matrix"][0][0] == pytest.approx(1.0, abs=1e-4)
    assert prompt_similarity(a, a, "tokens") < 1.0  # mean over all token pairs


def test_similarity_refuses_mixed_methods_and_unknown_pooling(tiny_host):
    shape = (tiny_host.num_layers, 2, tiny_host.num_kv_heads, 2, tiny_host.head_dim)
    mixed = {"p": _prompt(tiny_host, torch.randn(2, 32)),
             "x": _prompt(tiny_host, torch.randn(shape), "prefix")}
    with pytest.raises(PromptbankError, match="one method"):
        similarity(mixed)
    with pytest.raises(PromptbankError, match="pooling"):
        similarity({"p": mixed["p"]}, pooling="max")
    assert similarity({}) == {"tasks": [], "matrix": [], "pooling": "mean"}
