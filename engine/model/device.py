"""The device and dtype a model runs in, and where it is placed: the CPU's dtype by free
memory, 8- and 4-bit bases, and models split across devices when one is too small."""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from engine.errors import PromptbankError
from engine.model import memory
from engine.model.architecture import Architecture

#: The bitsandbytes release the quantised bases were tested with (constraints.txt).
BITSANDBYTES = "0.50.2"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Quantised bases (bitsandbytes): bytes a weight takes, with the blocks' scales.


def pick_device(requested: str = "auto") -> torch.device:
    """cuda, then mps, then cpu; an explicit request must be available."""
    requested = (requested or "auto").lower()
    base = requested.split(":")[0]
    if base not in DEVICES:
        raise PromptbankError(
            f"Unknown device '{requested}'.", hint="Use one of: auto, cpu, cuda, cuda:N, mps."
        )
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if base == "cuda" and not torch.cuda.is_available():
        raise PromptbankError(
            f"The device '{requested}' was asked for, but {_no_cuda_reason()}.",
            hint="Use --device cpu, or install a CUDA build of torch (make run TORCH=...).",
        )
    if base == "cuda" and ":" in requested:
        index = requested.split(":", 1)[1]
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            known = ", ".join(f"cuda:{i}" for i in range(count))
            raise PromptbankError(
                f"The device '{requested}' does not exist: this machine has {count} CUDA "
                f"GPU{'s' if count != 1 else ''} ({known}).",
                hint="Use --device cuda or a GPU number that exists.")
    if base == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise PromptbankError(
            "The device 'mps' was asked for, but Apple's Metal backend is not available.",
            hint="Use --device cpu.",
        )
    return torch.device(requested)


def _no_cuda_reason() -> str:
    if torch.version.cuda is None:
        return "this build of torch has no CUDA support"
    return (f"this CUDA {torch.version.cuda} build of torch finds no usable GPU (no NVIDIA "
            "driver, a driver too old for it, or no GPU)")


def pick_dtype(device: torch.device, requested: str = "auto") -> torch.dtype:
    """``auto``: bf16 on a GPU that supports it, float32 everywhere else (a GPU without bf16
    gets float32, not float16, because training in float16 needs loss scaling)."""
    requested = (requested or "auto").lower()
    if requested == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    if requested not in DTYPES:
        raise PromptbankError(f"Unknown dtype '{requested}'.",
                              hint="Use one of: auto, float32, bfloat16, float16.")
    if requested == "bfloat16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PromptbankError(f"This GPU ({torch.cuda.get_device_name(device)}) has no bfloat16.",
                              hint="Use --dtype float16 (with loss scaling) or float32.")
    if requested == "float16" and device.type == "cpu":
        raise PromptbankError("float16 is not supported on the CPU.",
                              hint="Use --dtype float32 or bfloat16 on the CPU.")
    return DTYPES[requested]


def model_shape(folder: Path, trust_remote_code: bool = False) -> memory.Shape:
    """A model folder's sizes, read from its config and weight headers without loading it; a
    family whose layers the engine cannot serve is refused here already."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    Architecture.of(config)
    return memory.Shape.of_config(config, memory.safetensors_parameters(folder))


def stored_dtype(folder: Path, dtype: torch.dtype) -> torch.dtype:
    """The dtype to read ``folder``'s weights in to end up in the 16-bit ``dtype``: their own
    16-bit type, which safetensors maps without a copy (``cast_in_place`` then converts a
    tensor at a time); read straight in the other, every file stays mapped while the whole
    copy is made: twice the weights' memory at the end of the load, where it is tightest.
    A float32 load (chosen where memory is plentiful) reads as it always did."""
    halves = {"F16": torch.float16, "BF16": torch.bfloat16}
    stored = halves.get(memory.stored_float_dtype(folder) or "")
    return stored if stored is not None and dtype in halves.values() else dtype


def cast_in_place(model: torch.nn.Module, source: torch.dtype, target: torch.dtype) -> None:
    """Turn ``model``'s parameters and buffers of ``source`` into ``target`` one tensor at a
    time (a tied weight once; tensors kept in another dtype stay as they are)."""
    if source == target:
        return
    with torch.no_grad():
        for module in model.modules():
            for param in module._parameters.values():
                if param is not None and param.dtype == source:
                    param.data = param.data.to(target)
            for name, buffer in module._buffers.items():
                if buffer is not None and buffer.dtype == source:
                    module._buffers[name] = buffer.to(target)
    model.config.dtype = target


def load_weights(folder: Path, dtype: torch.dtype, *, trust_remote_code: bool = False,
                 quantized: Any = None, placed: dict | None = None) -> torch.nn.Module:
    """The model in ``folder``, in ``dtype`` (``placed``: accelerate's device map and limits),
    read as the engine reads every model; ``bench memory`` measures this."""
    from transformers import AutoModelForCausalLM

    placed = placed or {}
    read_as = dtype if placed else stored_dtype(folder, dtype)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=read_as,
                                                 trust_remote_code=trust_remote_code,
                                                 quantization_config=quantized, **placed)
    cast_in_place(model, read_as, dtype)
    return model


def quantization_config(quantize: str, dtype: torch.dtype) -> Any:
    """bitsandbytes' settings for an 8- or 4-bit (NF4) base computing in ``dtype``, or None."""
    if not quantize:
        return None
    if quantize not in memory.QUANTIZED_BYTES:
        raise PromptbankError(f"Unknown quantisation '{quantize}'.", hint="Use 8bit or 4bit.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PromptbankError(
            "A quantised base needs the bitsandbytes package, which is not installed.",
            hint=f"Install it with `pip install bitsandbytes=={BITSANDBYTES}` (CPU or CUDA).")
    from transformers import BitsAndBytesConfig

    # On the CPU every 8-bit product warns that it casts its input to float16.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

    if quantize == "8bit":
        # LLM.int8's outlier split (threshold 6) picks its columns from the whole batch, so
        # a row's numbers would depend on the rows beside it (a mixed batch of tasks!); with
        # threshold 0 every column is int8 and each row is its own (SmolLM2 failed the
        # forward check by 12.6 % with the split).
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_threshold=0.0)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)


def keep_cpu_kernels_in_bounds(model: Any) -> None:
    """bitsandbytes' AVX512-BF16 CPU kernel packs a 4-bit layer's weight in blocks of 32
    outputs by the quantisation block of inputs and fails on any other shape (a small model's
    layers): such layers keep the plain kernel, which takes every shape."""
    for module in model.modules():
        if not getattr(module, "support_avx512bf16_for_cpu", False):
            continue
        block = getattr(getattr(module.weight, "quant_state", None), "blocksize", 64)
        if module.out_features % 32 or module.in_features % block:
            module.support_avx512bf16_for_cpu = False


@dataclass(frozen=True)
class Placement:
    """Where and in what a model loads: its dtype, why, and accelerate's per-device budget
    when it is split (across GPUs, or with ``offload`` onto the CPU and disk)."""

    dtype: torch.dtype
    reason: str
    max_memory: dict[Any, int] | None = None


def _split(device: torch.device, need: float, offload: bool) -> dict[Any, int] | None:
    """accelerate's ``max_memory`` spreading ``need`` bytes over the visible GPUs (and with
    ``offload`` the CPU, then disk), or None when even that is not enough."""
    budget: dict[Any, int] = {}
    if device.type == "cuda":
        for index in range(torch.cuda.device_count()):
            budget[index] = int(free_bytes(torch.device("cuda", index)) * memory.USABLE)
    if offload:
        budget["cpu"] = int(max(0.0, free_bytes(torch.device("cpu")) * memory.USABLE
                                - memory.CPU_RUNTIME))
        return budget  # what the devices cannot hold goes to disk
    return budget if sum(budget.values()) >= need else None


def place_model(device: torch.device, requested: str, folder: Path, quantize: str = "",
                offload: bool = False) -> Placement:
    """The dtype to load ``folder`` in (a quantised base: to compute in), and where; a model
    that fits nowhere allowed is refused here, before any weight is read."""
    dtype = pick_dtype(device, requested)
    auto = (requested or "auto").lower() == "auto"
    parameters = model_shape(folder).parameters
    free = free_bytes(device)
    if auto and device.type == "cpu" and not quantize:
        try:
            name, reason = memory.cpu_dtype(parameters, free)
            return Placement(DTYPES[name], reason)
        except PromptbankError:
            if not offload:
                raise
            dtype = torch.bfloat16
    name = str(dtype).removeprefix("torch.")
    need = memory.weight_bytes(parameters, name, quantize)
    why = "asked for" if not auto else (
        "the GPU trains in it natively" if dtype == torch.bfloat16 else "the device's default")
    if quantize:
        why = f"{quantize} weights (bitsandbytes), computing in {name}"
    room = free * memory.USABLE - (memory.CPU_RUNTIME if device.type == "cpu" else 0)
    if need <= room:
        return Placement(dtype, f"{name}: {why}")
    spread = None if quantize else _split(device, need, offload)
    if spread is None:
        raise PromptbankError(
            f"The model's weights need {need / memory.GiB:.1f} GB in {name}, but {device} has "
            f"{free / memory.GiB:.1f} GB free, so it is not loaded.",
            hint="Use --offload (layers that do not fit go to the CPU or disk, slower), "
                 "--quantize 4bit on a GPU, --dtype bfloat16 on the CPU, or a smaller model.")
    return Placement(dtype, f"{name}: {why}; split by accelerate ({need / memory.GiB:.1f} GB "
                            f"over {', '.join(map(str, spread))}{', disk' if offload else ''})",
                     spread)


def free_bytes(device: torch.device) -> int:
    """Memory the device can still give: a GPU's free memory, else the system's available."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import psutil

    return int(psutil.virtual_memory().available)


def memory_use(device: torch.device) -> tuple[int, int, int]:
    """A device's memory in use, its total, and this process's share: a GPU's as its driver
    counts them (every process), else the system's RAM and this process's resident set."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return int(total - free), int(total), int(torch.cuda.memory_reserved(device))
    import psutil

    system = psutil.virtual_memory()
    return (int(system.total - system.available), int(system.total),
            int(psutil.Process().memory_info().rss))


def device_name(device: torch.device) -> str:
    """What to call a device to a person: the GPU's model, else its kind."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return {"mps": "Apple GPU", "cpu": "CPU"}.get(device.type, device.type)


def layer_devices(model: Any, device: torch.device, layers: int) -> list[torch.device]:
    """Where each decoder layer computes: accelerate's hook says for a split model."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    found = [torch.device(m._hf_hook.execution_device) for m in model.modules()
             if isinstance(m, GradientCheckpointingLayer) and hasattr(m, "_hf_hook")
             and getattr(m._hf_hook, "execution_device", None) is not None]
    return found if len(found) == layers else [device] * layers


def configure_device(device: torch.device) -> None:
    """Device-wide settings the engine relies on.

    cuDNN's attention builds a new execution plan for every new shape, which cost 7-8 ms of
    CPU per call when every batch has another length (measured on an H100); the other SDPA
    backends do not, so it is switched off.
    """
    if device.type == "cuda":
        torch.backends.cuda.enable_cudnn_sdp(False)


def use_threads(threads: int | None) -> None:
    """Run torch's CPU operators on ``threads`` threads (None: torch's own choice), as chosen
    by ``engine.api.threads``: the count is per process, so it is set with the model."""
    if threads is not None:
        torch.set_num_threads(threads)
