"""Starts from the library: a ``mix`` start (the task's own part mixed with other tasks'
prompts, the weights trained) and the MPT-style shared prompt."""

from __future__ import annotations

import pytest
import torch

from engine.errors import PromptbankError
from engine.methods import get_method
from engine.prompts.initial import initial_tensor
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt
from engine.training.batches import encode
from engine.training.config import TrainConfig
from engine.training.job import TrainingJob, run_job
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes
from engine.training.shared import SharedSource, TaskPart, train_shared
from tests.engine.train_helpers import add_echo_task, make_library


def _config(**changes) -> TrainConfig:
    return TrainConfig(**{"method": "prompt", "length": 3, "steps": 4, "lr": 0.1,
                          "batch_size": 4, "eval_every": 0, "seed": 3, **changes})


def _tensor(lib, task: str, number=None) -> torch.Tensor:
    version = lib.get_version(task, number)
    return SoftPrompt.load(lib.version_path(version), sha256=version.sha256).tensor


@pytest.fixture
def lib(tmp_path, tiny_host):
    """The sentiment and echo tasks, echo with a trained prompt (the one to mix in)."""
    lib = add_echo_task(make_library(tmp_path), tmp_path)
    run_job(TrainingJob.start(lib, tiny_host, "echo", _config()))
    return lib


def test_a_mixture_starts_with_half_the_weight_on_the_new_part(tiny_host):
    geometry = ModelGeometry.of(tiny_host)
    own, a, b = (torch.randn(3, geometry.hidden_size) for _ in range(3))
    params = PromptParams(get_method("prompt"), own, geometry, sources=torch.stack([a, b]))
    assert params.mix_weights() == pytest.approx([0.25, 0.25, 0.5])
    assert torch.allclose(params.value(), 0.5 * own + 0.25 * a + 0.25 * b, atol=1e-6)
    assert [p.shape for p in params.trainable()] == [own.shape, torch.Size([3])]


def test_a_mix_run_trains_the_weights_and_saves_one_plain_prompt(tiny_host, lib):
    result = run_job(TrainingJob.start(lib, tiny_host, "sentiment", _config(init="mix")))
    version = lib.get_version("sentiment", result.version)
    assert version.init == "mix:echo" and version.metrics["init"] == "mix:echo"
    run = lib.get_run(result.run_id)
    assert run.config["train"]["init"] == "mix:echo"
    saved = _tensor(lib, "sentiment", result.version)
    assert saved.shape == _tensor(lib, "echo").shape  # the mixture folded into one prompt

    # The same run stepped by hand: its weights moved off the start, and what it saves is
    # the mixture of the new part and echo's prompt with those weights.
    job = TrainingJob.start(lib, tiny_host, "sentiment", _config(init="mix"))
    run_job(job)
    weights = job.params.mix_weights()
    assert weights != pytest.approx([0.5, 0.5])
    own = job.params.tensor.detach().cpu()
    assert torch.allclose(job.final_tensor(),
                          weights[1] * own + weights[0] * _tensor(lib, "echo"), atol=1e-5)


def test_a_mix_run_resumes_to_the_same_prompt(tiny_host, lib, tmp_path):
    straight = run_job(TrainingJob.start(lib, tiny_host, "sentiment",
                                         _config(init="mix:echo", steps=6, checkpoint_every=2)))
    job = TrainingJob.start(lib, tiny_host, "sentiment",
                            _config(init="mix:echo", steps=6, checkpoint_every=2))
    for _ in range(3):
        job.step()
    job.cancel()
    resumed = TrainingJob.resume(lib, tiny_host, job.run_id)
    assert resumed.params.mixed and resumed.step_index == 3
    result = run_job(resumed)
    assert torch.equal(_tensor(lib, "sentiment", result.version),
                       _tensor(lib, "sentiment", straight.version))


@pytest.mark.parametrize(("init", "words"), [
    ("mix:sentiment", "its own prompt"),
    ("mix:nothing", "nothing"),
])
def test_bad_mixes_are_refused_before_anything_is_written(tiny_host, lib, init, words):
    runs = len(lib.list_runs())
    with pytest.raises(PromptbankError, match=words):
        TrainingJob.start(lib, tiny_host, "sentiment", _config(init=init))
    assert len(lib.list_runs()) == runs


def test_mix_needs_a_prompt_of_the_same_method_and_length(tiny_host, lib):
    with pytest.raises(PromptbankError, match="no other prefix prompt of length 3") as info:
        TrainingJob.start(lib, tiny_host, "sentiment", _config(init="mix", method="prefix"))
    assert "--init auto" in info.value.hint
    with pytest.raises(PromptbankError, match="no prompt prompt of length 5 on this model"):
        TrainingJob.start(lib, tiny_host, "sentiment", _config(init="mix:echo", length=5))


def _sources(host, lib) -> list[SharedSource]:
    out = []
    for name in ("sentiment", "echo"):
        record = lib.get_task(name)
        rows = encode(host, lib.examples(name, "train"), template=record.input_template,
                      max_length=64)
        out.append(SharedSource(rows[:4], host.chat.head(template=record.input_template)))
    return out


def test_the_shared_prompt_learns_from_every_task(tiny_host, lib):
    """At the start every task's prompt is the shared one, so its first AdamW step goes
    against the sum of the tasks' gradients (each from a plain prompt on its own rows)."""
    task = lib.get_task("sentiment")
    init = initial_tensor(tiny_host, "prompt", 3, "text", task)
    sources = _sources(tiny_host, lib)
    method = get_method("prompt")
    geometry = ModelGeometry.of(tiny_host)
    total = torch.zeros_like(init)
    for source in sources:
        plain = PromptParams(method, init.to(tiny_host.device), geometry)
        weight = 1.0 / (sum(len(r.answer_ids) for r in source.rows) * len(sources))
        _, (grad,) = Passes(tiny_host, [plain], [source.head], graphs=False).run(
            Pass(source.rows, [0] * len(source.rows), [weight] * len(source.rows)))
        total += grad.cpu()
    shared = train_shared(tiny_host, method, init, sources,
                          _config(steps=1, weight_decay=0.0, graphs=False))
    moved = shared - init
    big = total.abs() > 1e-6
    assert big.any()
    assert torch.equal(torch.sign(moved[big]), -torch.sign(total[big]))


def test_a_task_part_starts_as_the_shared_prompt_and_scales_its_rows(tiny_host):
    geometry = ModelGeometry.of(tiny_host)
    method = get_method("prefix")
    shared = torch.nn.Parameter(torch.randn(geometry.layers, 2, geometry.kv_heads, 3,
                                            geometry.head_dim))
    part = TaskPart(method, shared, geometry)
    assert torch.equal(part.value(), shared)
    with torch.no_grad():
        part.u[1] = 2.0
    rows = method.token_rows(part.value())
    assert torch.equal(rows[1], 2 * method.token_rows(shared)[1])
    assert torch.equal(rows[0], method.token_rows(shared)[0])
