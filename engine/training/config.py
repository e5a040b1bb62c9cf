"""Settings of a training run, with every default in one place."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from engine.chat import DEFAULT_MAX_LENGTH
from engine.errors import PromptbankError
from engine.methods import METHODS, get_method

#: Share of a continual run's training pool drawn from earlier data (CLI, worker and desktop).
DEFAULT_REPLAY = 0.2


@dataclass
class TrainConfig:
    """Settings of one training run (defaults chosen by measurement on the embedded model)."""

    method: str = "prefix"
    length: int = 20
    init: str = "text"
    steps: int = 300
    lr: float | None = None  # None: the method's measured default
    batch_size: int = 8
    grad_accum: int = 1
    # Rows per forward/backward pass (0: as many as fit: the whole batch on a CPU, as many as
    # the GPU's free memory holds on a GPU). The passes' gradients add up to the whole
    # batch's, so this bounds memory without changing the result.
    micro_batch: int = 0
    eval_every: int = 50
    eval_size: int = 200
    seed: int = 0
    checkpoint_every: int = 50
    patience: int = 0  # evaluations without improvement before stopping; 0: never
    stop_at_loss: float | None = None
    time_budget_s: float | None = None
    warmup: float = 0.1  # share of the steps spent warming up
    weight_decay: float = 0.0
    clip: float = 1.0
    max_length: int = DEFAULT_MAX_LENGTH
    reparam: int = 0  # hidden width of an MLP reparameterisation of the prompt; 0: none
    replay: float = 0.0  # continual: share of the training pool drawn from earlier data
    anchor: float = 0.0  # continual: weight of the mean squared distance to the parent
    graphs: bool = True  # replay each step from a CUDA graph on a GPU

    def __post_init__(self) -> None:
        if self.lr is None and self.method in METHODS:
            self.lr = get_method(self.method).default_lr

    def check(self) -> None:
        """Refuse settings that cannot work, before anything is written."""
        problems = [
            (self.method not in METHODS,
             f"Unknown method '{self.method}'; use one of: {', '.join(METHODS)}."),
            (self.length < 1, "The prompt length must be at least 1."),
            (self.steps < 1, "The number of steps must be at least 1."),
            (self.batch_size < 1, "The batch size must be at least 1."),
            (self.grad_accum < 1, "Gradient accumulation must be at least 1."),
            (self.micro_batch < 0, "The micro-batch cannot be negative (0: the whole batch)."),
            (not self.lr or self.lr <= 0 or not math.isfinite(self.lr),
             "The learning rate must be a positive number."),
            (self.eval_every < 0 or self.checkpoint_every < 0,
             "Evaluation and checkpoint intervals cannot be negative."),
            (not 0.0 <= self.replay < 1.0, "The replay fraction must be in [0, 1)."),
            (self.anchor < 0, "The anchor weight cannot be negative."),
            (self.reparam < 0, "The reparameterisation width cannot be negative."),
            (self.max_length < 8, "The maximum row length must be at least 8 tokens."),
        ]
        for bad, message in problems:
            if bad:
                raise PromptbankError(message, hint="Fix the setting and start again.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
