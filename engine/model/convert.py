"""GGUF files converted into Hugging Face folders: tensor by tensor, 16-bit, checked.

transformers de-quantises a whole GGUF into float32 before it builds the model, so an 8B file
needs about 32 GB to open. Here each tensor is de-quantised alone (with transformers' own
name map and per-architecture fixes: Llama's q/k order, Gemma's norm offset), cast to the
file's own float type or float16, and written into safetensors shards of at most
``SHARD_BYTES``; the peak is one tensor and one shard.

float16 rather than bfloat16 for quantised files: their values are a float16 scale times a
small integer (plus a float16 minimum), so float16's 11-bit significand keeps them to 2^-11
where bfloat16's 8 bits round them to 2^-8; their range is float16's by construction. A
tensor that does not fit anyway stays float32.

The folder also records how the model frames text (``promptbank.json``): the file's chat
template, the family's known template for an instruction-tuned file that has none, or for
a base model a plain frame that keeps the tokenizer's BOS.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import PromptbankError
from engine.model.spec import ResolvedSpec
from engine.support.paths import cache_dir

#: The converted folder's own record.
RECORD = "promptbank.json"
#: Raised when the conversion format changes, so old conversions are made again.
FORMAT = 2
SHARD_BYTES = 1 << 30
#: GGUF ``general.file_type`` values of unquantised files, and the torch type they hold.
FILE_TYPES = {0: torch.float32, 1: torch.float16, 32: torch.bfloat16}
FLOAT16_MAX = 65504.0
#: Words in ``general.finetune``/``general.name`` that mark an instruction-tuned model.
TUNED_WORDS = ("instruct", "chat", "-it", " it", "_it", "sft", "dpo")

#: Chat frames for families whose instruction-tuned GGUF files may lack a template. Written
#: for Promptbank from each family's documented turn format (system text folded into the
#: first user turn where the family has no system role).
FAMILY_TEMPLATES = {
    "gemma": (
        "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
        "{% set ns_system = m['content'] %}{% else %}"
        "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else 'user' }}\n"
        "{{ m['content'] }}<end_of_turn>\n{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"),
    "llama3": (
        "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}"
        "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}"
        "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n"
        "{% endif %}"),
    "chatml": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"),
}
#: The marker token that shows which family frame a vocabulary was trained with.
FRAME_MARKERS = {"gemma": "<start_of_turn>", "llama3": "<|start_header_id|>",
                 "chatml": "<|im_start|>"}

#: Progress callback: (stage description, fraction done in [0, 1]).
Progress = Callable[[str, float], None]


@dataclass
class ConversionRecord:
    """What the conversion wrote and decided, kept in the folder as ``promptbank.json``."""

    format: int = FORMAT
    gguf: str = ""
    architecture: str = ""
    dtype: str = ""
    seconds: float = 0.0
    #: "file" (the GGUF's chat template), "family:<name>" or "plain" (a base model).
    template: str = ""
    #: The first-load check: None until it ran, then its verdict (``conversion_check``).
    check: dict[str, Any] | None = None
    float32_tensors: list[str] = field(default_factory=list)

    def save(self, folder: Path) -> None:
        (folder / RECORD).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, folder: Path) -> ConversionRecord | None:
        path = folder / RECORD
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _eta(started: float, fraction: float) -> str:
    if fraction <= 0.02:
        return ""
    left = (time.perf_counter() - started) * (1 - fraction) / fraction
    return f", about {left:.0f} s left" if left >= 1 else ""


def _target_dtype(metadata: dict[str, Any]) -> torch.dtype:
    return FILE_TYPES.get(int(metadata.get("general.file_type", -1)), torch.float16)


def _tuned(metadata: dict[str, Any]) -> bool:
    words = f" {metadata.get('general.finetune', '')} {metadata.get('general.name', '')} "
    return any(w in words.lower() for w in TUNED_WORDS)


def frame_choice(metadata: dict[str, Any], tokenizer) -> str:
    """How a converted model frames text: ``file``, ``family:<name>`` or ``plain``."""
    if tokenizer.chat_template:
        return "file"
    if _tuned(metadata):
        vocab = tokenizer.get_vocab()
        for name, marker in FRAME_MARKERS.items():
            if marker in vocab:
                return f"family:{name}"
    return "plain"


#: Architectures whose config transformers derives from the metadata by its key table alone;
#: ``_config`` reads those from the fast metadata reader. Every other one goes through
#: transformers' full parse, which reads every vocabulary entry one by one (53 s for
#: Gemma 3's 262k tokens here).
TABLE_ONLY = {"llama", "qwen2", "qwen3", "phi3", "gpt2", "starcoder2", "gemma2", "gemma3"}


def _config(gguf: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(transformers config dict, metadata) of a GGUF file."""
    from transformers.integrations.ggml import GGUF_CONFIG_DEFAULTS_MAPPING, GGUF_CONFIG_MAPPING
    from transformers.integrations.gguf import read_gguf_metadata
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    metadata, tensor_names = read_gguf_metadata(str(gguf))
    arch = str(metadata["general.architecture"])
    # transformers reads a Llama file named exactly "mistral" as Mistral.
    if arch not in TABLE_ONLY or metadata.get("general.name") == "mistral":
        return load_gguf_checkpoint(str(gguf), return_tensors=False)["config"], metadata
    config: dict[str, Any] = {}
    for key, value in metadata.items():
        prefix, _, rest = key.partition(".")
        name = GGUF_CONFIG_MAPPING.get(prefix, {}).get(rest)
        if name not in (None, -1):
            config[name] = value
    config["tie_word_embeddings"] = "output.weight" not in tensor_names
    for key, value in GGUF_CONFIG_DEFAULTS_MAPPING.get(arch, {}).items():
        config.setdefault(key, value)
    if config.get("model_type") == "gemma3":
        config["model_type"] = "gemma3_text"
    if "vocab_size" not in config and isinstance(metadata.get("tokenizer.ggml.tokens"), int):
        config["vocab_size"] = metadata["tokenizer.ggml.tokens"]
    return config, metadata


def _load_tokenizer(gguf: Path, model_type: str):
    from transformers import PreTrainedTokenizerFast
    from transformers.models.auto.tokenization_auto import (
        TOKENIZER_MAPPING_NAMES,
        tokenizer_class_from_name,
    )

    name = TOKENIZER_MAPPING_NAMES.get(model_type)
    cls = (tokenizer_class_from_name(name) if isinstance(name, str) else None) \
        or PreTrainedTokenizerFast
    return cls.from_pretrained(gguf.parent, gguf_file=gguf.name)


@dataclass(frozen=True)
class StoredTensor:
    """One tensor of a GGUF file: its name, ggml type and its bytes (rows of blocks)."""

    name: str
    ggml_type: int
    data: np.ndarray


_WIDTHS = {0: 1, 1: 1, 7: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 10: 8, 11: 8, 12: 8}


def _skip_value(blob: np.ndarray, pos: int, kind: int) -> int:
    if kind in _WIDTHS:
        return pos + _WIDTHS[kind]
    if kind == 8:
        return pos + 8 + int(np.frombuffer(blob, np.uint64, 1, pos)[0])
    element, count = struct.unpack_from("<IQ", blob, pos)
    pos += 12
    if element in _WIDTHS:
        return pos + count * _WIDTHS[element]
    for _ in range(count):
        pos = _skip_value(blob, pos, element)
    return pos


def stored_tensors(path: Path) -> list[StoredTensor]:
    """The tensors of a GGUF file as views of its memory map, read from the file's table
    (gguf-py's reader would first parse every vocabulary entry, 20 s for 262k tokens)."""
    from gguf import GGML_QUANT_SIZES

    blob = np.memmap(path, mode="r", dtype=np.uint8)
    if bytes(blob[:4]) != b"GGUF":
        raise PromptbankError(f"{path} is not a GGUF file (it does not start with GGUF).",
                              hint="Check the path, or re-download the file.")
    _, count, kv_count = struct.unpack_from("<IQQ", blob, 4)
    pos, alignment = 24, 32
    for _ in range(kv_count):
        (size,) = struct.unpack_from("<Q", blob, pos)
        key = bytes(blob[pos + 8:pos + 8 + size]).decode()
        (kind,) = struct.unpack_from("<I", blob, pos + 8 + size)
        pos = pos + 12 + size
        if key == "general.alignment":
            (alignment,) = struct.unpack_from("<I", blob, pos)
        pos = _skip_value(blob, pos, kind)
    table = []
    for _ in range(count):
        (size,) = struct.unpack_from("<Q", blob, pos)
        name = bytes(blob[pos + 8:pos + 8 + size]).decode()
        pos += 8 + size
        (dims,) = struct.unpack_from("<I", blob, pos)
        shape = struct.unpack_from(f"<{dims}Q", blob, pos + 4)
        kind, offset = struct.unpack_from("<IQ", blob, pos + 4 + 8 * dims)
        pos += 4 + 8 * dims + 12
        table.append((name, tuple(reversed(shape)), kind, offset))
    start = -(-pos // alignment) * alignment
    tensors = []
    for name, shape, kind, offset in table:
        block, size = GGML_QUANT_SIZES[kind]
        rows = (*shape[:-1], shape[-1] // block * size)
        nbytes = int(np.prod(rows))
        view = blob[start + offset:start + offset + nbytes].reshape(rows)
        tensors.append(StoredTensor(name, kind, view))
    return tensors


#: Rows de-quantised at a time: gguf-py's de-quantisers hold several float32 copies of their
#: input while they work, which for a large embedding would be several times its size.
DEQUANT_ELEMENTS = 1 << 24


def _dequantize(tensor: StoredTensor) -> np.ndarray:
    """A GGUF tensor as float32 (its model shape), de-quantised a block of rows at a time."""
    from gguf import dequantize

    data = tensor.data
    if data.ndim < 2 or data.size <= DEQUANT_ELEMENTS:
        return np.asarray(dequantize(data, tensor.ggml_type), dtype=np.float32)
    step = max(1, DEQUANT_ELEMENTS // max(1, int(np.prod(data.shape[1:]))))
    first = np.asarray(dequantize(data[:step], tensor.ggml_type), dtype=np.float32)
    out = np.empty((data.shape[0], *first.shape[1:]), dtype=np.float32)
    out[:step] = first
    for begin in range(step, data.shape[0], step):
        out[begin:begin + step] = dequantize(data[begin:begin + step], tensor.ggml_type)
    return out


def _tensors(stored: list[StoredTensor], processor, mapping: dict[str, str], parsed: dict,
             ) -> Iterator[tuple[str, np.ndarray]]:
    """(model name, float32 array) of every GGUF tensor, one at a time."""
    parsed["tensors"] = {}
    for tensor in stored:
        result = processor.process(weights=_dequantize(tensor), name=tensor.name,
                                   tensor_key_mapping=mapping, parsed_parameters=parsed)
        if result.name in mapping:
            yield mapping[result.name], result.weights
        # Some processors (MoE experts) hand over tensors through the parsed parameters.
        while parsed["tensors"]:
            name = next(iter(parsed["tensors"]))
            yield name, np.asarray(parsed["tensors"].pop(name))


class _Shards:
    """safetensors shards of at most ``SHARD_BYTES``, written as they fill."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pending: dict[str, torch.Tensor] = {}
        self.size = 0
        self.files: list[tuple[Path, list[str]]] = []

    def add(self, name: str, tensor: torch.Tensor) -> None:
        if self.pending and self.size + tensor.nbytes > SHARD_BYTES:
            self.flush()
        self.pending[name] = tensor.contiguous()
        self.size += tensor.nbytes

    def flush(self) -> None:
        from safetensors.torch import save_file

        if not self.pending:
            return
        path = self.folder / f"part-{len(self.files):05d}.safetensors"
        save_file(self.pending, str(path), metadata={"format": "pt"})
        self.files.append((path, list(self.pending)))
        self.pending, self.size = {}, 0

    def finish(self) -> None:
        """Name the shards as transformers expects, with an index when there are several."""
        self.flush()
        count = len(self.files)
        if count == 1:
            self.files[0][0].rename(self.folder / "model.safetensors")
            return
        weight_map = {}
        for i, (path, names) in enumerate(self.files, start=1):
            final = f"model-{i:05d}-of-{count:05d}.safetensors"
            path.rename(self.folder / final)
            weight_map.update(dict.fromkeys(names, final))
        (self.folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {}, "weight_map": weight_map}, indent=1))


def convert(gguf: Path, folder: Path, progress: Progress) -> ConversionRecord:
    """Write ``gguf`` as a Hugging Face folder into ``folder`` (which exists and is empty)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import (
        TENSOR_PROCESSORS,
        TensorProcessor,
        get_gguf_hf_weights_map,
    )

    started = time.perf_counter()
    progress("Reading the GGUF file's settings (first start only)", 0.02)
    config_dict, metadata = _config(gguf)
    config = AutoConfig.for_model(**config_dict)
    stored = stored_tensors(gguf)
    architecture = str(metadata["general.architecture"])
    progress("Reading the GGUF file's tokenizer", 0.1)
    tokenizer = _load_tokenizer(gguf, config.model_type)
    template = frame_choice(metadata, tokenizer)
    if template.startswith("family:"):
        tokenizer.chat_template = FAMILY_TEMPLATES[template.split(":", 1)[1]]
    dtype = _target_dtype(metadata)

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    processor = TENSOR_PROCESSORS.get(architecture, TensorProcessor)(config=config_dict)
    mapping = get_gguf_hf_weights_map(skeleton, processor)
    # Tied parameters are listed once (the embedding), as the file stores them.
    expected = {name for name, _ in skeleton.named_parameters()}
    shards = _Shards(folder)
    kept: list[str] = []
    written: set[str] = set()
    parsed = {"config": config_dict}
    for count, (name, weights) in enumerate(_tensors(stored, processor, mapping, parsed), 1):
        # Unquantised tensors are read-only views of the file's memory map.
        tensor = torch.from_numpy(np.array(weights, dtype=np.float32, copy=None)
                                  if weights.flags.writeable else weights.copy())
        del weights
        low, high = torch.aminmax(tensor) if tensor.numel() else (tensor.new_zeros(()),) * 2
        if dtype == torch.float16 and max(-float(low), float(high)) > FLOAT16_MAX:
            kept.append(name)
        shards.add(name, tensor if name in kept else tensor.to(dtype))
        written.add(name)
        fraction = 0.15 + 0.8 * min(1.0, count / max(1, len(stored)))
        progress(f"De-quantising tensor {count} of {len(stored)} "
                 f"(first start only){_eta(started, fraction)}", fraction)
    missing = sorted(expected - written)
    if missing:
        raise PromptbankError(
            f"The GGUF file {gguf.name} lacks {len(missing)} of the model's tensors "
            f"(for example {missing[0]}); it may be truncated or of another architecture.",
            hint="Re-download or re-export the file, or use a Hugging Face model folder.")
    progress("Writing the converted model", 0.96)
    shards.finish()
    config.dtype = dtype
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    record = ConversionRecord(gguf=gguf.name, architecture=architecture,
                              dtype=str(dtype).removeprefix("torch."),
                              seconds=round(time.perf_counter() - started, 1),
                              template=template, float32_tensors=kept)
    record.save(folder)
    return record


#: An ordinary English text; a working language model of any size predicts it well.
CHECK_TEXT = ("The cat sat on the mat by the door. It was a warm and sunny day, and the "
              "children were playing in the park near the river with their friends.")
CHECK_PROMPT = "The capital of France is"
#: Perplexities of real models on CHECK_TEXT are far below this (Gemma 3 270M about 13,
#: SmolLM2-135M about 20); a wrong conversion, or a base model fed without its BOS, gives
#: hundreds or thousands.
MAX_PERPLEXITY = 100.0
CONTINUATION_TOKENS = 8


@torch.no_grad()
def conversion_check(model, tokenizer, device: torch.device) -> dict[str, Any]:
    """The perplexity of ``CHECK_TEXT`` (tokenised as the tokenizer does by default, so a
    model that needs its BOS gets it) and the greedy continuation of ``CHECK_PROMPT``."""
    ids = torch.tensor([tokenizer(CHECK_TEXT)["input_ids"]], device=device)
    logits = model(input_ids=ids).logits[0, :-1].float()
    nll = torch.nn.functional.cross_entropy(logits, ids[0, 1:])
    perplexity = float(torch.exp(nll))
    prompt = torch.tensor([tokenizer(CHECK_PROMPT)["input_ids"]], device=device)
    start = prompt.shape[1]
    for _ in range(CONTINUATION_TOKENS):
        step = model(input_ids=prompt).logits[0, -1].argmax()
        prompt = torch.cat([prompt, step.view(1, 1)], dim=1)
    continuation = tokenizer.decode(prompt[0, start:].tolist(), skip_special_tokens=True)
    return {"perplexity": round(perplexity, 2), "limit": MAX_PERPLEXITY,
            "passed": perplexity <= MAX_PERPLEXITY, "prompt": CHECK_PROMPT,
            "continuation": continuation}


def verdict_text(check: dict[str, Any] | None) -> str:
    """One line for ``model info`` and the desktop."""
    if not check:
        return ""
    state = "passed" if check.get("passed") else "FAILED"
    return (f"{state}: perplexity {check['perplexity']:g} on the check text (limit "
            f"{check['limit']:g}); {check['prompt']!r} → {check['continuation']!r}")


def _hash_file(path: Path, digest: hashlib._Hash) -> None:
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)


def cached_file_hash(path: Path) -> str:
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


def _convert_gguf(resolved: ResolvedSpec, target: Path, progress: Progress) -> None:
    """Convert a GGUF once into a safetensors folder (atomic: temp folder, then rename)."""
    gguf_path = resolved.folder / str(resolved.gguf_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        try:
            convert(gguf_path, tmp, progress)
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


def converted_folder(resolved: ResolvedSpec, progress: Progress | None = None) -> Path:
    """The cached safetensors folder for a GGUF spec, converting it the first time (earlier
    conversion formats of the same file are replaced)."""
    assert resolved.gguf_file is not None
    gguf_path = resolved.folder / resolved.gguf_file
    stem = f"{Path(resolved.gguf_file).stem}-{cached_file_hash(gguf_path)[:16]}"
    models = cache_dir() / "models"
    target = models / f"{stem}-f{FORMAT}"
    if not (target / "config.json").is_file():
        _convert_gguf(resolved, target, progress or (lambda stage, fraction: None))
        for old in models.glob(f"{stem}*"):
            if old != target and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    return target
