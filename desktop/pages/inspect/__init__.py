"""Inspect: nearest tokens, norms and task similarity of prompts."""
