"""Serving tasks on the loaded model: runtime, prompt bank, evaluation, batch apply,
metrics and inspection."""
