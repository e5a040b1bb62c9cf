"""JSON from untrusted bytes, bounded in size, nesting depth and number size. Torch-free.

Python's parser recurses once per nesting level, so one line of 100,000 brackets raises
``RecursionError`` wherever it is parsed (and kills the thread that parses it); the depth is
therefore counted before parsing, and every failure is one ``JsonRefused`` with a short
reason. The protocol, safetensors headers, archive manifests, adapter configs and dataset
lines are all read through ``loads``.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deep enough for every object Promptbank reads or writes (a request or event nests about 6
#: levels), far below the interpreter's recursion limit.
MAX_DEPTH = 64
#: Integers beyond a signed 64-bit range are refused: nothing here counts that high, and
#: Python would otherwise build numbers of thousands of digits.
MAX_INT = 2**63
# A string (escapes included) or one bracket; brackets inside strings do not nest.
_TOKENS = {str: re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL),
           bytes: re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)}


class JsonRefused(ValueError):
    """Text that is not JSON within the bounds; the message is what is wrong, as a phrase."""


def nests_deeper(data: str | bytes, limit: int) -> bool:
    """Whether ``data``'s arrays and objects nest more than ``limit`` levels deep (reading
    stops at the first bracket past the limit)."""
    opening = ("[", "{") if isinstance(data, str) else (b"[", b"{")
    if data.count(opening[0]) + data.count(opening[1]) <= limit:
        return False
    depth = 0
    for match in _TOKENS[type(data)].finditer(data):
        token = match.group()
        if token in opening:
            depth += 1
            if depth > limit:
                return True
        elif len(token) == 1:
            depth -= 1
    return False


def _int(text: str) -> int:
    # The digits are counted first, so int() never builds a number of thousands of digits.
    value = int(text) if len(text.lstrip("-")) <= 19 else MAX_INT
    if abs(value) >= MAX_INT:
        raise JsonRefused(f"a number too large ({text[:20]}{'…' * (len(text) > 20)})")
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonRefused(f"a number out of range ({text[:20]})")
    return value


def _constant(name: str) -> float:
    raise JsonRefused(f"{name}, which JSON does not allow")


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise JsonRefused(f"the key '{key[:40]}' twice in one object")
        seen[key] = value
    return seen


def loads(data: str | bytes, *, max_bytes: int | None = None, max_depth: int = MAX_DEPTH,
          finite: bool = False, unique_keys: bool = False) -> Any:
    """Parse ``data`` as JSON within the bounds; ``JsonRefused`` says why not, as a phrase
    ("nested deeper than 64 levels") for the caller's sentence.

    With ``finite`` numbers must also be finite and integers within 64 bits (NaN, Infinity,
    1e999 and 20-digit integers are refused). With ``unique_keys`` an object may not name a
    key twice (JSON lets the last one win, which hides what was meant).
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise JsonRefused(f"longer than {max_bytes:,} bytes ({len(data):,})")
    if nests_deeper(data, max_depth):
        raise JsonRefused(f"nested deeper than {max_depth} levels")
    hooks: dict[str, Any] = ({"parse_int": _int, "parse_float": _float,
                              "parse_constant": _constant} if finite else {})
    if unique_keys:
        hooks["object_pairs_hook"] = _unique
    try:
        return json.loads(data, **hooks)
    except JsonRefused:
        raise
    except json.JSONDecodeError as exc:
        raise JsonRefused(f"not JSON ({exc.msg} at character {exc.pos})") from exc
    except UnicodeDecodeError as exc:
        raise JsonRefused("not UTF-8 text") from exc
    except (ValueError, RecursionError, MemoryError) as exc:
        # int() refusing thousands of digits, or a parser limit; the text says which.
        raise JsonRefused(f"unreadable ({type(exc).__name__}: {str(exc)[:80]})") from exc
