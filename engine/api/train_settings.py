"""Settings of a training run, with every default in one place. Torch-free: the desktop
reads the defaults from here; ``engine.training.config`` adds what needs the methods."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Self

#: Tokens a training or evaluation row may hold, unless a run says otherwise.
DEFAULT_MAX_LENGTH = 256

#: Share of a continual run's training pool drawn from earlier data (CLI, worker and desktop).
#: ``bench continual`` (AG News, two topics then two others): 0.2 cut the forgetting from 96
#: to 81 points, 0.5 to 29, both keeping the whole from-scratch gain on the new data.
DEFAULT_REPLAY = 0.5
#: Share of a universal prompt's update drawn from its earlier source tasks: more than a
#: task's own continual run, because the prompt exists to serve every one of them.
UNIVERSAL_REPLAY = 0.5
#: A universal prompt's instruction (its text init) unless one is given.
UNIVERSAL_INSTRUCTION = "Read the request and give the answer it asks for."

#: Training modes; "auto" picks few-shot for a task of at most FEW_SHOT_MAX_EXAMPLES.
MODES = ("auto", "standard", "few-shot")
FEW_SHOT_MAX_EXAMPLES = 64
#: What few-shot mode changes: a short run that evaluates often and stops when the loss stops
#: improving (all rows train; see engine.training.continual.pools).
FEW_SHOT_DEFAULTS = {"steps": 100, "eval_every": 10, "patience": 3, "min_improvement": 0.01}

#: Ranking starting points for a new task: the loss on this many of its rows after this many
#: steps from each candidate prompt (engine.training.probe).
PROBE_ROWS = 32
PROBE_STEPS = 5


@dataclass
class TrainSettings:
    """Settings of one training run (defaults chosen by measurement on the embedded model);
    ``lr`` None means the method's own default, which ``TrainConfig`` fills in."""

    method: str = "prefix"
    length: int = 20
    init: str = "auto"  # the task's text, else its labels, else its outputs, else vocabulary
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
    # Share of the best metric an evaluation must improve on to count for ``patience`` (a
    # loss that creeps down by a hair is no reason to go on).
    min_improvement: float = 0.0
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
    mode: str = "standard"  # standard | few-shot (see ``for_examples``)
    # Universal prompts: a source task gives at most this many rows to an epoch, so tasks are
    # sampled in proportion to their size and no large task dominates.
    mix_cap: int = 2000

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def pick_mode(examples: int) -> str:
    """The mode a task with ``examples`` training examples trains in by default."""
    return "few-shot" if examples <= FEW_SHOT_MAX_EXAMPLES else "standard"


def describe_mode(mode: str, examples: int) -> str:
    """One sentence saying which mode a task trains in and what that means."""
    if mode == "few-shot":
        d = FEW_SHOT_DEFAULTS
        return (f"Few-shot mode ({examples} examples): the held-out rows judge the "
                f"prompt and the others train (with none held out, every row trains and "
                f"their own loss judges it), for at most {d['steps']} "
                f"steps, and the run stops when its metric has not improved by "
                f"{d['min_improvement']:.0%} in {d['patience']} evaluations, "
                f"{d['eval_every']} steps apart.")
    return (f"Standard mode ({examples} examples): {TrainSettings.steps} steps, evaluated on "
            "the held-out examples.")
