"""``promptbank bench memory``: what GGUF conversion, loading and training cost in memory at
published Llama shapes (random weights), measured against ``engine.model.memory``'s plan.

Each measurement runs in a child process of its own, so its peak is its own: the resident
set's high-water mark on the CPU (``wait4``), ``max_memory_allocated`` on a GPU. A shape's
GGUF is written with random Q4_0 blocks (the size of a 4-bit file) and the embedded model's
tokenizer; conversion and loading go through the engine's own code. Training runs one batch
of ``--batch`` rows of ``--tokens`` tokens (8 of them scored) for each method, the whole batch
in one pass, and is compared with the plan for that pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.commands.bench._geometry import GEOMETRIES, embedded_tokenizer, geometry_config
from engine.errors import PromptbankError

SHAPES = ("smollm2-135m", "llama-1b", "llama-3b", "llama-8b")
#: Q4_0: per 32 values a float16 scale and 16 bytes of 4-bit values.
BLOCK, BLOCK_BYTES = 32, 18
ANSWER_TOKENS = 8


def register(bsub: argparse._SubParsersAction) -> None:
    parser = bsub.add_parser("memory", help="conversion, load and training peaks vs the plan")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help=f"comma list of {', '.join(SHAPES)}")
    parser.add_argument("--train-shapes", default="smollm2-135m,llama-1b",
                        help="shapes whose training step is measured (the others: planned)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="where the GGUF files and conversions go (default: a temp folder)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.set_defaults(func=cmd_bench_memory)


def write_random_gguf(path: Path, shape: str) -> None:
    """A GGUF of the Llama ``shape`` with random Q4_0 weights and the embedded tokenizer."""
    import gguf
    import numpy as np
    from transformers.integrations.gguf import read_gguf_metadata

    from engine.model.spec import default_gguf_path

    geometry = GEOMETRIES[shape]
    hidden, inner = geometry["hidden_size"], geometry["intermediate_size"]
    heads, kv = geometry["num_attention_heads"], geometry["num_key_value_heads"]
    layers, vocab = geometry["num_hidden_layers"], geometry["vocab_size"]
    head_dim = hidden // heads
    source, _ = read_gguf_metadata(str(default_gguf_path()),
                                   ("tokenizer.ggml.tokens", "tokenizer.ggml.merges"))
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"random {shape}")
    writer.add_file_type(2)
    writer.add_context_length(8192)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(inner)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(geometry["rope_theta"])
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(source["tokenizer.ggml.tokens"])
    writer.add_token_merges(source["tokenizer.ggml.merges"])
    for key in ("bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id"):
        writer.add_uint32(f"tokenizer.ggml.{key}", int(source[f"tokenizer.ggml.{key}"]))
    matrices = [("token_embd.weight", (vocab, hidden))]
    if not geometry["tie_word_embeddings"]:
        matrices.append(("output.weight", (vocab, hidden)))
    norms = [("output_norm.weight", hidden)]
    for i in range(layers):
        matrices += [(f"blk.{i}.attn_q.weight", (heads * head_dim, hidden)),
                     (f"blk.{i}.attn_k.weight", (kv * head_dim, hidden)),
                     (f"blk.{i}.attn_v.weight", (kv * head_dim, hidden)),
                     (f"blk.{i}.attn_output.weight", (hidden, heads * head_dim)),
                     (f"blk.{i}.ffn_gate.weight", (inner, hidden)),
                     (f"blk.{i}.ffn_up.weight", (inner, hidden)),
                     (f"blk.{i}.ffn_down.weight", (hidden, inner))]
        norms += [(f"blk.{i}.attn_norm.weight", hidden), (f"blk.{i}.ffn_norm.weight", hidden)]
    for name, (rows, cols) in matrices:
        packed = (rows, cols // BLOCK * BLOCK_BYTES)
        writer.add_tensor_info(name, packed, np.dtype(np.uint8), packed[0] * packed[1],
                               raw_dtype=gguf.GGMLQuantizationType.Q4_0)
    for name, size in norms:
        writer.add_tensor_info(name, (size,), np.dtype(np.float32), size * 4)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    rng = np.random.default_rng(0)
    scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    for _, (rows, cols) in matrices:
        blocks = rng.integers(0, 256, (rows, cols // BLOCK, BLOCK_BYTES), dtype=np.uint8)
        blocks[:, :, :2] = scale
        writer.write_tensor_data(blocks.reshape(rows, -1))
    for _, size in norms:
        writer.write_tensor_data(np.ones(size, dtype=np.float32))
    writer.close()


def _child(spec: dict) -> dict:
    """One measurement, inside its own process."""
    import torch

    started = time.perf_counter()
    if spec["kind"] == "convert":
        from engine.model.convert import convert

        out = Path(spec["out"])
        out.mkdir(parents=True, exist_ok=True)
        record = convert(Path(spec["gguf"]), out, lambda stage, fraction: None)
        return {"seconds": round(time.perf_counter() - started, 1), "dtype": record.dtype}
    if spec["kind"] == "load":
        from engine.model.device import load_weights, place_model

        folder = Path(spec["folder"])
        placement = place_model(torch.device("cpu"), "auto", folder)
        load_weights(folder, placement.dtype)
        return {"seconds": round(time.perf_counter() - started, 1),
                "dtype_reason": placement.reason}
    return _train_child(spec, started)


def _train_child(spec: dict, started: float) -> dict:
    import torch

    from engine.methods import get_method
    from engine.model import memory
    from engine.model.chat import Row
    from engine.model.host import ModelHost
    from engine.prompts.soft_prompt import ModelGeometry, prompt_shape
    from engine.training.params import PromptParams
    from engine.training.passes import Pass, Passes

    tokenizer = embedded_tokenizer()
    host = ModelHost.random(geometry_config(spec["shape"], tokenizer), tokenizer,
                            name=spec["shape"], device=spec["device"])
    method, batch, tokens = spec["method"], spec["batch"], spec["tokens"]
    geometry = ModelGeometry.of(host)
    tensor = torch.randn(prompt_shape(method, 20, geometry)) * 0.02
    params = PromptParams(get_method(method), tensor.to(host.device), geometry)
    passes = Passes(host, [params], [[]], graphs=False)
    rows = [Row(list(range(100 + i, 100 + i + tokens - ANSWER_TOKENS)),
                list(range(300, 300 + ANSWER_TOKENS))) for i in range(batch)]
    if host.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(host.device)
    for _ in range(2):
        passes.run(Pass(rows, [0] * batch, [1.0 / (batch * ANSWER_TOKENS)] * batch))
    dtype = str(host.dtype).removeprefix("torch.")
    plan = memory.plan_training(host.shape, device=str(host.device), dtype=dtype,
                                free=1 << 50, method=method, length=20, batch=batch,
                                tokens=tokens, answer_tokens=ANSWER_TOKENS, rows_per_pass=batch)
    out = {"seconds": round(time.perf_counter() - started, 1), "dtype": dtype,
           "planned_mb": round(plan.total / 2**20)}
    if host.device.type == "cuda":
        out["peak_mb"] = round((torch.cuda.max_memory_allocated(host.device)
                                + memory.CUDA_RUNTIME) / 2**20)
    return out


CARDS_GB = (16, 24, 48)
#: What this project's 24 GB machine reports free with nothing running.
CPU_FREE_GB = 22.5
BASES = ("bfloat16", "8bit", "4bit")


def planned_fits(batch: int, tokens: int) -> list[dict]:
    """What the plan says fits on 16, 24 and 48 GB cards for each shape and base, and on a
    24 GB CPU machine in its dtype: training a 20-token prefix at ``batch`` rows of ``tokens``
    tokens (rows per pass, checkpointing)."""
    from types import SimpleNamespace

    from engine.model import memory

    out = []
    for shape_name in SHAPES:
        geometry = GEOMETRIES[shape_name]
        shape = memory.Shape.of_config(SimpleNamespace(**geometry))
        cpu_free = int(CPU_FREE_GB * 2**30)
        try:
            cpu_dtype = memory.cpu_dtype(shape.parameters, cpu_free)[0]
        except PromptbankError:
            cpu_dtype = "bfloat16"
        places = [("cuda", card, "bfloat16", base) for card in CARDS_GB for base in BASES]
        places.append(("cpu", CPU_FREE_GB, cpu_dtype, cpu_dtype))
        for device, free_gb, dtype, base in places:
            plan = memory.plan_training(
                shape, device=device, dtype=dtype, free=int(free_gb * 2**30), method="prefix",
                length=20, batch=batch, tokens=tokens, answer_tokens=ANSWER_TOKENS,
                quantize=base if base in memory.QUANTIZED_BYTES else "")
            out.append({"shape": shape_name, "device": device, "free_gb": free_gb,
                        "base": base, "fits": plan.fits, "rows_per_pass": plan.rows_per_pass,
                        "checkpointing": plan.checkpointing,
                        "planned_gb": round(plan.total / 2**30, 1)})
    return out


def _measure(spec: dict) -> dict:
    """Run ``spec`` in a child process; its result and its peak resident set (MB)."""
    argv = [sys.executable, "-m", "engine.cli", "bench", "memory", "--child", json.dumps(spec)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or ["failed"])[-1][:300]}
    result = json.loads(out.strip().splitlines()[-1])
    reported = [line for line in err.splitlines() if line.startswith("peak-rss ")]
    if reported and "peak_mb" not in result:
        result["peak_mb"] = round(int(reported[-1].split()[1]) / 2**20)
    return result


def cmd_bench_memory(args: argparse.Namespace) -> int:
    if args.child:
        import resource

        result = _child(json.loads(args.child))
        print(json.dumps(result))
        # ru_maxrss is in KiB on Linux; the parent reads it from here.
        print(f"peak-rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}",
              file=sys.stderr)
        return 0
    from engine.commands._common import emit

    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for shape in [s.strip() for s in args.shapes.split(",") if s.strip()]:
        row: dict = {"shape": shape}
        gguf = work / f"{shape}.gguf"
        began = time.perf_counter()
        if not gguf.is_file():
            write_random_gguf(gguf, shape)
        row["gguf_gb"] = round(gguf.stat().st_size / 2**30, 2)
        row["write_s"] = round(time.perf_counter() - began, 1)
        folder = work / f"{shape}-converted"
        if not (folder / "config.json").is_file():
            row["convert"] = _measure({"kind": "convert", "gguf": str(gguf), "out": str(folder)})
        row["converted_gb"] = round(sum(p.stat().st_size for p in folder.glob("*.safetensors"))
                                    / 2**30, 2)
        row["load"] = _measure({"kind": "load", "folder": str(folder)})
        if shape in args.train_shapes.split(","):
            row["train"] = {method: _measure({"kind": "train", "shape": shape,
                                              "method": method, "batch": args.batch,
                                              "tokens": args.tokens, "device": args.device})
                            for method in ("prefix", "prompt")}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    emit(args, {"work": str(work), "cpu_count": os.cpu_count(), "shapes": rows,
                "planned_cards": planned_fits(args.batch, args.tokens)})
    return 0
