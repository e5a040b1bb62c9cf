"""One module per CLI feature; each exposes ``register(subparsers)``."""
