"""A training run's settings checked against the methods: ``TrainSettings`` with the
method's default learning rate filled in."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.api.train_settings import FEW_SHOT_DEFAULTS, MODES, TrainSettings, pick_mode
from engine.errors import PromptbankError
from engine.methods import METHODS, get_method


@dataclass
class TrainConfig(TrainSettings):
    """Settings of one training run, with the method's default learning rate."""

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
            (not 0.0 <= self.min_improvement < 1.0,
             "The minimum improvement must be a share in [0, 1)."),
            (self.reparam < 0, "The reparameterisation width cannot be negative."),
            (self.max_length < 8, "The maximum row length must be at least 8 tokens."),
            (self.mode not in MODES[1:],
             f"Unknown training mode '{self.mode}'; use one of: {', '.join(MODES)}."),
            (self.mix_cap < 1, "The per-task cap of a universal prompt must be at least 1."),
        ]
        for bad, message in problems:
            if bad:
                raise PromptbankError(message, hint="Fix the setting and start again.")


def for_examples(given: dict, examples: int) -> TrainConfig:
    """A run's settings: the defaults of its mode (``given["mode"]``, else the one its number
    of examples picks), then the settings the user gave."""
    mode = given.get("mode") or "auto"
    if mode == "auto":
        mode = pick_mode(examples)
    base = FEW_SHOT_DEFAULTS if mode == "few-shot" else {}
    return TrainConfig(**{**base, **given, "mode": mode})
