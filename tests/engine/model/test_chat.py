"""Token rows: the chat template around the input, the answer with its end-of-turn token, the
one truncation rule, the shared head, batch order and label scores."""

from __future__ import annotations

import time

import pytest
import torch

from engine.forward.scoring import answer_logliks, label_scores
from engine.forward.start import Start
from engine.methods import get_method
from engine.model.chat import Chat, common_prefix, format_input
from engine.training.batches import length_grouped_order

EXAMPLES = [("the movie was great", "positive"), ("bad", "negative"),
            ("a terrible boring film with bad jokes and the acting", "negative sentiment")]


def test_row_is_chat_prompt_then_answer_with_end_of_turn(tiny_host):
    row = tiny_host.chat.rows([("hello world", "positive")])[0]
    tok = tiny_host.tokenizer
    assert tok.decode(row.prompt_ids) == tiny_host.chat.context_text("hello world")
    assert tok.decode(row.answer_ids) == "positive<|im_end|>"
    assert tiny_host.chat.end_of_turn == "<|im_end|>"
    assert not row.truncated


def test_fast_template_path_equals_the_chat_template(tiny_host):
    chat = tiny_host.chat
    for text in ("hello", "  spaced  \n", "{input} braces"):
        for system in (None, "be brief"):
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": text}]
            expected = tiny_host.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True)
            assert chat.context_text(text, system=system) == expected


def test_truncation_keeps_the_template_and_the_answer(tiny_host):
    long_input = "the movie was great " * 40
    template = "Review: {input}\nSentiment?"
    row = tiny_host.chat.rows([(long_input, "positive")], template=template, max_length=48)[0]
    full = tiny_host.chat.rows([(long_input, "positive")], template=template)[0]
    text = tiny_host.tokenizer.decode(row.prompt_ids)
    assert row.truncated and len(row) <= 48
    assert row.answer_ids == full.answer_ids
    head = tiny_host.chat.head(template=template)
    assert row.prompt_ids[:len(head)] == head  # the chat template and "Review:" stay
    assert text.endswith(tiny_host.chat.context_text("\nSentiment?").split("\nSentiment?")[1])
    assert "the movie was great" in text


def test_the_same_rule_truncates_serving_contexts(tiny_host):
    chat = tiny_host.chat
    ids, cut = chat.context_ids("the movie was great " * 40, budget=30)
    answer = chat.answer_ids("x")
    row = chat.rows([("the movie was great " * 40, "x")], max_length=30 + len(answer))[0]
    assert cut and len(ids) <= 30
    assert row.prompt_ids == ids and row.answer_ids == answer


def test_a_huge_row_is_cut_before_tokenising(tiny_host):
    huge = "great " * 2_000_000  # 12 MB of text
    started = time.perf_counter()
    row = tiny_host.chat.rows([(huge, "positive")], max_length=64)[0]
    assert row.truncated and len(row) <= 64
    assert time.perf_counter() - started < 20  # not a benchmark: only "it did not tokenise 12 MB"


def test_rows_are_tokenised_in_chunks_with_progress(tiny_host):
    seen: list[tuple[int, int]] = []
    pairs = [(f"text {i}", "positive") for i in range(1100)]
    rows = tiny_host.chat.rows(pairs, on_rows=lambda done, total: seen.append((done, total)))
    assert len(rows) == 1100
    assert seen == [(512, 1100), (1024, 1100), (1100, 1100)]


def test_head_is_what_every_context_starts_with(tiny_host):
    chat = tiny_host.chat
    template = "Review: {input}\nSentiment?"
    head = chat.head(template=template)
    for text in ("great", "1 star", " spaced", "\nnewline", "é"):
        assert chat.context_ids(text, template=template)[0][:len(head)] == head
    assert tiny_host.tokenizer.decode(head).endswith("Review:")
    assert common_prefix([[1, 2, 3], [1, 2, 4], [1, 2]]) == [1, 2]
    assert common_prefix([]) == []


def test_input_template():
    assert format_input("x y", "Review: {input}\nSentiment?") == "Review: x y\nSentiment?"
    assert format_input("x y", None) == "x y"


def test_a_tokenizer_without_a_template_gets_plain_text(tiny_host):
    tok = tiny_host.tokenizer
    saved = tok.chat_template
    tok.chat_template = None
    try:
        chat = Chat(tok, 512)
        assert chat.context_text("hi", system="be kind") == "be kind\n\nhi\n"
    finally:
        tok.chat_template = saved


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
    chat = tiny_host.chat
    packed = get_method("prompt").keys_values(tiny_host, torch.zeros(2, tiny_host.hidden_size))
    start = Start(packed.detach(), [])
    labels = ["positive", "positive sentiment"]
    contexts = [chat.context_ids(t)[0] for t in ("great movie", "bad")]
    candidates = [[chat.answer_ids(label) for label in labels]] * 2
    scores = label_scores(tiny_host, [start], [0, 0], contexts, candidates)
    assert scores[0][0] != scores[0][1]
    rows = chat.rows([("bad", label) for label in labels])
    expected, _ = answer_logliks(tiny_host, [start], [0, 0], rows)
    assert scores[1] == pytest.approx(expected, abs=1e-5)


def test_width_buckets_repeat_and_waste_little():
    from engine.forward.rows import power_bucket, width_bucket

    widths = [width_bucket(n) for n in range(1, 600)]
    assert len(set(widths)) <= 40  # few shapes to capture
    assert all(w >= n and (w - n) <= max(7, n // 8) for n, w in zip(range(1, 600), widths,
                                                                  strict=True))
    assert [power_bucket(n) for n in (1, 16, 17, 100)] == [16, 16, 32, 128]
