"""``promptbank bench serve``: task switching, mixed-task throughput, time to first token and
a bank of 1,000 prompts, side by side with PEFT prompt tuning and a model reload.

Prompts are random ``prompt``-method tensors scaled like the embedding table (speed does not
depend on what they say). PEFT gets the same tensors as prompt-tuning adapters on its own copy
of the model; both sides generate exactly the same number of tokens (no early end of turn).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import TYPE_CHECKING

from engine.commands.bench._geometry import add_option, bench_host
from engine.commands.bench._stats import percentile

if TYPE_CHECKING:
    from engine.model.host import ModelHost

WORDS = ("the", "service", "was", "slow", "but", "food", "great", "price", "fair", "room",
         "staff", "kind", "view", "noisy", "clean", "late", "order", "cold", "warm", "again")


def register(bsub: argparse._SubParsersAction) -> None:
    parser = bsub.add_parser("serve", help="switching, mixed-task batches, TTFT, 1,000 prompts")
    parser.add_argument("--alternations", type=int, default=100,
                        help="task switches timed (A, B, A, ...)")
    parser.add_argument("--tasks", type=int, default=16, help="tasks in the mixed batch")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--bank", type=int, default=1000, help="prompts held for the RSS test")
    add_option(parser)
    parser.set_defaults(func=cmd_bench_serve)


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _prompt(host: ModelHost, length: int, seed: int, task: str = ""):
    import torch

    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

    gen = torch.Generator().manual_seed(seed)
    scale = float(host.embeddings().weight.std())
    tensor = torch.randn(length, host.hidden_size, generator=gen) * scale
    return SoftPrompt("prompt", tensor, ModelGeometry.of(host), task=task)


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class _Peft:
    """PEFT prompt tuning on its own model copy, one adapter per task."""

    def __init__(self, host: ModelHost, prompts: dict[str, object]) -> None:
        import copy

        import torch
        from peft import PromptTuningConfig, TaskType, get_peft_model
        from transformers import AutoModelForCausalLM

        if host.resolved.source == "random":
            base = copy.deepcopy(host.model)
        else:
            base = AutoModelForCausalLM.from_pretrained(host.folder, dtype=host.dtype)
        base = base.to(host.device)
        base.eval()
        self.model = None
        for name, prompt in prompts.items():
            config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                        num_virtual_tokens=prompt.length)
            if self.model is None:
                self.model = get_peft_model(base, config, adapter_name=name)
            else:
                self.model.add_adapter(name, config)
            with torch.no_grad():
                self.model.prompt_encoder[name].embedding.weight.copy_(prompt.tensor)
        self.model.eval()
        self.pad_id = host.tokenizer.pad_token_id

    def close(self) -> None:
        """Free the model copy (so it does not count in the bank's memory)."""
        self.model = None

    def generate(self, task: str, ids: list[int], new_tokens: int) -> list[int]:
        import torch

        self.model.set_adapter(task, inference_mode=True)
        tensor = torch.tensor([ids], device=self.model.device)
        with torch.no_grad():
            out = self.model.generate(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                                      max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                      do_sample=False, pad_token_id=self.pad_id)
        return out[0, -new_tokens:].tolist()


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def cmd_bench_serve(args: argparse.Namespace) -> int:
    from engine.model.host import ModelHost
    from engine.serving.runtime import Runtime

    rng = random.Random(0)
    host = bench_host(args)
    reload_s = (None if args.geometry else
                _timed(lambda: ModelHost(args.model, device=args.device, dtype=args.dtype)))
    runtime = Runtime(host, max_prompts=max(256, args.tasks + 2))
    runtime.chat.stop_ids = set()  # every row makes exactly the tokens asked for
    names = [f"task{i}" for i in range(args.tasks)]
    prompts = {n: _prompt(host, 20, i) for i, n in enumerate(names)}
    prompts["long"] = _prompt(host, 100, 999)
    for name, prompt in prompts.items():
        runtime.register(name, prompt)
    peft = _Peft(host, prompts)
    tok = host.tokenizer

    def ids_of(text: str) -> list[int]:
        return tok(host.chat.context_text(text), add_special_tokens=False)["input_ids"]

    short = _text(rng, 8)
    switch = _switch_times(runtime, peft, ids_of, short, names, args.alternations)
    texts = [_text(rng, 30) for _ in names]
    mixed = _mixed_times(runtime, peft, ids_of, texts, names, args.new_tokens)
    ttft = _ttft_times(runtime, peft, ids_of, _text(rng, 30))
    # Freed first, so PEFT's model copy does not count in the bank's memory.
    peft.close()
    bank = _bank_times(host, rng, short, args.bank)
    result = _result(args, host, reload_s, {**switch, **mixed, **ttft, **bank})
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<28} {value}")
    return 0


def _switch_times(runtime, peft: _Peft, ids_of, short: str, names: list[str],
                  alternations: int) -> dict[str, list[float]]:
    """Switch latency: first token of B right after A, on both sides."""
    from engine.serving.runtime import GenRow

    a, b = names[0], names[1]
    runtime.generate([GenRow(short, a, max_new_tokens=1), GenRow(short, b, max_new_tokens=1)])
    switch = [_timed(lambda t=t: runtime.generate([GenRow(short, t, max_new_tokens=1)]))
              for t in [a, b] * (alternations // 2)]
    peft_switch = [_timed(lambda t=t: peft.generate(t, ids_of(short), 1))
                   for t in [a, b] * (alternations // 2)]
    # The switch alone, without the forward pass: a bank lookup vs PEFT's set_adapter.
    lookup = [_timed(lambda t=t: runtime.bank.resolve(t)) for t in [a, b] * 500]
    set_adapter = [_timed(lambda t=t: peft.model.set_adapter(t, inference_mode=True))
                   for t in [a, b] * 500]
    return {"switch": switch, "peft_switch": peft_switch, "lookup": lookup,
            "set_adapter": set_adapter}


def _mixed_times(runtime, peft: _Peft, ids_of, texts: list[str], names: list[str],
                 new_tokens: int) -> dict[str, float]:
    """Mixed-task throughput: one request per task, against one task and PEFT."""
    from engine.serving.runtime import GenRow

    mixed_rows = [GenRow(t, n, max_new_tokens=new_tokens)
                  for t, n in zip(texts, names, strict=True)]
    single_rows = [GenRow(t, names[0], max_new_tokens=new_tokens) for t in texts]
    # Each side runs twice, interleaved, and keeps its faster run (shared CPUs are noisy).
    mixed_s = single_s = peft_s = float("inf")
    for _ in range(2):
        mixed_s = min(mixed_s, _timed(lambda: runtime.generate(mixed_rows,
                                                               batch_size=len(mixed_rows))))
        single_s = min(single_s, _timed(lambda: runtime.generate(single_rows,
                                                                 batch_size=len(single_rows))))
        peft_s = min(peft_s, _timed(lambda: [peft.generate(n, ids_of(t), new_tokens)
                                             for t, n in zip(texts, names, strict=True)]))
    input_tokens = statistics.mean(len(ids_of(t)) for t in texts)
    # One decoding step of the mixed batch: the time of N new tokens less that of one.
    first_rows = [GenRow(t, n, max_new_tokens=1) for t, n in zip(texts, names, strict=True)]
    first_s = min(_timed(lambda: runtime.generate(first_rows, batch_size=len(first_rows)))
                  for _ in range(3))
    mixed_again = min(_timed(lambda: runtime.generate(mixed_rows, batch_size=len(mixed_rows)))
                      for _ in range(3))
    decode_step_s = (mixed_again - first_s) / max(1, new_tokens - 1)
    return {"mixed_s": mixed_s, "single_s": single_s, "peft_s": peft_s,
            "input_tokens": input_tokens, "first_s": first_s, "decode_step_s": decode_step_s}


def _ttft_times(runtime, peft: _Peft, ids_of, question: str) -> dict[str, float]:
    """Time to first token with a 100-token prompt: base model, cached prompt, PEFT."""
    from engine.serving.runtime import GenRow

    runtime.generate([GenRow(question, "long", max_new_tokens=1)])

    # Interleaved, so a slow spell of a shared machine hits all three sides alike.
    sides = {"base": lambda: runtime.generate([GenRow(question, max_new_tokens=1)]),
             "cached": lambda: runtime.generate([GenRow(question, "long", max_new_tokens=1)]),
             "peft": lambda: peft.generate("long", ids_of(question), 1)}
    samples: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(15):
        for name, fn in sides.items():
            samples[name].append(_timed(fn))
    base_ttft, cached_ttft, peft_ttft = (statistics.median(samples[n]) for n in sides)
    return {"base_ttft": base_ttft, "cached_ttft": cached_ttft, "peft_ttft": peft_ttft}


def _bank_times(host: ModelHost, rng: random.Random, short: str, size: int) -> dict:
    """A bank of many prompts: held in memory, switched among with no reload."""
    from engine.serving.runtime import GenRow, Runtime

    bank = Runtime(host)
    for i in range(size):
        bank.register(f"bank{i}", _prompt(host, 20, 10_000 + i))
    picks = [f"bank{rng.randrange(size)}" for _ in range(30)]
    bank_switch = [_timed(lambda t=t: bank.generate([GenRow(short, t, max_new_tokens=1)]))
                   for t in picks]
    held = sum(p.tensor.nbytes for v in bank.bank._pinned.values() for p in v.values())
    held += sum(t.nbytes for t in bank.bank._cache.values())
    # The bank itself is returned so that it is still held when _result reads the RSS.
    return {"bank": bank, "bank_kv_resident": len(bank.bank), "bank_switch": bank_switch,
            "held": held}


def _result(args: argparse.Namespace, host: ModelHost, reload_s: float | None, m: dict) -> dict:
    """The report, from the measurements ``m`` of the helpers above."""
    import torch

    ms = 1000.0
    return {
        "device": str(host.device), "model": host.name, "dtype": str(host.dtype),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(host.device) if host.device.type == "cuda" else None,
        "switch_lookup_p50_us": round(percentile(m["lookup"], 50) * 1e6, 1),
        "peft_set_adapter_p50_us": round(percentile(m["set_adapter"], 50) * 1e6, 1),
        "switch_p50_ms": round(percentile(m["switch"], 50) * ms, 2),
        "switch_p99_ms": round(percentile(m["switch"], 99) * ms, 2),
        "reload_s": None if reload_s is None else round(reload_s, 3),
        "peft_switch_p50_ms": round(percentile(m["peft_switch"], 50) * ms, 2),
        "peft_switch_p99_ms": round(percentile(m["peft_switch"], 99) * ms, 2),
        "mixed_batch_s": round(m["mixed_s"], 3), "single_task_batch_s": round(m["single_s"], 3),
        "peft_one_at_a_time_s": round(m["peft_s"], 3),
        "mixed_vs_peft_speedup": round(m["peft_s"] / m["mixed_s"], 2),
        "mixed_vs_single_task_ratio": round(m["single_s"] / m["mixed_s"], 3),
        "mixed_tokens_per_s": round(args.tasks * args.new_tokens / m["mixed_s"], 1),
        "mixed_input_tokens_mean": round(m["input_tokens"], 1),
        "mixed_first_token_s": round(m["first_s"], 4),
        "mixed_decode_step_ms": round(m["decode_step_s"] * ms, 3),
        "ttft_base_ms": round(m["base_ttft"] * ms, 2),
        "ttft_cached_ms": round(m["cached_ttft"] * ms, 2),
        "ttft_peft_ms": round(m["peft_ttft"] * ms, 2),
        "ttft_cached_vs_base_ratio": round(m["cached_ttft"] / m["base_ttft"], 3),
        "ttft_peft_vs_base_ratio": round(m["peft_ttft"] / m["base_ttft"], 3),
        "bank_prompts": args.bank, "bank_kv_resident": m["bank_kv_resident"],
        "bank_first_use_p50_ms": round(percentile(m["bank_switch"], 50) * ms, 2),
        "bank_1000_rss_mb": round(_rss_mb(), 1),
        "bank_tensors_mb": round(m["held"] / 2**20, 1),
    }
