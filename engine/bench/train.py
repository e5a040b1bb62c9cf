"""``promptbank bench train``: our shared-prefix trainer vs PEFT ``PromptTuningConfig``.

Same model, data, batches, prompt length and initial prompt; data tokens/s of a training step
(forward, backward, AdamW) and the difference of the two step-0 losses.
"""

from __future__ import annotations

import argparse
import time

from engine.bench.quality import DATA_DIR, load_task

FALLBACK = [("a gripping , funny and moving film", "positive"),
            ("the plot is thin and the jokes fall flat", "negative")] * 64


def _rows(host, data_dir, count: int):
    from engine.batching import encode_row

    pairs = (load_task("sst2", data_dir, count, 1).train if (data_dir / "sst2").is_dir()
             else FALLBACK[:count])
    return [encode_row(host, i, o) for i, o in pairs]


def _time_steps(step, batches, warmup: int = 1) -> float:
    for batch in batches[:warmup]:
        step(batch)
    started = time.perf_counter()
    for batch in batches[warmup:]:
        step(batch)
    seconds = time.perf_counter() - started
    return sum(b.tokens for b in batches[warmup:]) / seconds


def compare(host, rows, length: int, batch_size: int, steps: int) -> dict:
    """One length: tokens/s of ours and PEFT's, their ratio, and the step-0 loss difference."""
    import torch
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.batching import collate, length_grouped_order
    from engine.kv import prompt_past
    from engine.scoring import batch_loss

    order = length_grouped_order([len(r) for r in rows], batch_size, seed=0)
    pad = host.tokenizer.pad_token_id
    batches = [collate([rows[i] for i in b], pad).to(host.device)
               for b in order[: steps + 1] if len(b) == batch_size]
    init = host.embeddings().weight.detach()[:length].float().clone()

    ours = torch.nn.Parameter(init.clone())
    ours_opt = torch.optim.AdamW([ours], lr=1e-3)

    def our_step(batch):
        loss = batch_loss(host, prompt_past(host, "prompt", ours), batch)
        loss.backward()
        ours_opt.step()
        ours_opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    base = AutoModelForCausalLM.from_pretrained(host.folder, dtype=host.dtype).to(host.device)
    model = get_peft_model(base, PromptTuningConfig(task_type=TaskType.CAUSAL_LM,
                                                    num_virtual_tokens=length))
    with torch.no_grad():
        model.prompt_encoder["default"].embedding.weight.copy_(init)
    peft_params = [p for p in model.parameters() if p.requires_grad]
    peft_opt = torch.optim.AdamW(peft_params, lr=1e-3)

    def peft_step(batch):
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                    labels=batch.labels)
        out.loss.backward()
        peft_opt.step()
        peft_opt.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    with torch.no_grad():
        ours_loss0 = float(batch_loss(host, prompt_past(host, "prompt", ours), batches[0]))
        peft_loss0 = float(model(input_ids=batches[0].input_ids,
                                 attention_mask=batches[0].attention_mask,
                                 labels=batches[0].labels).loss)
    ours_tps = _time_steps(our_step, batches)
    peft_tps = _time_steps(peft_step, batches)
    return {"length": length, "batch_size": batch_size,
            "ours_tokens_per_s": round(ours_tps, 1), "peft_tokens_per_s": round(peft_tps, 1),
            "speedup": round(ours_tps / peft_tps, 3),
            "step0_loss_diff": abs(ours_loss0 - peft_loss0)}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="our trainer vs PEFT prompt tuning: data tokens/s")
    p.add_argument("--lengths", default="20,100")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=4, help="timed steps per trainer")
    p.add_argument("--data", default=str(DATA_DIR))
    p.set_defaults(func=cmd_train_bench)


def cmd_train_bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.commands._common import emit, load_host

    host = load_host(args)
    rows = _rows(host, Path(args.data), args.batch_size * (args.steps + 1) * 4)
    runs = [compare(host, rows, int(n), args.batch_size, args.steps)
            for n in args.lengths.split(",")]
    emit(args, {"device": str(host.device), "model": host.name, "runs": runs})
    return 0
