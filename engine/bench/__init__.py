"""``promptbank bench NAME``: one module per benchmark, each with ``register(subparsers)``.

Each benchmark prints one JSON object with --json. Benchmarks may use the ``bench`` extra
(peft, psutil); tests never time anything.
"""
