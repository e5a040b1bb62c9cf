"""Small libraries for the training tests: a classify task on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

POSITIVE = ["the movie was great", "wonderful acting", "great film", "the acting was great",
            "a wonderful movie", "great and wonderful", "i am fine thank you", "great day"]
NEGATIVE = ["a terrible boring film", "bad jokes", "boring", "the movie was terrible",
            "terrible acting", "a bad boring movie", "bad film with bad jokes", "boring jokes"]


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in rows))
    return path


def sentiment_rows(repeat: int = 2) -> list[tuple[str, str]]:
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    return rows * repeat


def make_library(root: Path, name: str = "sentiment", *, rows=None):
    """A library with one classify task and one dataset (25% held out for evaluation)."""
    from engine.library import Library

    lib = Library(root / "lib")
    lib.create_task(name, kind="classify", labels=["positive", "negative"],
                    instruction="classify the sentiment of this review")
    data = write_jsonl(root / f"{name}.jsonl", rows or sentiment_rows())
    lib.add_dataset(name, data, eval_fraction=0.25, seed=0)
    return lib


ECHO_ROWS = [("say one", "one"), ("say two", "two"), ("say three words", "three words"),
             ("say red", "red"), ("say a long sentence now", "a long sentence now"),
             ("say blue", "blue"), ("say green", "green"), ("say yes", "yes")]


def add_echo_task(lib, root: Path, name: str = "echo", *, repeat: int = 2,
                  eval_fraction: float = 0.25):
    """A generate task with its own input template beside the sentiment task."""
    lib.create_task(name, kind="generate", instruction="repeat what you are told",
                    input_template="Say it back: {input}")
    lib.add_dataset(name, write_jsonl(root / f"{name}.jsonl", ECHO_ROWS * repeat),
                    eval_fraction=eval_fraction, seed=0)
    return lib
