"""Helpers shared by the CLI sub-commands: loading the model, printing results."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def stderr_progress(stage: str, fraction: float) -> None:
    """A one-line progress display on stderr (the model conversion, long loads)."""
    width = 24
    done = int(width * max(0.0, min(1.0, fraction)))
    end = "\n" if fraction >= 1.0 else ""
    print(f"\r[{'#' * done}{'.' * (width - done)}] {stage:<50}", end=end, file=sys.stderr,
          flush=True)


def load_host(args: argparse.Namespace):
    """The ModelHost for the global --model/--device options, with progress on stderr,
    checked to compute what the model computes (``engine.forward.fidelity``)."""
    from engine.forward.fidelity import check_fidelity
    from engine.model.host import ModelHost
    from engine.support.threads import resolve_threads

    progress = (lambda s, f: None) if args.json else stderr_progress
    host = ModelHost(args.model, device=args.device, dtype=args.dtype,
                     trust_remote_code=args.trust_remote_code, progress=progress,
                     threads=resolve_threads(args.threads), quantize=args.quantize,
                     offload=args.offload)
    check_fidelity(host)
    return host


def emit(args: argparse.Namespace, payload: Any, text: str | None = None) -> None:
    """Print ``payload`` as one JSON object with --json, else ``text`` (or a readable dump)."""
    if args.json:
        print(json.dumps(payload, default=str))
    elif text is not None:
        print(text)
    elif isinstance(payload, dict):
        width = max((len(k) for k in payload), default=0)
        for key, value in payload.items():
            print(f"{key:<{width}}  {value}")
    else:
        print(payload)
