"""``promptbank bench remote``: what the remote engine costs over a local worker.

The same task is created and trained twice from the same data, once by a local worker and
once through the relay to a host agent (by default this very Promptbank on this machine,
reached through ``--engine-command``, so only the relay's own work and the copying count;
give ``--host ssh://…`` to include a real network). Reports wall times by stage and the
bytes the connection carried each way. Synthetic data only; temporary libraries.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from engine.commands.bench.worker import _sentences


def register(bsub: argparse._SubParsersAction) -> None:
    parser = bsub.add_parser("remote", help="the remote engine's overhead: the same training "
                             "through the relay and locally (wall time, bytes sent)")
    parser.add_argument("--steps", type=int, default=30, help="training steps of each run")
    parser.add_argument("--rows", type=int, default=2000, help="rows of the synthetic dataset")
    parser.add_argument("--host", metavar="ADDRESS",
                        help="ssh://… to include a real connection (default: this machine, "
                             "reached through an engine command)")
    parser.set_defaults(func=cmd_bench_remote)


def _dataset(folder: Path, rows: int) -> Path:
    rng = random.Random(0)
    path = folder / "reviews.jsonl"
    lines = [{"input": s, "output": "positive" if "good" in s or "great" in s else "negative"}
             for s in _sentences(rng, rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _run(client, data: Path, steps: int) -> dict[str, float]:
    """Create the task and train it; seconds per stage."""
    started = time.perf_counter()
    client.call("create_task", task="reviews", kind="classify", data=str(data),
                labels=["positive", "negative"])
    created = time.perf_counter()
    client.call("train", task="reviews", config={"steps": steps, "seed": 0})
    trained = time.perf_counter()
    return {"create_s": round(created - started, 3), "train_s": round(trained - created, 3)}


def _local(args: argparse.Namespace, folder: Path, data: Path) -> dict[str, Any]:
    from engine.server.client import Client

    started = time.perf_counter()
    with Client.start(args.model, folder / "local", args.device, timeout=1800) as client:
        ready = time.perf_counter()
        stages = _run(client, data, args.steps)
        client.call("shutdown")
    return {"connect_s": round(ready - started, 3), **stages,
            "total_s": round(time.perf_counter() - started, 3)}


def _remote(args: argparse.Namespace, folder: Path, data: Path) -> dict[str, Any]:
    from engine.api.engine_target import EngineTarget
    from engine.api.launch import source_root
    from engine.remote.protocol import worker_options
    from engine.remote.relay import Relay
    from engine.server.client import Client

    command = shlex.join(["env", f"PROMPTBANK_REMOTE_HOME={folder / 'host'}",
                          f"PYTHONPATH={source_root()}", sys.executable, "-m", "engine.cli"])
    target = EngineTarget.parse(args.host, None if args.host else command)
    requests_r, requests_w = os.pipe()
    events_r, events_w = os.pipe()
    started = time.perf_counter()
    # The relay runs in this process, as `promptbank --engine … worker` runs it, so its
    # byte counts can be read.
    relay = Relay(target, folder / "remote", worker_options(args),
                  out=os.fdopen(events_w, "w", encoding="utf-8", buffering=1))
    relay.connect()
    threading.Thread(target=relay.serve, args=(os.fdopen(requests_r, "rb"),),
                     daemon=True).start()
    client = Client.attach(os.fdopen(requests_w, "wb"), os.fdopen(events_r, "rb"),
                           timeout=1800)
    ready = time.perf_counter()
    stages = _run(client, data, args.steps)
    client.call("shutdown")
    total = time.perf_counter() - started
    assert relay.upstream is not None
    return {"connect_s": round(ready - started, 3), **stages, "total_s": round(total, 3),
            "bytes_sent": relay.upstream.sent, "bytes_received": relay.upstream.received,
            "engine": target.label}


def cmd_bench_remote(args: argparse.Namespace) -> int:
    from engine.commands._common import emit

    with tempfile.TemporaryDirectory(prefix="pb-bench-remote-") as tmp:
        folder = Path(tmp)
        data = _dataset(folder, args.rows)
        local = _local(args, folder, data)
        remote = _remote(args, folder, data)
        size = data.stat().st_size
    out = {"bench": "remote", "model": args.model, "steps": args.steps, "rows": args.rows,
           "dataset_bytes": size, "local": local, "remote": remote,
           "train_overhead": round(remote["train_s"] / local["train_s"], 3),
           "total_overhead": round(remote["total_s"] / local["total_s"], 3)}
    emit(args, out)
    return 0
