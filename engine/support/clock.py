"""Timestamps as the library and prompt files store them."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """An ISO-8601 UTC timestamp with seconds."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
