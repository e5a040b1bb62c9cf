"""``promptbank bench NAME``: benchmarks found in ``engine/bench/``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(sub: argparse._SubParsersAction) -> None:
    import engine.commands.bench as benches

    bench = sub.add_parser("bench", help="measure speed, memory and quality")
    bsub = bench.add_subparsers(dest="bench_name", metavar="NAME", required=True)
    for info in sorted(pkgutil.iter_modules(benches.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not benchmarks
            continue
        importlib.import_module(f"engine.commands.bench.{info.name}").register(bsub)
