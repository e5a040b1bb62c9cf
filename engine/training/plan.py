"""The memory plan of a training run before anything is loaded (``promptbank plan``, the
Training page): the model's sizes from its config and weight headers, the task's longest rows
from its tokenizer, the device's free memory, and what follows (``engine.model.memory``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.errors import PromptbankError
from engine.model import device as models
from engine.model import memory
from engine.model.chat import Chat
from engine.model.convert import converted_folder
from engine.model.device import DTYPES, model_shape, pick_device, pick_dtype
from engine.model.spec import resolve_spec
from engine.training.config import TrainConfig

if TYPE_CHECKING:
    from engine.library import Library


def _dtype(device, requested: str, parameters: int, free: int, quantize: str) -> str:
    """The dtype the model computes in, as ``place_model`` picks it."""
    if (requested or "auto") == "auto" and device.type == "cpu" and not quantize:
        try:
            return memory.cpu_dtype(parameters, free)[0]
        except PromptbankError:
            return "bfloat16"
    return str(pick_dtype(device, requested)).removeprefix("torch.")


def plan_run(library: Library, tasks: list[str], config: TrainConfig, *, model: str,
             device: str = "auto", dtype: str = "auto", quantize: str = "",
             resident: Any = None) -> memory.MemoryPlan:
    """The memory of training ``tasks`` (one joint job when several) with ``config`` on
    ``model`` (``quantize``: on an 8- or 4-bit base): weights, prompt state, activations for
    the longest rows, free memory, and the
    rows per pass (and checkpointing) that make it fit. ``resident``: the model's host when
    it is loaded already (its weights are then part of what is in use, not free)."""
    from transformers import AutoTokenizer

    config.check()
    resolved = resolve_spec(model)
    folder = converted_folder(resolved) if resolved.gguf_file else resolved.folder
    shape = model_shape(folder)
    target = pick_device(device)
    free = models.free_bytes(target)
    name = _dtype(target, dtype, shape.parameters, free, quantize)
    if resident is not None:
        # Loaded: the plan counts its weights and process again, so give them back.
        free += memory.weight_bytes(shape.parameters, name, quantize) + int(
            memory.CUDA_RUNTIME if target.type == "cuda" else memory.CPU_RUNTIME)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = Chat(tokenizer, 1 << 30)
    longest, answers = 1, 1
    for task in tasks:
        record = library.get_task(task)
        examples = library.examples(task, "train")
        if not examples:
            raise PromptbankError(f"The task '{task}' has no training rows.",
                                  hint=f"Add data with `promptbank data add {task} FILE`.")
        rows = chat.rows([(e.input, e.output) for e in examples],
                         template=record.input_template, max_length=config.max_length)
        longest = max(longest, max(len(r) for r in rows))
        answers = max(answers, max(len(r.answer_ids) for r in rows))
    plan = memory.plan_training(
        shape, device=str(target), dtype=name, free=free, method=config.method,
        length=config.length, batch=config.batch_size * len(tasks), tokens=longest,
        answer_tokens=answers, rows_per_pass=config.micro_batch, reparam=config.reparam,
        quantize=quantize)
    plan.notes.append(f"Rows: up to {longest} tokens ({answers} answer tokens), batch "
                      f"{config.batch_size}{f' x {len(tasks)} tasks' if len(tasks) > 1 else ''}"
                      f"; model {shape.parameters / 1e6:,.0f}M parameters, "
                      + (f"{quantize} weights (bitsandbytes), computing in {name}."
                         if quantize else f"{DTYPES[name].itemsize * 8}-bit weights."))
    return plan
