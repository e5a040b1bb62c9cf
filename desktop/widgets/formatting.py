"""How numbers, durations and metrics are written everywhere in the desktop."""

from __future__ import annotations

PREFERRED_METRICS = ("accuracy", "macro_f1", "exact_match", "rouge_l", "chrf", "token_f1",
                     "eval_loss")
#: Below this many evaluation examples a metric is marked as unreliable.
SMALL_EVAL = 30


def format_duration(seconds: float | None) -> str:
    """A short human duration ('1 h 2 min', '2 min 5 s', '7 s'), or '—'."""
    if seconds is None or seconds < 0:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def format_value(value) -> str:
    """A metric or setting value for a table cell: 4 significant digits, '—' for none."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "—" if value is None else str(value)


def metric_label(name: str) -> str:
    """A metric's name in words ('macro_f1' → 'macro f1')."""
    return name.replace("_", " ")


def sample_note(n: int | None) -> str:
    """' (n=6, too few to trust)' / ' (n=120)' / '' — the eval-set size after a metric."""
    if not isinstance(n, int) or isinstance(n, bool):
        return ""
    return f" (n={n}, too few to trust)" if n < SMALL_EVAL else f" (n={n})"


def headline_metric(metrics: dict) -> str:
    """The most telling metric of a version as 'name value (n=…)', or ""."""
    n = metrics.get("eval_n")
    best, name = metrics.get("best_metric"), metrics.get("metric_name")
    if isinstance(best, int | float) and isinstance(name, str) and name:
        return f"{metric_label(name)} {best:.3g}{sample_note(n)}"
    for key in PREFERRED_METRICS:
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{metric_label(key)} {value:.3g}{sample_note(n)}"
    for key, value in metrics.items():
        if isinstance(value, int | float) and key not in ("eval_n", "steps", "best_step"):
            return f"{metric_label(key)} {value:.3g}{sample_note(n)}"
    return ""


def parse_labels(text: str) -> list[str]:
    """Comma-separated label words, trimmed, without empties or duplicates."""
    return list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))


def output_counts(outputs: list[str], most: int = 20) -> str:
    """'positive ×5 · negative ×4' for at most ``most`` distinct outputs, else ""."""
    counts: dict[str, int] = {}
    for output in outputs:
        counts[output.strip()] = counts.get(output.strip(), 0) + 1
    if not counts or len(counts) > most:
        return ""
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return " · ".join(f"{name} ×{n}" for name, n in ranked)
