"""Metrics against known values; ROUGE-L and chrF are pinned to rouge-score 0.1.2 and
sacrebleu 2.6.0 outputs on the same sentences (computed once with those packages)."""

from __future__ import annotations

import pytest

from engine.errors import PromptbankError
from engine.serving.metrics import (
    accuracy,
    chrf,
    classify_metrics,
    exact_match,
    generate_metrics,
    macro_f1,
    normalize_answer,
    rouge_l,
    token_f1,
)

PRED = ["The cat sat on the mat.", "a fast brown fox jumps", "Hello there, general Kenobi!",
        "nothing in common", "the Eagle restaurant is cheap"]
REF = ["the cat is on the mat", "The quick brown fox jumped over the lazy dog",
       "hello there general kenobi", "zzz qqq", "The Eagle is a cheap restaurant near the river."]
# rouge_scorer.RougeScorer(["rougeL"]).score(ref, pred)["rougeL"].fmeasure
ROUGE_L = [0.8333333333333334, 0.2857142857142857, 1.0, 0.0, 0.5714285714285714]
# sacrebleu.corpus_chrf([pred], [[ref]]).score, and over the whole corpus
CHRF = [57.3804729066298, 32.58828831904523, 63.00353671970225, 0.0, 45.656675391763635]
CHRF_CORPUS = 44.5548430167592


def test_accuracy_and_macro_f1():
    refs = ["a", "a", "b", "b", "c"]
    preds = ["a", "b", "b", "b", "a"]
    assert accuracy(preds, refs) == pytest.approx(0.6)
    assert macro_f1(preds, refs) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(preds, refs, labels=["a", "b"]) == pytest.approx((0.5 + 0.8) / 2)
    assert classify_metrics(refs, refs) == {"accuracy": 1.0, "macro_f1": 1.0}


def test_squad_exact_match_and_token_f1():
    assert normalize_answer("The  Cat, sat!") == "cat sat"
    assert exact_match(["The cat.", "dog"], ["cat", "a cat"]) == pytest.approx(0.5)
    # pred tokens: cat sat mat; ref: cat is on mat -> common 2, P 2/3, R 2/4
    assert token_f1(["the cat sat mat"], ["cat is on mat"]) == pytest.approx(
        2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert token_f1(["", "x"], ["", "y"]) == pytest.approx(0.5)


def test_rouge_l_matches_rouge_score():
    for p, r, expected in zip(PRED, REF, ROUGE_L, strict=True):
        assert rouge_l([p], [r]) == pytest.approx(expected, abs=1e-12)
    assert rouge_l(PRED, REF) == pytest.approx(sum(ROUGE_L) / len(ROUGE_L))


def test_chrf_matches_sacrebleu():
    for p, r, expected in zip(PRED, REF, CHRF, strict=True):
        assert chrf([p], [r]) * 100 == pytest.approx(expected, abs=1e-9)
    assert chrf(PRED, REF) * 100 == pytest.approx(CHRF_CORPUS, abs=1e-9)
    assert chrf(["same text"], ["same text"]) == pytest.approx(1.0)


def test_generate_metrics_keys_and_range():
    scores = generate_metrics(PRED, REF)
    assert set(scores) == {"exact_match", "token_f1", "rouge_l", "chrf"}
    assert all(0.0 <= v <= 1.0 for v in scores.values())


def test_bad_input():
    with pytest.raises(PromptbankError, match="2 predictions for 1 references"):
        accuracy(["a", "b"], ["a"])
    with pytest.raises(PromptbankError, match="nothing to evaluate"):
        generate_metrics([], [])
