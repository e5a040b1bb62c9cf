"""What a model and a run need in memory, computed before anything is loaded, and the choices
that follow: the CPU's dtype, the rows per training pass, activation checkpointing, refusal.

The activation model counts what autograd keeps for a soft prompt's backward through frozen
layers (inputs of norms, attention's queries/keys/values/output, the MLP's gate, up and
activation; not the inputs of matrix products, whose weights need no gradient), plus one
layer's working set and the output head at the answer tokens. ``promptbank bench memory``
holds these numbers against measured peaks.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.api.training import MemoryPlan
from engine.errors import PromptbankError

GiB = float(1 << 30)
#: The process around the model (Python, torch, the tokenizer), measured on this CPU.
CPU_RUNTIME = 0.45 * GiB
#: A CUDA context and the caching allocator's slack, which max_memory_allocated does not see.
CUDA_RUNTIME = 0.6 * GiB
#: The share of free memory a plan may use; the rest covers fragmentation and the desktop.
USABLE = 0.85
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: Bytes per parameter of a bitsandbytes base: int8 with its scales; NF4, double-quantised,
#: with the layers it keeps in 16 bits.
QUANTIZED_BYTES = {"8bit": 1.05, "4bit": 0.56}


@dataclass(frozen=True)
class Shape:
    """The sizes of a model that its memory depends on."""

    parameters: int
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int

    @classmethod
    def of_config(cls, config: Any, parameters: int | None = None) -> Shape:
        """From a transformers config (``parameters`` counted from the weights when known,
        else estimated from the config)."""
        hidden = int(config.hidden_size)
        heads = int(config.num_attention_heads)
        kv = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or hidden // heads)
        inner = int(getattr(config, "intermediate_size", None) or 4 * hidden)
        layers = int(config.num_hidden_layers)
        vocab = int(config.vocab_size)
        if parameters is None:
            attention = hidden * head_dim * (2 * heads + 2 * kv)
            # The input embedding, and the output head when it is a matrix of its own.
            embeddings = 1 if getattr(config, "tie_word_embeddings", True) else 2
            parameters = layers * (attention + 3 * hidden * inner) + embeddings * vocab * hidden
        return cls(int(parameters), hidden, inner, layers, heads, kv, head_dim, vocab)


def safetensors_entries(folder: Path) -> list[dict] | None:
    """Every tensor's header entry (dtype, shape) in a folder's safetensors files, read from
    their headers alone (None: the folder has none)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    entries = []
    for path in files:
        with path.open("rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(min(size, 1 << 26)))
        entries += [entry for name, entry in header.items() if name != "__metadata__"]
    return entries


def safetensors_parameters(folder: Path) -> int | None:
    """The number of values in a folder's safetensors files, from their headers alone."""
    entries = safetensors_entries(folder)
    if entries is None:
        return None
    return sum(math.prod(int(dim) for dim in entry["shape"]) for entry in entries)


def stored_float_dtype(folder: Path) -> str | None:
    """The one float type (safetensors' name: F16, BF16, F32) a folder's weights are stored
    in, or None when there are none or several."""
    kinds = {entry["dtype"] for entry in safetensors_entries(folder) or []
             if entry["dtype"] in ("F16", "BF16", "F32")}
    return kinds.pop() if len(kinds) == 1 else None


def _gb(value: float) -> str:
    return f"{value / GiB:.1f} GB"


def cpu_dtype(parameters: int, free: int) -> tuple[str, str]:
    """float32 on the CPU where the weights fit twice over in the free memory (it computes
    faster there than bfloat16 and exactly), bfloat16 where only half that fits; otherwise
    the model is refused before loading with the numbers."""
    full = parameters * 4
    if full * 2 + CPU_RUNTIME <= free:
        return "float32", f"float32: the weights ({_gb(full)}) fit well in {_gb(free)} free"
    if parameters * 2 * 1.25 + CPU_RUNTIME <= free:
        return "bfloat16", (f"bfloat16: float32 weights ({_gb(full)}) would leave too little "
                            f"of {_gb(free)} free")
    raise PromptbankError(
        f"The model has {parameters / 1e9:.1f}B parameters: {_gb(parameters * 2)} in 16 bits, "
        f"but this machine has {_gb(free)} free, so it cannot be loaded.",
        hint="Close other programs, use a smaller model, or a GPU (with --quantize 4bit).")


def prompt_values(method: str, length: int, shape: Shape) -> int:
    """The number of trained values of a prompt."""
    if method == "prompt":
        return length * shape.hidden
    return shape.layers * 2 * shape.kv_heads * length * shape.head_dim


def _layer_values(shape: Shape, tokens: int, keys: int) -> int:
    """Values autograd keeps in one layer for ``tokens`` tokens attending to ``keys`` keys."""
    attention = shape.heads * shape.head_dim
    per_token = 4 * shape.hidden + 2 * attention + shape.heads + 3 * shape.intermediate
    # Keys and values are repeated to every query head before attention.
    return tokens * per_token + keys * 2 * attention


def activations_per_row(shape: Shape, dtype: str, tokens: int, prompt: int,
                        checkpointing: bool) -> int:
    """Bytes one row of ``tokens`` tokens after a ``prompt``-token past keeps for backward,
    with one layer's working set on top (the layer being computed or recomputed)."""
    size = BYTES[dtype]
    layer = _layer_values(shape, tokens, tokens + prompt) * size
    working = 2 * layer
    if checkpointing:
        # Only each layer's input is kept; one layer is recomputed at a time.
        return shape.layers * tokens * shape.hidden * size + layer + working
    return shape.layers * layer + working


def head_per_row(shape: Shape, answer_tokens: int) -> int:
    """The output head at the answer tokens: logits, their log-softmax and its gradient, in
    float32."""
    return answer_tokens * shape.vocab * 4 * 3


def rows_that_fit(shape: Shape, dtype: str, budget: float, method: str, prompt: int,
                  tokens: int, answer_tokens: int, batch: int, *,
                  checkpointing_possible: bool = True) -> tuple[int, bool, int]:
    """Rows per pass that fit in ``budget`` bytes of activations (at least one), whether the
    layers must be checkpointed for even one row to fit, and the bytes of one row."""
    head = head_per_row(shape, answer_tokens)
    plain = activations_per_row(shape, dtype, tokens, prompt, False) + head
    if plain <= budget or not checkpointing_possible:
        return max(1, min(batch, int(budget // plain))), False, plain
    checked = activations_per_row(shape, dtype, tokens, prompt, True) + head
    return max(1, min(batch, int(budget // checked))), True, checked


def weight_bytes(parameters: int, dtype: str, quantize: str = "") -> int:
    """The memory of a model's weights in ``dtype``, or in a quantised base."""
    return int(parameters * (QUANTIZED_BYTES[quantize] if quantize else BYTES[dtype]))


def plan_training(shape: Shape, *, device: str, dtype: str, free: int, method: str,
                  length: int, batch: int, tokens: int, answer_tokens: int,
                  rows_per_pass: int = 0, reparam: int = 0, quantize: str = "") -> MemoryPlan:
    """The memory of training a ``method`` prompt of ``length`` tokens at ``batch`` rows of up
    to ``tokens`` tokens (``answer_tokens`` of them scored) on a base in ``dtype`` (or
    ``quantize``d, computing in ``dtype``): as many rows per pass as fit (or
    ``rows_per_pass``), checkpointing only when one row does not fit otherwise."""
    weights = weight_bytes(shape.parameters, dtype, quantize)
    values = prompt_values(method, length, shape)
    extra = reparam * (reparam + values // max(1, length)) if reparam else 0
    prompt_state = (values + extra) * 4 * 4  # value, gradient, two Adam moments (float32)
    runtime = int(CUDA_RUNTIME if device.startswith("cuda") else CPU_RUNTIME)
    fixed = weights + prompt_state + runtime
    budget = free * USABLE - fixed
    head = head_per_row(shape, answer_tokens)
    checkpointing = False
    if rows_per_pass:
        rows = rows_per_pass
    else:
        rows, checkpointing, _ = rows_that_fit(shape, dtype, budget, method, length, tokens,
                                               answer_tokens, batch)
    per_row = activations_per_row(shape, dtype, tokens, length, checkpointing) + head
    total = int(fixed + rows * per_row)
    fits = total <= free * USABLE
    passes = -(-batch // rows)
    if fits:
        advice = (f"{rows} row(s) per pass, {passes} pass(es) per step"
                  + (", with activation checkpointing" if checkpointing else "") + ".")
    elif weights + runtime > free * USABLE:
        advice = (f"the weights alone ({_gb(weights)}) exceed the usable "
                  f"{_gb(free * USABLE)}; use a 4-bit base (--quantize 4bit), a smaller "
                  "model or a larger device.")
    else:
        advice = (f"even one row of {tokens} tokens needs {_gb(total)}; use shorter rows "
                  f"(--max-length {max(8, tokens // 2)}) or a larger device.")
    return MemoryPlan(device, dtype, int(free), int(weights), int(prompt_state), runtime,
                      int(per_row - head), int(head), rows, checkpointing, passes, total, fits,
                      advice)
