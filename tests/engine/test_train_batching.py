"""Training batches: answer-only loss, right padding that changes nothing, truncation, order."""

from __future__ import annotations

import torch

from engine.batching import (
    IGNORE,
    collate,
    encode_row,
    end_of_turn,
    format_input,
    length_grouped_order,
)
from engine.kv import prompt_past
from engine.scoring import label_logliks, rank_accuracy, target_logprobs

EXAMPLES = [("the movie was great", "positive"), ("bad", "negative"),
            ("a terrible boring film with bad jokes and the acting", "negative sentiment")]


def test_row_is_chat_prompt_then_answer_with_end_of_turn(tiny_host):
    row = encode_row(tiny_host, "hello world", "positive")
    tok = tiny_host.tokenizer
    assert tok.decode(row.prompt_ids) == tiny_host.chat_text("hello world")
    assert tok.decode(row.answer_ids) == "positive<|im_end|>"
    assert end_of_turn(tok) == "<|im_end|>"


def test_loss_only_on_answer_tokens(tiny_host):
    rows = [encode_row(tiny_host, i, o) for i, o in EXAMPLES]
    batch = collate(rows, tiny_host.tokenizer.pad_token_id)
    for r, row in enumerate(rows):
        labelled = (batch.labels[r] != IGNORE).nonzero()[:, 0].tolist()
        assert labelled == list(range(len(row.prompt_ids), len(row)))
        assert batch.attention_mask[r].sum() == len(row)
    assert batch.targets().tolist() == [t for row in rows for t in row.answer_ids]


def test_padded_row_scores_what_it_scores_alone(tiny_host):
    torch.manual_seed(0)
    for method, tensor in [("prompt", torch.randn(3, tiny_host.hidden_size)),
                           ("prefix", torch.randn(tiny_host.num_layers, 2, tiny_host.num_kv_heads,
                                                  3, tiny_host.head_dim))]:
        past = prompt_past(tiny_host, method, tensor)
        rows = [encode_row(tiny_host, i, o) for i, o in EXAMPLES]
        pad = tiny_host.tokenizer.pad_token_id
        with torch.no_grad():
            logp, owner = target_logprobs(tiny_host, past, collate(rows, pad))
            for r, row in enumerate(rows):
                alone, _ = target_logprobs(tiny_host, past, collate([row], pad))
                assert torch.allclose(logp[owner == r], alone, atol=1e-5)


def test_truncation_keeps_the_end_of_the_prompt_and_the_answer(tiny_host):
    long_input = "the movie was great " * 40
    row = encode_row(tiny_host, long_input, "positive", max_length=32)
    full = encode_row(tiny_host, long_input, "positive")
    assert len(row) == 32
    assert row.answer_ids == full.answer_ids
    assert row.prompt_ids == full.prompt_ids[-len(row.prompt_ids):]


def test_input_template():
    assert format_input("x y", "Review: {input}\nSentiment?") == "Review: x y\nSentiment?"
    assert format_input("x y", None) == "x y"


def test_length_grouped_order_covers_every_row_once_and_is_seeded():
    lengths = [5, 40, 7, 33, 12, 8, 50, 2, 19, 21, 30, 3]
    order = length_grouped_order(lengths, 4, seed=3)
    assert sorted(i for b in order for i in b) == list(range(len(lengths)))
    assert order == length_grouped_order(lengths, 4, seed=3)
    assert order != length_grouped_order(lengths, 4, seed=4)
    # With one group, each batch holds neighbours in length order.
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in order]
    assert sum(spans) < 48


def test_label_scores_tell_apart_labels_sharing_a_prefix(tiny_host):
    past = prompt_past(tiny_host, "prompt", torch.zeros(2, tiny_host.hidden_size))
    labels = ["positive", "positive sentiment"]
    scores = label_logliks(tiny_host, past, ["great movie", "bad"], labels)
    assert scores.shape == (2, 2)
    assert not torch.equal(scores[:, 0], scores[:, 1])
    rows = [encode_row(tiny_host, "bad", lab) for lab in labels]
    logp, owner = target_logprobs(tiny_host, past, collate(rows, tiny_host.tokenizer.pad_token_id))
    expected = torch.stack([logp[owner == 0].sum(), logp[owner == 1].sum()])
    assert torch.allclose(scores[1], expected.detach(), atol=1e-5)
    gold = [labels[int(scores[0].argmax())], labels[int(scores[1].argmin())]]
    assert rank_accuracy(scores, labels, gold) == 0.5
