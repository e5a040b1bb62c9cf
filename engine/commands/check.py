"""``promptbank check``: does Promptbank work, and is it fast, on this computer? One command
that runs the tests that matter on the device, the training and serving benchmarks against
PEFT, the worker serving while it trains, and a default training of the example questions
task, and prints each figure beside its target.

Every stage runs in a child process (``promptbank bench ...``, ``pytest``), so a crash is
that stage's failure, not the check's. The command exits non-zero only when something is
wrong (a failed test, a stage that crashed, a worker that died, step-0 losses that differ
from PEFT's); a missed speed target is reported, not fatal.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.api.launch import module_command, source_root
from engine.commands.bench._geometry import GEOMETRIES

#: The engine tests that matter on a device: exact training passes and PEFT, mixed batches,
#: serving while training, out-of-memory refusal, resume.
TESTS = ["tests/engine/forward/test_forward.py", "tests/engine/interop/test_interop.py",
         "tests/engine/serving/test_runtime.py", "tests/engine/server/test_worker_breaks.py",
         "tests/engine/forward/test_gpu_faults.py", "tests/engine/training/test_train_job.py",
         "tests/engine/training/test_train_micro_batch.py"]
QUICK_TESTS = ["tests/engine/forward/test_forward.py"]


@dataclass
class Figure:
    """One line of the verdict: what was measured, its target, and whether it was met.

    ``status``: pass, miss (a target not met), fail (something is wrong), info (no target)
    or skipped (with the reason in ``measured``)."""

    stage: str
    measured: str
    target: str = ""
    status: str = "info"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Check:
    """Everything one check needs to run its stages."""

    args: argparse.Namespace
    quick: bool
    figures: list[Figure] = field(default_factory=list)

    @property
    def geometry(self) -> list[str]:
        """``--geometry NAME`` for the benchmarks when the check runs on random weights."""
        return ["--geometry", self.args.geometry] if self.args.geometry else []

    def engine(self, *argv: str, timeout: float = 900) -> dict:
        """``promptbank --json <global options> argv`` in a child process: its JSON."""
        cmd = [*module_command("engine.cli"), "--json", "--device", self.args.device,
               "--model", self.args.model, *argv]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              check=False)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise StageFailed(f"`promptbank {' '.join(argv[:2])}` failed: {tail}")
        return json.loads(done.stdout.strip().splitlines()[-1])


class StageFailed(Exception):
    """A stage's child process failed; the message says how."""


def _ratio(value: float | None, target: float, *, at_least: bool = True) -> str:
    if value is None:
        return "skipped"
    return "pass" if (value >= target if at_least else value <= target) else "miss"


def stage_device(check: Check) -> None:
    import torch

    from engine.model.device import pick_device, pick_dtype

    device = pick_device(check.args.device)
    facts = {"device": str(device), "torch": torch.__version__,
             "cuda": torch.version.cuda, "dtype": str(pick_dtype(device, "auto"))}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        facts.update(gpu=props.name, memory_gb=round(props.total_memory / 2**30, 1))
        text = f"{props.name}, {facts['memory_gb']} GB, torch {torch.__version__}, CUDA " \
               f"{torch.version.cuda}, {facts['dtype']}"
    else:
        text = f"{device} ({os.cpu_count()} cores), torch {torch.__version__}, " \
               f"{facts['dtype']}"
    check.figures.append(Figure("device", text, data=facts))


def stage_tests(check: Check) -> None:
    root = source_root()
    files = [f for f in (QUICK_TESTS if check.quick else TESTS) if (root / f).is_file()]
    if not files:
        check.figures.append(Figure("engine tests", "skipped: this install has no test "
                                    "suite (run it from a source checkout)", status="skipped"))
        return
    from engine.model.device import pick_device

    env = {**os.environ, "PROMPTBANK_TEST_DEVICE": pick_device(check.args.device).type}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-m", "not integration", *files], cwd=root, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    summary = (done.stdout.strip().splitlines() or ["no output"])[-1]
    failed = done.returncode not in (0, 5)
    check.figures.append(Figure("engine tests on the device", summary, "0 failed",
                                "fail" if failed else "pass", {"files": files}))


def _no_peft() -> bool:
    import importlib.util

    return importlib.util.find_spec("peft") is None


NO_PEFT = "skipped: PEFT is not installed here, so there is nothing to compare with " \
          "(pip install peft)"


def stage_train(check: Check) -> None:
    if _no_peft():
        check.figures.append(Figure("training vs PEFT", NO_PEFT, status="skipped"))
        return
    shapes = [("the model", check.geometry, "8,32", "20,100")]
    if not check.args.no_geometry:
        shapes.append(("llama-1b shape", ["--geometry", "llama-1b"], "8", "20,100"))
    if check.quick:
        shapes = [("the model", check.geometry, "8", "20")]
    for name, extra, batches, lengths in shapes:
        out = check.engine("bench", "train", *extra, "--batch-sizes", batches, "--lengths",
                           lengths, "--steps", "3" if check.quick else "8",
                           "--cycle", "2" if check.quick else "8")
        for run in out["runs"]:
            label = f"train vs PEFT ({name}, batch {run['batch_size']}, n={run['length']})"
            speedup = run.get("speedup")
            check.figures.append(Figure(label, f"{speedup}x ({run['ours_tokens_per_s']:,} "
                                        "tokens/s)", "≥ 2x", _ratio(speedup, 2.0), run))
            diff = run.get("step0_loss_diff")
            if diff is not None and diff > 1e-2:
                check.figures.append(Figure(f"{label}: step-0 loss", f"differs by {diff:.3g}",
                                            "≤ 0.01", "fail", run))
            busy = run.get("ours_gpu_busy")
            if busy is not None and run["batch_size"] == 32:
                check.figures.append(Figure(f"GPU busy during a step ({name}, batch 32; "
                                            "torch.profiler)", f"{busy:.0%}", "≥ 70%",
                                            _ratio(busy, 0.7), run))


def stage_serve(check: Check) -> None:
    if _no_peft():
        check.figures.append(Figure("serving vs PEFT", NO_PEFT, status="skipped"))
        return
    extra = ["--tasks", "4", "--alternations", "4", "--bank", "20", "--new-tokens", "4"] \
        if check.quick else ["--alternations", "40", "--bank", "200"]
    out = check.engine("bench", "serve", *check.geometry, *extra)
    tasks = 4 if check.quick else 16
    check.figures += [
        Figure(f"{tasks} tasks in one mixed batch vs PEFT one at a time",
               f"{out['mixed_vs_peft_speedup']}x", "≥ 4x",
               _ratio(out["mixed_vs_peft_speedup"], 4.0), out),
        Figure(f"decoding step, {tasks} mixed rows", f"{out['mixed_decode_step_ms']:.2f} ms",
               "≤ 5 ms", _ratio(out["mixed_decode_step_ms"], 5.0, at_least=False), out),
        Figure("first token with a cached 100-token prompt vs the base model",
               f"{out['ttft_cached_vs_base_ratio']}x", "≤ 1.05x",
               _ratio(out["ttft_cached_vs_base_ratio"], 1.05, at_least=False), out),
    ]


def stage_worker(check: Check) -> None:
    if check.geometry:
        check.figures.append(Figure("the worker serves while it trains", "skipped: a worker "
                                    "needs real weights (the engine tests cover it)",
                                    status="skipped"))
        return
    extra = ["--requests", "4", "--pings", "20"] if check.quick else ["--requests", "20"]
    out = check.engine("bench", "worker", *extra)
    # A worker that died fails the child process (StageFailed); here it answered them all.
    check.figures.append(Figure("the worker serves while it trains",
                                f"generate p95 {out['generate_p95_ms']} ms while training "
                                f"(a step {out['train_step_ms']} ms); the worker stayed up",
                                "no worker death", "pass", out))


def stage_default_train(check: Check) -> None:
    extra = ["--steps", "1", "--cycle", "1"]
    out = check.engine("bench", "train", *check.geometry, "--no-peft", "--default-run",
                       "--batch-sizes", "1", "--lengths", "1", *extra, timeout=1800)
    run = out["default_train"]
    accuracy = "" if check.geometry else f"; accuracy {run['best_metric']:.1%}"
    check.figures.append(Figure("default training, 1,000 questions, 6 labels",
                                f"{run['seconds']:.1f} s, {run['steps']} steps{accuracy}",
                                "≤ 30 s", _ratio(run["seconds"], 30.0, at_least=False), run))


STAGES: list[tuple[str, Callable[[Check], None]]] = [
    ("device", stage_device), ("engine tests", stage_tests),
    ("training vs PEFT", stage_train), ("serving", stage_serve),
    ("serving while training", stage_worker), ("default training", stage_default_train)]


def run_check(args: argparse.Namespace, stages=None) -> Check:
    """Run every stage in order, with a progress line each; a stage that fails is recorded."""
    check = Check(args, args.quick)
    todo = stages or STAGES
    for number, (name, stage) in enumerate(todo, 1):
        print(f"[{number}/{len(todo)}] {name}…", file=sys.stderr, flush=True)
        began = time.perf_counter()
        try:
            stage(check)
        except (StageFailed, subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            check.figures.append(Figure(name, f"failed: {exc}", status="fail"))
        print(f"      {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    return check


def table(figures: list[Figure]) -> str:
    """The verdict as a plain-text table."""
    width = max((len(f.stage) for f in figures), default=10)
    lines = [f"{'stage':<{width}}  {'result':<8}  {'target':<10}  measured"]
    for f in figures:
        lines.append(f"{f.stage:<{width}}  {f.status:<8}  {f.target:<10}  {f.measured}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="does Promptbank work, and is it fast, on this computer")
    p.add_argument("--quick", action="store_true", help="a subset of about two minutes")
    p.add_argument("--no-geometry", action="store_true",
                   help="skip the random-weight 1B shape (slow on a CPU)")
    p.add_argument("--geometry", choices=sorted(GEOMETRIES), default=None,
                   help="time the model's stages on random weights of this shape instead of "
                        "--model (a GPU machine without the model; accuracy is then "
                        "meaningless)")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    check = run_check(args)
    wrong = [f for f in check.figures if f.status == "fail"]
    verdict = "fail" if wrong else "pass"
    if args.json:
        print(json.dumps({"verdict": verdict, "quick": check.quick,
                          "figures": [asdict(f) for f in check.figures]}))
    else:
        print(table(check.figures))
        print(f"\nVerdict: {'something is wrong' if wrong else 'works'}"
              + ("" if not wrong else f" ({len(wrong)} failed: "
                 f"{', '.join(f.stage for f in wrong)})"))
    return 1 if wrong else 0
