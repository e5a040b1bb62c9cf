"""The engine's torch-free protocol: requests, events and their payloads."""
