"""Helpers shared by the CLI sub-commands: loading the model, printing results."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.support.eta import Eta, eta_text
from engine.support.untrusted import terminal_text


class ProgressLine:
    """A one-line progress display on stderr with the time left (the model conversion, long
    loads, rows being prepared)."""

    def __init__(self) -> None:
        self.eta = Eta()

    def __call__(self, stage: str, fraction: float) -> None:
        width = 24
        done = int(width * max(0.0, min(1.0, fraction)))
        end = "\n" if fraction >= 1.0 else ""
        text = stage + eta_text(self.eta.update(fraction))
        print(f"\r[{'#' * done}{'.' * (width - done)}] {text:<62}", end=end, file=sys.stderr,
              flush=True)


def load_host(args: argparse.Namespace):
    """The ModelHost for the global --model/--device options, with progress on stderr,
    checked to compute what the model computes (``engine.forward.fidelity``)."""
    from engine.api.threads import resolve_threads
    from engine.forward.fidelity import check_fidelity
    from engine.model.host import ModelHost

    progress = (lambda s, f: None) if args.json else ProgressLine()
    host = ModelHost(args.model, device=args.device, dtype=args.dtype,
                     trust_remote_code=args.trust_remote_code, progress=progress,
                     threads=resolve_threads(args.threads), quantize=args.quantize,
                     offload=args.offload)
    check_fidelity(host)
    return host


def emit(args: argparse.Namespace, payload: Any, text: str | None = None) -> None:
    """Print ``payload`` as one JSON object with --json, else ``text`` (or a readable dump);
    text from the library never reaches the terminal as control bytes."""
    if args.json:
        print(json.dumps(payload, default=str))
    elif text is not None:
        print(terminal_text(text))
    elif isinstance(payload, dict):
        width = max((len(k) for k in payload), default=0)
        for key, value in payload.items():
            print(terminal_text(f"{key:<{width}}  {value}"))
    else:
        print(terminal_text(str(payload)))
