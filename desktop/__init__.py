"""Promptbank's desktop app (PySide6). No torch here: the engine runs in its own process."""
