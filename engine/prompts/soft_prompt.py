"""SoftPrompt: the trained tensor of one prompt version, its metadata and its file format.

Files are safetensors (never pickle) with the metadata in the header; the tensor's layout is
its method's (``engine.methods``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from engine.api.train_settings import DEFAULT_MAX_LENGTH
from engine.errors import PromptbankError
from engine.library.headers import header_int, read_header_metadata
from engine.methods import METHODS, get_method
from engine.support.clock import utc_now
from engine.support.fileio import atomic_write_bytes, read_verified

if TYPE_CHECKING:
    from engine.model.host import ModelHost

FORMAT_VERSION = 1
#: Tokens a prompt must leave free in the model's context: one training row's worth.
DATA_ROOM = DEFAULT_MAX_LENGTH


@dataclass
class ModelGeometry:
    """What a prompt file must match in a model: identity and tensor geometry."""

    fingerprint: str
    #: The input embedding width (a virtual token's size), the model's hidden size in all
    #: but a few families (``ModelHost.embedding_size``).
    hidden_size: int
    layers: int
    kv_heads: int
    head_dim: int

    @classmethod
    def of(cls, host: ModelHost) -> ModelGeometry:
        """The geometry of a loaded ``ModelHost``."""
        return cls(host.fingerprint, host.embedding_size, host.num_layers, host.num_kv_heads,
                   host.head_dim)


@dataclass
class SoftPrompt:
    """One prompt version's tensor and metadata (tied to a base model by fingerprint)."""

    method: str
    tensor: torch.Tensor
    geometry: ModelGeometry
    task: str = ""
    parent: str = ""
    init: str = ""
    created: str = field(default_factory=utc_now)
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise PromptbankError(f"Unknown prompt method '{self.method}'.",
                                  hint=f"Use one of: {', '.join(METHODS)}.")
        self.tensor = self.tensor.detach().to("cpu", torch.float32).contiguous()
        if self.tensor.numel() == 0:
            # A prompt of no tokens steers nothing, and reshaping it fails later in serving.
            raise PromptbankError(f"The {self.method} prompt has no virtual tokens (shape "
                                  f"{tuple(self.tensor.shape)}); a prompt needs at least one.",
                                  hint="Export the prompt again from where it was trained.")
        expected = self.expected_shape(self.length)
        if tuple(self.tensor.shape) != expected:
            raise PromptbankError(
                f"A {self.method} tensor of shape {tuple(self.tensor.shape)} does not fit a model "
                f"that needs {expected}.",
                hint="The file was made for another model; retrain or import it for this one.",
            )

    @property
    def length(self) -> int:
        """Number of virtual tokens."""
        return get_method(self.method).length_of(self.tensor)

    def expected_shape(self, length: int) -> tuple[int, ...]:
        return prompt_shape(self.method, length, self.geometry)

    def metadata(self) -> dict[str, str]:
        """The safetensors header metadata (all strings, as the format requires)."""
        g = self.geometry
        meta = {
            "format": "promptbank",
            "format_version": str(FORMAT_VERSION),
            "method": self.method,
            "length": str(self.length),
            # Lets torch-free readers (the desktop's norms) find the tokens in any method.
            "token_axis": str(get_method(self.method).token_axis),
            "shape": json.dumps(list(self.tensor.shape)),
            "model_fingerprint": g.fingerprint,
            "hidden_size": str(g.hidden_size),
            "layers": str(g.layers),
            "kv_heads": str(g.kv_heads),
            "head_dim": str(g.head_dim),
            "task": self.task,
            "parent": self.parent,
            "init": self.init,
            "created": self.created,
        }
        meta.update({f"x_{k}": str(v) for k, v in self.extra.items()})
        return meta

    def to_bytes(self) -> bytes:
        return st_save({self.method: self.tensor}, metadata=self.metadata())

    def save(self, path: Path) -> str:
        """Write atomically and return the file's sha256."""
        return atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "prompt file") -> SoftPrompt:
        """Parse and validate a prompt file's bytes; any defect is a clear PromptbankError."""
        meta = read_header_metadata(data, source=source)
        if meta.get("format") != "promptbank":
            raise PromptbankError(f"{source} is not a Promptbank prompt file.")
        version = header_int(meta, "format_version", source=source, default=0)
        if version > FORMAT_VERSION:
            raise PromptbankError(
                f"{source} was written by a newer Promptbank (format {version}).",
                hint="Update Promptbank to read it.")
        method = meta.get("method", "")
        if not meta.get("model_fingerprint"):
            raise PromptbankError(f"{source} has a damaged header: it names no model.",
                                  hint="Restore it from a backup or retrain.")
        geometry = ModelGeometry(meta["model_fingerprint"], **{
            key: header_int(meta, key, source=source)
            for key in ("hidden_size", "layers", "kv_heads", "head_dim")})
        try:
            tensors = st_load(data)
        except Exception as exc:  # safetensors raises several types for damaged data
            raise PromptbankError(f"{source} is damaged or incomplete ({exc}).",
                                  hint="Restore it from a backup or retrain.") from exc
        if set(tensors) != {method}:
            raise PromptbankError(f"{source} does not hold a '{method}' tensor.")
        tensor = tensors[method]
        if not torch.isfinite(tensor).all():
            raise PromptbankError(f"{source} holds NaN or infinite values.")
        extra = {k[2:]: v for k, v in meta.items() if k.startswith("x_")}
        try:
            return cls(method=method, tensor=tensor, geometry=geometry,
                       task=meta.get("task", ""), parent=meta.get("parent", ""),
                       init=meta.get("init", ""), created=meta.get("created", ""), extra=extra)
        except PromptbankError as exc:
            raise PromptbankError(f"{source}: {exc.message}", hint=exc.hint) from exc

    @classmethod
    def load(cls, path: Path, *, sha256: str | None = None) -> SoftPrompt:
        """Read a prompt file, checking its sha256 first when the catalogue gives one."""
        data = read_verified(Path(path), sha256, what="The prompt file")
        return cls.from_bytes(data, source=str(path))

    def check_fits(self, model: ModelGeometry, *, force: bool = False) -> None:
        """Refuse a prompt made for another model; same geometry may pass with ``force``."""
        if self.geometry.fingerprint == model.fingerprint:
            return
        if self.expected_shape(self.length) != prompt_shape(self.method, self.length, model):
            raise PromptbankError(
                f"This prompt was trained on a model with hidden size "
                f"{self.geometry.hidden_size} ({self.geometry.layers} layers); the loaded model "
                f"has {model.hidden_size} ({model.layers} layers), so it cannot be used.",
                hint="Load the model it was trained on, or retrain it for this one.")
        if not force:
            raise PromptbankError(
                "This prompt was trained on another model of the same size (fingerprint "
                f"{self.geometry.fingerprint[:12]} vs {model.fingerprint[:12]}).",
                hint="Use --force to load it anyway; results may be poor.")


def check_length(length: int, context: int, *, room: int = DATA_ROOM,
                 source: str = "The prompt") -> None:
    """Refuse a prompt of no virtual tokens, or one that leaves less than ``room`` tokens of
    a model's ``context`` for the data (chat template, input and answer)."""
    if length < 1:
        raise PromptbankError(f"{source} has no virtual tokens; a prompt needs at least one.")
    if length + room > context:
        raise PromptbankError(
            f"{source} has {length:,} virtual tokens, but the model's context of {context:,} "
            f"tokens must keep {room:,} for the data, so at most {max(0, context - room):,} "
            "fit.", hint="Use a shorter prompt (or shorter rows).")


def prompt_shape(method: str, length: int, geometry: ModelGeometry) -> tuple[int, ...]:
    """The tensor shape a prompt of ``method`` and ``length`` has on a model."""
    return get_method(method).shape(length, geometry)
