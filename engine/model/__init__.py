"""The base model: its spec, device, loading, conversion, chat format and memory."""
