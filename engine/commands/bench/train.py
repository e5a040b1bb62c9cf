"""``promptbank bench train``: our trainer vs PEFT ``PromptTuningConfig``, step by step.

Ours is the real ``TrainingJob`` step (prompt method), PEFT's the usual concatenated pass; both
cycle through the same batches from the same initial prompt, each batch seen twice before the
timing starts (the steady state of a run, with its CUDA graphs captured). Reported: data
tokens/s of a full step (forward, backward, clipping, AdamW), the step-0 losses, and on a GPU
the GPU-busy share of a step, kernels per step and peak memory. On a GPU PEFT runs with cuDNN
attention off as we run (faster for PEFT too), and with ``--peft-default`` also with torch's
default backends; the speed-up is taken over the fastest PEFT run. ``--default-run`` adds the
wall time of a default ``promptbank train``; ``--neighbour`` times each case again while a busy
process shares the cores (``--threads`` sets the engine's own thread count).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from engine.commands.bench._geometry import add_option, bench_host
from engine.commands.bench._gpu import busy_share, peak_memory_mb, reset_peak, synchronize
from engine.commands.bench._neighbour import busy_neighbour
from engine.commands.bench._peft import peft_batch, peft_model
from engine.commands.bench.quality import DATA_DIR, load_task

if TYPE_CHECKING:
    from engine.model.host import ModelHost

FALLBACK = [("a gripping , funny and moving film", "positive"),
            ("the plot is thin and the jokes fall flat", "negative")] * 64
TASK = "bench"


def _pairs(data_dir: Path, count: int) -> list[tuple[str, str]]:
    if (data_dir / "sst2").is_dir():
        return load_task("sst2", data_dir, count, 1).train
    return (FALLBACK * (count // len(FALLBACK) + 1))[:count]


SENTIMENT = "Is the sentiment of this review positive or negative?"
QUESTION_KIND = ("What kind of answer does this question ask for: person, place, number, "
                 "date, definition or reason?")


def _library(folder: Path, pairs: list[tuple[str, str]], labels: list[str], *,
             eval_pairs: list[tuple[str, str]] | None = None, instruction: str = SENTIMENT):
    from engine.library import Library

    def write(name: str, rows: list[tuple[str, str]]) -> Path:
        path = folder / name
        path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
        return path

    lib = Library(folder / "lib")
    lib.create_task(TASK, kind="classify", labels=labels, instruction=instruction)
    if eval_pairs:
        lib.add_dataset(TASK, write("train.jsonl", pairs),
                        eval_path=write("eval.jsonl", eval_pairs))
    else:
        lib.add_dataset(TASK, write("train.jsonl", pairs), eval_fraction=0.0)
    return lib


def _timed(device, step, batches: int) -> float:
    synchronize(device)
    started = time.perf_counter()
    for _ in range(batches):
        step()
    synchronize(device)
    return time.perf_counter() - started


def ours(host: ModelHost, lib, length: int, batch_size: int, steps: int, cycle: int) -> dict:
    """Our trainer's steps over a fixed cycle of ``cycle`` batches (seen twice first, so every
    shape is captured on a GPU): step-0 loss, tokens/s, and the batches and init it used."""
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob

    config = TrainConfig(method="prompt", length=length, init="vocab", lr=1e-3,
                         batch_size=batch_size, steps=10_000, eval_every=0,
                         checkpoint_every=0)
    job = TrainingJob.start(lib, host, TASK, config)
    order = [b for b in job.order if len(b) == batch_size][:cycle]
    # The steady state: the same batches again and again (a bench-only override of the
    # task's slot, which draws the batches).
    job.slot.order = order
    job.slot._epoch_order = lambda epoch: order
    batches = [[job.rows[i] for i in b] for b in order]
    init = job.params.initial().detach().clone()
    reset_peak(host.device)
    loss0 = job.step()[0].loss
    for _ in range(2 * len(order) - 1):
        job.step()
    tokens = job.tokens
    seconds = _timed(host.device, job.step, steps)
    result = {"ours_tokens_per_s": round((job.tokens - tokens) / seconds, 1),
              "ours_step_ms": round(1000 * seconds / steps, 2), "ours_loss0": loss0,
              **{f"ours_{k}": v for k, v in busy_share(host.device, job.step).items()}}
    result["ours_peak_mb"] = peak_memory_mb(host.device)
    result["ours_graphs"] = job.passes.graphs.captures
    return {**result, "batches": batches, "init": init}


def peft(host: ModelHost, model, init, batches, steps: int, cudnn: bool) -> dict:
    """PEFT prompt tuning on the same cycle of batches from the same initial prompt."""
    import torch

    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.copy_(init)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    prepared = [peft_batch(host, rows) for rows in batches]
    sizes = [sum(len(r) for r in rows) for rows in batches]
    position = [0]

    def step() -> float:
        ids, mask, labels = prepared[position[0] % len(prepared)]
        position[0] += 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    previous = None
    if host.device.type == "cuda":
        previous = torch.backends.cuda.cudnn_sdp_enabled()
        torch.backends.cuda.enable_cudnn_sdp(cudnn)
    try:
        reset_peak(host.device)
        loss0 = step()
        for _ in range(2 * len(prepared) - 1):
            step()
        tokens = sum(sizes[(position[0] + i) % len(sizes)] for i in range(steps))
        seconds = _timed(host.device, step, steps)
        busy = busy_share(host.device, step)
    finally:
        if previous is not None:
            torch.backends.cuda.enable_cudnn_sdp(previous)
    return {"tokens_per_s": round(tokens / seconds, 1), "step_ms": round(1000 * seconds / steps, 2),
            "loss0": loss0, **busy, "peak_mb": peak_memory_mb(host.device)}


def _peft_variants(host: ModelHost, default_too: bool) -> list[tuple[str, bool]]:
    """(name, cuDNN attention on) of the PEFT runs: on a GPU with cuDNN attention off, as we
    run (faster for PEFT too), and on request also with torch's default."""
    if host.device.type != "cuda":
        return [("peft", True)]
    return [("peft_no_cudnn", False)] + ([("peft", True)] if default_too else [])


def with_neighbour(host: ModelHost, lib, length: int, batch: int, args: argparse.Namespace) -> dict:
    """The same comparison while one busy process shares the cores: ours, PEFT, speed-up."""
    with busy_neighbour() as pid:
        run = ours(host, lib, length, batch, args.steps, args.cycle)
        out = {"neighbour_pid": pid, "ours_tokens_per_s": run["ours_tokens_per_s"],
               "ours_step_ms": run["ours_step_ms"]}
        if not args.no_peft:
            _, cudnn = _peft_variants(host, default_too=False)[0]
            base = peft(host, peft_model(host, length), run["init"], run["batches"], args.steps,
                        cudnn)
            out.update(peft_tokens_per_s=base["tokens_per_s"], peft_step_ms=base["step_ms"],
                       speedup=round(run["ours_tokens_per_s"] / base["tokens_per_s"], 3))
    return out


def default_run(host: ModelHost) -> dict:
    """Wall time of a training with every default on the example questions (1,000 training
    rows, 200 held out, 6 labels), model load excluded."""
    from engine.library.examples import examples_dir
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job

    rows = [json.loads(line) for line in
            (examples_dir() / "questions.jsonl").read_text().splitlines()]
    pairs = [(r["input"], r["output"]) for r in rows]
    labels = sorted({o for _, o in pairs})
    with tempfile.TemporaryDirectory() as tmp:
        lib = _library(Path(tmp), pairs[:1000], labels, eval_pairs=pairs[1000:],
                       instruction=QUESTION_KIND)
        synchronize(host.device)
        started = time.perf_counter()
        result = run_job(TrainingJob.start(lib, host, TASK, TrainConfig()))
        seconds = time.perf_counter() - started
    return {"task": "questions (1,000 train + 200 eval rows, 6 labels)",
            "seconds": round(seconds, 1), "steps": result.steps,
            "best_metric": result.best_metric, "metric_name": result.metric_name}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="our trainer vs PEFT prompt tuning: data tokens/s")
    p.add_argument("--lengths", default="20,100", help="prompt lengths to compare")
    p.add_argument("--batch-sizes", default="8", help="batch sizes to compare")
    p.add_argument("--steps", type=int, default=8, help="timed steps per trainer")
    p.add_argument("--cycle", type=int, default=8,
                   help="batches cycled through (each seen twice before timing)")
    p.add_argument("--data", default=str(DATA_DIR))
    p.add_argument("--no-peft", action="store_true", help="skip the PEFT baseline")
    p.add_argument("--peft-default", action="store_true",
                   help="on a GPU also time PEFT with torch's default attention backends "
                        "(cuDNN attention on: slower, it rebuilds per shape)")
    p.add_argument("--default-run", action="store_true",
                   help="also time a training with every default on the example questions")
    p.add_argument("--neighbour", action="store_true",
                   help="time every case again while one busy process shares the cores")
    add_option(p)
    p.set_defaults(func=cmd_train_bench)


def cmd_train_bench(args: argparse.Namespace) -> int:
    import torch

    from engine.commands._common import emit

    host = bench_host(args)
    data = Path(args.data)
    sizes = [int(b) for b in args.batch_sizes.split(",")]
    cases = [(int(n), b) for b in sizes for n in args.lengths.split(",")]
    need = max(sizes) * (args.cycle + 2) * 4
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        lib = _library(Path(tmp), _pairs(data, need), ["positive", "negative"])
        for length, batch in cases:
            run = ours(host, lib, length, batch, args.steps, args.cycle)
            batches, init = run.pop("batches"), run.pop("init")
            run = {"length": length, "batch_size": batch, **run}
            if not args.no_peft:
                model = peft_model(host, length)
                for name, cudnn in _peft_variants(host, args.peft_default):
                    result = peft(host, model, init, batches, args.steps, cudnn)
                    run.update({f"{name}_{k}": v for k, v in result.items()})
                    run.setdefault("step0_loss_diff", abs(run["ours_loss0"] - result["loss0"]))
                best = max(v for k, v in run.items() if k.startswith("peft")
                           and k.endswith("tokens_per_s"))
                run["speedup"] = round(run["ours_tokens_per_s"] / best, 3)
            if args.neighbour:
                run["neighbour"] = with_neighbour(host, lib, length, batch, args)
            print(json.dumps(run), file=sys.stderr, flush=True)
            runs.append(run)
    out = {"device": str(host.device), "model": host.name, "dtype": str(host.dtype),
           "torch": torch.__version__, "threads": torch.get_num_threads(), "runs": runs}
    if host.device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(host.device)
    if args.default_run:
        out["default_train"] = default_run(host)
    emit(args, out)
    return 0

