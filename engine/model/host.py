"""ModelHost: resolve a model spec, load it once (frozen, eval mode), describe and fingerprint it.

Specs: ``default`` (the embedded SmolLM2-135M-Instruct GGUF, converted once into a
safetensors folder in the cache), a Hugging Face model folder, a ``.gguf`` file, or a hub
id already in the local Hugging Face cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from engine.api.session import ModelDescription
from engine.errors import PromptbankError
from engine.model import convert, memory
from engine.model.architecture import Architecture
from engine.model.chat import Chat
from engine.model.convert import cached_file_hash, converted_folder
from engine.model.device import (
    configure_device,
    keep_cpu_kernels_in_bounds,
    layer_devices,
    load_weights,
    pick_device,
    pick_dtype,
    place_model,
    quantization_config,
    use_threads,
)
from engine.model.spec import DEFAULT_SPEC, ResolvedSpec, resolve_spec
from engine.support.paths import cache_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

#: Progress callback: (stage description, fraction done in [0, 1]).
Progress = Callable[[str, float], None]


def _no_progress(stage: str, fraction: float) -> None:
    """Default progress sink."""


def _weight_files(folder: Path, gguf_file: str | None) -> list[Path]:
    if gguf_file:
        return [folder / gguf_file]
    names = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    return names


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
            self.model = load_weights(folder, self.dtype, trust_remote_code=trust_remote_code,
                                      quantized=quantized, placed=placed)
            if quantized is not None:
                keep_cpu_kernels_in_bounds(self.model)
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
                  else [cached_file_hash(path) for path in weights])
        self._adopt(self.model if placed else self.model.to(self.device), hashes, started)
        self.conversion = convert.ConversionRecord.load(folder)
        if self.conversion is not None:
            self._check_conversion(progress)
        progress("Ready", 1.0)

    def _check_conversion(self, progress: Progress) -> None:
        """Run a converted GGUF's first-load check (once; the verdict is kept with the
        conversion) and refuse a conversion that computes garbage."""
        record = self.conversion
        if not (record.check or {}).get("passed"):
            progress("Checking the conversion (first start only)", 0.95)
            record.check = convert.conversion_check(self.model, self.tokenizer, self.device)
            record.save(self.folder)
        if not record.check["passed"]:
            raise PromptbankError(
                f"The model converted from {record.gguf} computes garbage: "
                f"{convert.verdict_text(record.check)}.",
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
        self.layer_devices = layer_devices(self.model, self.device, self.num_layers)
        self.num_kv_heads, self.head_dim = self._cache_geometry()
        self.chat = Chat(self.tokenizer, self.max_positions)
        digest = hashlib.sha256()
        digest.update(_config_digest(self.config).encode())
        digest.update(_tokenizer_digest(self.tokenizer).encode())
        for value in weight_hashes:
            digest.update(value.encode())
        self.fingerprint = digest.hexdigest()[:32]
        self.exactness: float | None = None
        self.conversion: convert.ConversionRecord | None = None
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

    def info(self) -> ModelDescription:
        """A JSON-friendly description of the loaded model."""
        return ModelDescription(
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
            conversion=convert.verdict_text(self.conversion.check if self.conversion else None),
            dtype_reason=self.dtype_reason,
            quantization=self.quantization,
        )

    @property
    def template(self) -> str:
        """How inputs are framed (see ``ModelDescription.template``)."""
        if self.conversion is not None and self.conversion.template:
            return self.conversion.template
        return "model" if self.tokenizer.chat_template else "plain"
