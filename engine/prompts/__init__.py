"""Soft prompt files and their starting tensors."""
