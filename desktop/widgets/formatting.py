"""How numbers, durations and metrics are written everywhere in the desktop."""

from __future__ import annotations


def format_duration(seconds: float | None) -> str:
    """A short human duration ('1 h 2 min', '2 min 5 s', '7 s'), or '—'."""
    if seconds is None or seconds < 0:
        return "—"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def progress_text(stage: str, fraction: float, eta_s: float | None) -> str:
    """'converting tensors (35%, about 1 min 5 s left)': a long step, how far, time left."""
    left = f", about {format_duration(eta_s)} left" if eta_s is not None else ""
    return f"{stage} ({100 * fraction:.0f}%{left})"


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
