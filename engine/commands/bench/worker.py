"""``promptbank bench worker``: request latency while a training job runs in the same worker.

A worker process trains one task while short ``generate`` requests for other tasks arrive
one after another; each waits for the decoder layer in progress (engine.forward.breaks). Also
measures the ``ping`` round trip, idle and busy, and how many steps the job made meanwhile.
Runs in a temporary library; synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands.bench._stats import percentile

if TYPE_CHECKING:
    from engine.model.host import ModelHost

WORDS = ("good", "great", "fine", "bad", "awful", "poor", "film", "movie", "plot", "actors",
         "music", "story", "scene", "ending", "slow", "fast", "funny", "dull", "warm", "cold")


def register(bsub: argparse._SubParsersAction) -> None:
    parser = bsub.add_parser("worker", help="generate/ping latency while a job trains")
    parser.add_argument("--requests", type=int, default=50, help="generate requests to time")
    parser.add_argument("--pings", type=int, default=200, help="ping round trips to time")
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="training batch size")
    parser.add_argument("--length", type=int, default=20, help="virtual tokens of every prompt")
    parser.add_argument("--micro-batch", type=int, default=None,
                        help="rows per forward/backward pass (default: the trainer's)")
    parser.set_defaults(func=cmd_bench_worker)


def _sentences(rng: random.Random, n: int) -> list[str]:
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))) for _ in range(n)]


def build_library(root: Path, host: ModelHost, length: int, others: int = 3) -> list[str]:
    """A classify task ``train-me`` with synthetic data, and ``others`` generate tasks that
    each have a prompt version; returns the other tasks' names."""
    import torch

    from engine.library import Library
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

    rng = random.Random(0)
    lib = Library(root)
    data = root.parent / "train-me.jsonl"
    rows = [{"input": s, "output": "positive" if "good" in s or "great" in s else "negative"}
            for s in _sentences(rng, 400)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lib.create_task("train-me", kind="classify", labels=["positive", "negative"], data=data)
    table = host.embeddings().weight.detach()
    gen = torch.Generator().manual_seed(0)
    names = []
    for i in range(others):
        name = f"other-{i + 1}"
        lib.create_task(name, kind="generate")
        ids = torch.randint(0, table.shape[0], (length,), generator=gen)
        prompt = SoftPrompt("prompt", table[ids].clone(), ModelGeometry.of(host), task=name)
        lib.add_version(name, prompt.to_bytes())
        names.append(name)
    return names


def _timed(client: Any, op: str, args: dict) -> float:
    started = time.perf_counter()
    client.request(op, args).result()
    return (time.perf_counter() - started) * 1000


def _summary(prefix: str, values: list[float]) -> dict[str, float]:
    return {f"{prefix}_p50_ms": round(percentile(values, 50), 2),
            f"{prefix}_p95_ms": round(percentile(values, 95), 2)}


def measure(client: Any, tasks: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The latencies, with the worker idle and then while it trains."""
    rng = random.Random(1)
    texts = _sentences(rng, args.requests)

    def gen_args(i: int) -> dict:
        return {"text": texts[i], "task": tasks[i % len(tasks)],
                "max_new_tokens": args.max_new_tokens}

    client.call("model_info")
    for i in range(3):
        _timed(client, "generate", gen_args(i))  # warm the prompt caches
    idle_ping = [_timed(client, "ping", {}) for _ in range(args.pings)]
    idle_gen = [_timed(client, "generate", gen_args(i)) for i in range(min(20, args.requests))]

    config = {"method": "prefix", "length": args.length, "init": "random", "steps": 100000,
              "batch_size": args.batch_size, "eval_every": 0, "checkpoint_every": 0}
    if args.micro_batch is not None:
        config["micro_batch"] = args.micro_batch
    train = client.request("train", {"task": "train-me", "config": config})
    step_ms: list[float] = []

    def next_steps(count: int) -> None:
        goal = len(step_ms) + count
        while len(step_ms) < goal:
            event = train.next_event(600)
            if event.final:
                raise RuntimeError(f"training ended early: {event.data}")
            if event.data.get("kind") == "step":
                step_ms.append(event.data["step_ms"])

    def job_step() -> int:
        return next(j["step"] for j in client.call("jobs")["jobs"] if j["job"] == train.id)

    next_steps(3)
    step_before = job_step()
    busy_gen = [_timed(client, "generate", gen_args(i)) for i in range(args.requests)]
    busy_ping = [_timed(client, "ping", {}) for _ in range(min(50, args.pings))]
    # Requests come first, so back-to-back requests hold the job; it goes on once they stop.
    steps_during = job_step() - step_before
    next_steps(3)
    client.call("cancel", job=train.id)
    step_ms += [e.data["step_ms"] for e in train if e.data.get("kind") == "step"]
    train_step_ms = statistics.median(step_ms)
    out: dict[str, Any] = {
        **_summary("generate", busy_gen),
        "generate_max_ms": round(max(busy_gen), 2),
        **_summary("generate_idle", idle_gen),
        # The step's own time (requests answered between its layers do not count). Steps
        # differ in length (length-grouped batches); the budget below uses the median.
        "train_step_ms": round(train_step_ms, 2),
        "train_step_p95_ms": round(percentile(step_ms, 95), 2),
        "train_steps_timed": len(step_ms),
        "train_steps_during": steps_during,
        **_summary("ping", idle_ping),
        **_summary("ping_busy", busy_ping),
    }
    budget = train_step_ms + out["generate_idle_p95_ms"]
    out["generate_p95_budget_ms"] = round(budget, 2)
    out["generate_p95_within_budget"] = out["generate_p95_ms"] <= budget
    return out


def cmd_bench_worker(args: argparse.Namespace) -> int:
    from engine.commands._common import emit, load_host
    from engine.server.client import Client
    from engine.training.config import TrainConfig

    host = load_host(args)
    with tempfile.TemporaryDirectory(prefix="pb-bench-worker-") as tmp:
        root = Path(tmp) / "library"
        tasks = build_library(root, host, args.length)
        device = str(host.device)
        del host
        with Client.start(args.model, root, device, timeout=600) as client:
            info = client.call("model_info")
            out = {"bench": "worker", "model": info["name"], "device": info["device"],
                   "requests": args.requests, "max_new_tokens": args.max_new_tokens,
                   "train_batch_size": args.batch_size, "prompt_length": args.length,
                   "train_micro_batch": (TrainConfig().micro_batch if args.micro_batch is None
                                         else args.micro_batch),
                   **measure(client, tasks, args)}
    emit(args, out)
    return 0
