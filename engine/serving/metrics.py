"""Evaluation metrics: accuracy and macro-F1 (classify); exact match, token F1, ROUGE-L and
chrF (generate). All scores are in [0, 1].

Implemented here rather than pulling ``rouge-score`` (needs nltk) and ``sacrebleu`` (needs
lxml and more) into a desktop app; the tests pin them to those packages' values.
- exact match / token F1: SQuAD's answer normalisation (lowercase, no punctuation or articles).
- ROUGE-L: rouge-score's F-measure of the longest common subsequence of lowercased
  alphanumeric tokens, no stemming, averaged over rows (Unicode letters count as well).
- chrF: sacrebleu's corpus chrF (character 6-grams, beta 2, whitespace removed), / 100.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

from engine.errors import PromptbankError

CHRF_ORDER = 6
CHRF_BETA = 2.0
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)
_WORD = re.compile(r"[^\W_]+")


def _check(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise PromptbankError(f"{len(predictions)} predictions for {len(references)} references.",
                              hint="Give one prediction per reference.")
    if not references:
        raise PromptbankError("There is nothing to evaluate.",
                              hint="Give at least one example.")


def _mean(score: Callable[[str, str], float], predictions: Sequence[str],
          references: Sequence[str]) -> float:
    """Mean of ``score(prediction, reference)`` over the pairs, after checking them."""
    _check(predictions, references)
    return sum(score(p, r) for p, r in zip(predictions, references, strict=True)) / len(
        references)


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference."""
    return _mean(lambda p, r: float(p == r), predictions, references)


def macro_f1(predictions: Sequence[str], references: Sequence[str],
             labels: Sequence[str] | None = None) -> float:
    """Unweighted mean of per-label F1 over ``labels`` (default: every label seen)."""
    _check(predictions, references)
    labels = list(labels) if labels else sorted(set(references) | set(predictions))
    scores = []
    for label in labels:
        tp = sum(p == label and r == label for p, r in zip(predictions, references, strict=True))
        predicted = sum(p == label for p in predictions)
        actual = sum(r == label for r in references)
        scores.append(2 * tp / (predicted + actual) if predicted + actual else 0.0)
    return sum(scores) / len(scores)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, squeeze whitespace."""
    text = "".join(c for c in text.lower() if c not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Share of predictions equal to their reference after ``normalize_answer``."""
    return _mean(lambda p, r: float(normalize_answer(p) == normalize_answer(r)), predictions,
                 references)


def _token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean SQuAD token-overlap F1."""
    return _mean(_token_f1, predictions, references)


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def _rouge_l(prediction: str, reference: str) -> float:
    pred, ref = _WORD.findall(prediction.lower()), _WORD.findall(reference.lower())
    if not pred or not ref:
        return 0.0
    lcs = _lcs(ref, pred)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def rouge_l(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-L F-measure (as rouge-score's ``rougeL`` without stemming)."""
    return _mean(_rouge_l, predictions, references)


def _char_ngrams(text: str, n: int) -> Counter:
    text = "".join(text.split())
    return Counter(text[i:i + n] for i in range(len(text) - n + 1))


def chrf(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacrebleu's default CHRF, effective-order averaging), in [0, 1]."""
    _check(predictions, references)
    stats = [[0, 0, 0] for _ in range(CHRF_ORDER)]  # hypothesis, reference, matching n-grams
    for prediction, reference in zip(predictions, references, strict=True):
        for n in range(1, CHRF_ORDER + 1):
            hyp, ref = _char_ngrams(prediction, n), _char_ngrams(reference, n)
            stats[n - 1][0] += sum(hyp.values())
            stats[n - 1][1] += sum(ref.values())
            stats[n - 1][2] += sum((hyp & ref).values())
    precisions, recalls = [], []
    for n_hyp, n_ref, n_match in stats:
        if n_hyp > 0 and n_ref > 0:
            precisions.append(n_match / n_hyp)
            recalls.append(n_match / n_ref)
    if not precisions:
        return 0.0
    precision, recall = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if precision + recall == 0:
        return 0.0
    factor = CHRF_BETA ** 2
    return (1 + factor) * precision * recall / (factor * precision + recall)


def classify_metrics(predictions: Sequence[str], references: Sequence[str],
                     labels: Sequence[str] | None = None) -> dict[str, float]:
    """The metrics of a classify task."""
    return {"accuracy": accuracy(predictions, references),
            "macro_f1": macro_f1(predictions, references, labels)}


def generate_metrics(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The metrics of a generate task."""
    return {"exact_match": exact_match(predictions, references),
            "token_f1": token_f1(predictions, references),
            "rouge_l": rouge_l(predictions, references),
            "chrf": chrf(predictions, references)}
