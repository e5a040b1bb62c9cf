"""The one exception type that carries a user-facing message."""

from __future__ import annotations


class PromptbankError(Exception):
    """A failure the user can act on: one sentence saying what is wrong and what to do.

    The CLI prints it without a traceback and exits with ``exit_code``; the worker sends it
    as an ``error`` event.
    """

    exit_code = 2

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()
