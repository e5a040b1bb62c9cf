"""Widgets and helpers every page may use: tables, formatting, file previews, settings."""
