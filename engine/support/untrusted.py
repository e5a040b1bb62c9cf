"""Untrusted text kept in its place: names and labels from any source (the command line, the
desktop, the worker, every import) may not hold control, line-break or direction characters,
and text from data is shown on a terminal with such characters escaped, never obeyed."""

from __future__ import annotations

import unicodedata

from engine.errors import PromptbankError

#: Control (Cc), format (Cf: direction overrides, zero-width marks), line and paragraph
#: separators (Zl, Zp), surrogates and unassigned code points: none belongs in a name.
_HIDDEN = ("Cc", "Cf", "Zl", "Zp", "Cs", "Cn")
#: Kept on a terminal: the line structure our own output uses.
_LAYOUT = "\n\t"


def hidden_characters(text: str) -> list[str]:
    """The code points in ``text`` that act on a display instead of showing ('U+202E')."""
    return [f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _HIDDEN]


def check_name(text: str, what: str) -> None:
    """Refuse a name or label holding hidden characters, saying which (PromptbankError)."""
    found = hidden_characters(text)
    if found:
        raise PromptbankError(
            f"The {what} '{escaped(text)}' holds characters that act on the display instead "
            f"of showing ({', '.join(dict.fromkeys(found))}); they could disguise it.",
            hint="Use letters, digits, spaces and punctuation only.")


def check_label(label: str) -> None:
    """A label must also come back unchanged through ``--labels a,b`` and a CSV cell."""
    check_name(label, "label")
    if "," in label or label != label.strip():
        raise PromptbankError(f"The label '{label}' holds a comma or surrounding spaces, so it "
                              "could not be given back with --labels a,b.",
                              hint="Rename it in the data (for example 'a-b' for 'a,b').")


def escaped(text: str, keep: str = "") -> str:
    """``text`` with every hidden character (but those in ``keep``) as a visible escape."""
    return "".join(c if c in keep or unicodedata.category(c) not in _HIDDEN
                   else (f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}")
                   for c in text)


def terminal_text(text: str) -> str:
    """What may go to a terminal: line breaks and tabs kept, every other hidden character
    (escape sequences, direction overrides) escaped."""
    return escaped(text, keep=_LAYOUT)
