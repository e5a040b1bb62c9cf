"""Metrics as people read them: a share as a percentage with its row count and 95 % interval
(Wilson's, for accuracy and exact match), a loss with its unit, and whether the difference
of two results is more than the noise on their rows. Torch-free: the CLI and the desktop
write every metric through here."""

from __future__ import annotations

import math

#: z of a two-sided 95 % interval.
Z95 = 1.959964
#: Metrics that are the share of rows that are right: Wilson's interval applies.
PROPORTIONS = ("accuracy", "exact_match")
#: Metrics in [0, 1] written as percentages.
SHARES = (*PROPORTIONS, "macro_f1", "token_f1", "rouge_l", "chrf")
#: Each loss and its unit (mean cross-entropy of the answer tokens, natural log).
LOSS_UNITS = {"eval_loss": "nats/token", "loss": "nats/token"}
#: A version's metrics in the order one is picked to judge it by, when its run named none.
PREFERRED = ("accuracy", "macro_f1", "exact_match", "rouge_l", "chrf", "token_f1", "eval_loss")
NAMES = {"macro_f1": "macro F1", "token_f1": "token F1", "rouge_l": "ROUGE-L", "chrf": "chrF",
         "exact_match": "exact match", "eval_loss": "eval loss"}


def label(name: str) -> str:
    """A metric's name in words ('macro_f1' → 'macro F1')."""
    return NAMES.get(name, name.replace("_", " "))


def wilson(share: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``share`` of ``n`` rows."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def interval(name: str, value: float, n: int | None) -> tuple[float, float] | None:
    """The 95 % interval of a metric on ``n`` rows, where one is known (else None)."""
    if name in PROPORTIONS and isinstance(n, int) and n > 0 and 0.0 <= value <= 1.0:
        return wilson(value, n)
    return None


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value)


def value_text(name: str, value: float | None) -> str:
    """The value alone: '87.3 %' for shares, '0.412 nats/token' for losses."""
    if not _finite(value):
        return "not measured"
    if name in SHARES:
        return f"{100 * value:.1f} %"
    unit = LOSS_UNITS.get(name)
    return f"{value:.4g} {unit}" if unit else f"{value:.4g}"


def metric_text(name: str, value: float | None, n: int | None) -> str:
    """'accuracy 87.3 % (95 % CI 83.1–90.6 %, 300 rows)': name, value, interval and rows."""
    text = f"{label(name)} {value_text(name, value)}"
    if not _finite(value):
        return text
    rows = f"{n:,} rows" if isinstance(n, int) and not isinstance(n, bool) else ""
    span = interval(name, float(value), n)
    if span is not None:
        return f"{text} (95 % CI {100 * span[0]:.1f}–{100 * span[1]:.1f} %, {rows})"
    return f"{text} ({rows})" if rows else text


def difference_text(name: str, before: float, n_before: int, after: float,
                    n_after: int) -> str:
    """How ``after`` differs from ``before`` and whether that is more than the noise on their
    rows (a two-proportion test at 95 % for proportions; no noise estimate otherwise)."""
    if not (_finite(before) and _finite(after)):
        return "not comparable (a result is missing)"
    change = after - before
    if name in SHARES:
        said = f"{100 * change:+.1f} points"
    else:
        said = f"{change:+.4g}" + (f" {LOSS_UNITS[name]}" if name in LOSS_UNITS else "")
    if name not in PROPORTIONS or n_before <= 0 or n_after <= 0:
        return f"{said} (no noise estimate for {label(name)})"
    noise = Z95 * math.sqrt(before * (1 - before) / n_before + after * (1 - after) / n_after)
    if abs(change) > noise:
        return f"{said}, more than the noise on these rows (±{100 * noise:.1f} points)"
    return f"{said}, within the noise on these rows (±{100 * noise:.1f} points)"


def headline_metric(metrics: dict) -> str:
    """The metric a version is judged by, as people read it: 'accuracy 87.3 % (95 % CI
    83.1–90.6 %, 300 rows)', said to be on training rows when it was; "" when none."""
    n = metrics.get("eval_n")
    name = metrics.get("metric_name")
    if not (isinstance(name, str) and _finite(metrics.get("best_metric"))):
        name = next((k for k in PREFERRED if _finite(metrics.get(k))), None)
        value = metrics.get(name) if name else None
    else:
        value = metrics["best_metric"]
    if name is None:
        return ""
    text = metric_text(name, value, n)
    return f"{text}, on its own training rows" if metrics.get("eval_on") == "training rows" \
        else text
