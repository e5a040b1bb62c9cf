"""Every common decoder family, both prompt methods: the engine computes what PEFT and the
model's own forward compute.

Each family is a tiny random model (``tests/tiny_model.FAMILIES``) whose sliding windows are
shorter than the test rows, whose norms and biases are random and whose matrices are large
enough that every output depends on the prompt, the input and the positions. The checks:
training loss and gradients at step 0 against PEFT's concatenated forward of our exported
adapter; greedy tokens that PEFT, reading our sequence, also ranks first; a mixed batch of
two tasks and no task equal to each row alone; the prompt key/value cache; resume and
evaluation; and the load-time forward check (``engine.forward.fidelity``).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.errors import PromptbankError
from engine.forward.fidelity import check_fidelity
from engine.methods import METHODS, get_method
from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt, prompt_shape
from engine.serving.bank import TaskSpec
from engine.serving.runtime import GenRow, Runtime
from engine.training.params import PromptParams
from engine.training.passes import Pass, Passes
from tests.tiny_model import FAMILIES

#: The task template makes every row longer than the sliding windows.
TEMPLATE = "Review of the film: {input}\nIs the sentiment positive or negative?"
PAIRS = [("the movie was great", "positive"), ("bad", "negative"),
         ("a terrible boring film with bad jokes and the acting", "negative sentiment")]
LABELS = ["positive", "negative", "neutral"]
#: float32 on both sides; the engine and PEFT sum in other orders (rows apart or together,
#: the prompt run once or per row), which moves losses and gradients by about 1e-7.
ATOL = 1e-5
#: A greedy token must be PEFT's first choice up to this much logit (near-ties of random
#: models would otherwise make an exact comparison flaky).
TIE = 1e-4


def _tensor(host, method: str, length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = prompt_shape(method, length, ModelGeometry.of(host))
    return torch.randn(shape, generator=gen) * 0.5


def _prompt(host, method: str, length: int = 4, seed: int = 0) -> SoftPrompt:
    return SoftPrompt(method, _tensor(host, method, length, seed), ModelGeometry.of(host),
                      task="t", init="random")


def _peft_model(case, prompt: SoftPrompt, tmp_path):
    """PEFT with our exported adapter on a fresh copy of the family's model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.interop import export_peft
    from engine.library import Library

    lib = Library(tmp_path / "peft-lib")
    lib.record_model(case.host.info().to_data())
    lib.create_task("t")
    version = lib.add_version("t", prompt.to_bytes())
    folder = export_peft(lib, version, tmp_path / "adapter")
    lib.close()
    base = AutoModelForCausalLM.from_pretrained(case.folder, dtype=torch.float32)
    model = PeftModel.from_pretrained(base.to(case.host.device), folder).eval()
    model.prompt_encoder["default"].embedding.weight.requires_grad_(True)
    return model


def _peft_logits(model, ids: list[int]) -> torch.Tensor:
    tensor = torch.tensor([ids], device=model.device)
    out = model(input_ids=tensor, attention_mask=torch.ones_like(tensor)).logits
    return out[0, -len(ids):].float()


def _runtime(case, **prompts: SoftPrompt) -> Runtime:
    runtime = Runtime(case.host, graphs=False)
    for name, prompt in prompts.items():
        runtime.register(TaskSpec(name, kind="classify", labels=LABELS, input_template=TEMPLATE),
                         prompt)
    return runtime


FAMILY = pytest.mark.parametrize("family", list(FAMILIES))
METHOD = pytest.mark.parametrize("method", METHODS)


@FAMILY
def test_forward_check_passes(family_case, family):
    fidelity = check_fidelity(family_case(family).host)
    assert fidelity.relative_error <= fidelity.tolerance


@FAMILY
@METHOD
def test_loss_and_gradients_equal_peft(family_case, family, method, tmp_path):
    case = family_case(family)
    host = case.host
    prompt = _prompt(host, method)
    rows = host.chat.rows(PAIRS, template=TEMPLATE)
    windows = [w for w in host.architecture.windows if w is not None]
    assert all(len(r) > w + 4 for r in rows for w in windows)  # windows really cut
    count = sum(len(r.answer_ids) for r in rows)
    params = PromptParams(get_method(method), prompt.tensor.to(host.device),
                          ModelGeometry.of(host))
    passes = Passes(host, [params], [host.chat.head(template=TEMPLATE)], graphs=False)
    sums, grads = passes.run(Pass(rows, [0] * len(rows), [1.0 / count] * len(rows)))

    model = _peft_model(case, prompt, tmp_path)
    weight = model.prompt_encoder["default"].embedding.weight
    total = torch.zeros((), device=host.device)
    for row in rows:
        logits = _peft_logits(model, row.ids)
        start = len(row.prompt_ids)
        answer = torch.tensor(row.answer_ids, device=host.device)
        total = total + F.cross_entropy(logits[start - 1:-1], answer, reduction="sum")
    loss = total / count
    loss.backward()

    assert sums[0].item() == pytest.approx(loss.item(), abs=ATOL)
    ours = get_method(method).token_rows(grads[0]).cpu()
    theirs = weight.grad.cpu()
    assert torch.allclose(ours, theirs, atol=ATOL), (ours - theirs).abs().max()
    assert weight.grad.abs().max() > 100 * ATOL  # the comparison is not of two zeros


@FAMILY
@METHOD
def test_greedy_tokens_are_pefts_argmax(family_case, family, method, tmp_path):
    case = family_case(family)
    prompt = _prompt(case.host, method)
    runtime = _runtime(case, t=prompt)
    text = "a terrible boring film with bad jokes"
    result = runtime.generate([GenRow(text, "t", max_new_tokens=8)])[0]
    context, _ = case.host.chat.context_ids(text, template=TEMPLATE)
    model = _peft_model(case, prompt, tmp_path)
    with torch.no_grad():
        logits = _peft_logits(model, context + result.tokens)
        with model.disable_adapter():
            bare = _peft_logits(model, context + result.tokens)
    answers = slice(len(context) - 1, len(context) - 1 + len(result.tokens))
    for i, token in enumerate(result.tokens):
        row = logits[answers][i]
        assert row[token] >= row.max() - TIE, f"token {i}: {token} is not PEFT's argmax"
    # The prompt changes what is predicted, so a wrong prompt path could not pass.
    assert (logits[answers] - bare[answers]).abs().max() > 0.1


@FAMILY
@METHOD
def test_mixed_batch_equals_each_row_alone(family_case, family, method):
    case = family_case(family)
    runtime = _runtime(case, a=_prompt(case.host, method, 4, seed=1),
                       b=_prompt(case.host, method, 2, seed=2))
    rows = [GenRow("the movie was great", "a", max_new_tokens=6),
            GenRow("bad jokes and a terrible boring film", "b", max_new_tokens=6),
            GenRow("hello world how are you", None, max_new_tokens=6),
            GenRow("wonderful acting", "a", max_new_tokens=6)]
    together = runtime.generate(rows)
    alone = [runtime.generate([row])[0] for row in rows]
    assert [r.tokens for r in together] == [r.tokens for r in alone]
    assert len({tuple(r.tokens) for r in together}) > 1
    # Rows that join the first two between decoding steps (their columns start elsewhere).
    waiting = [rows[2:]]
    joined = runtime.generate(rows[:2], admit=lambda free: waiting.pop() if waiting else [])
    assert [r.tokens for r in joined] == [r.tokens for r in alone]

    scored = [("a", "the movie was great"), ("b", "bad jokes"), ("a", "a terrible film")]
    mixed = runtime.score_rows(scored)
    for (task, text), result in zip(scored, mixed, strict=True):
        single = runtime.score(task, [text])[0]
        for label in LABELS:
            # Other batch shapes sum in other orders: 1e-6 of a probability in float32.
            assert result.probs[label] == pytest.approx(single.probs[label], abs=1e-5)


@FAMILY
@METHOD
def test_prompt_cache_gives_the_same_scores(family_case, family, method):
    case = family_case(family)
    texts = ["the movie was great", "a terrible boring film with bad jokes"]
    runtime = _runtime(case, t=_prompt(case.host, method))
    cold = runtime.score("t", texts)
    assert len(runtime.bank) == 1  # the prompt's keys/values are now cached
    warm = runtime.score("t", texts)
    fresh = _runtime(case, t=_prompt(case.host, method)).score("t", texts)
    assert [r.probs for r in cold] == [r.probs for r in warm] == [r.probs for r in fresh]


@FAMILY
@METHOD
def test_resume_and_eval_agree(family_case, family, method, tmp_path):
    from engine.serving.evaluate import evaluate
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job
    from tests.engine.train_helpers import make_library

    host = family_case(family).host

    def config() -> TrainConfig:
        return TrainConfig(method=method, length=3, steps=6, lr=0.05, batch_size=4,
                           eval_every=3, checkpoint_every=2, seed=7, warmup=0.0)

    straight_lib = make_library(tmp_path / "a")
    straight = run_job(TrainingJob.start(straight_lib, host, "sentiment", config()))
    lib = make_library(tmp_path / "b")
    job = TrainingJob.start(lib, host, "sentiment", config())
    for _ in range(3):
        job.step()
    job.cancel()
    result = run_job(TrainingJob.resume(lib, host, job.run_id))

    def tensor(library) -> torch.Tensor:
        version = library.get_version("sentiment")
        return SoftPrompt.load(library.version_path(version), sha256=version.sha256).tensor

    assert torch.equal(tensor(lib), tensor(straight_lib))
    assert result.best_metric == straight.best_metric
    measured = evaluate(Runtime(host, straight_lib), straight_lib, "sentiment")
    assert measured.metrics["accuracy"] == pytest.approx(straight.best_metric, abs=1e-12)


@FAMILY
def test_a_vllm_export_through_inputs_embeds_gives_our_greedy_answer(family_case, family,
                                                                    tmp_path):
    import json

    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.interop import export_version
    from engine.library import Library

    case = family_case(family)
    prompt = _prompt(case.host, "prompt", seed=5)
    lib = Library(tmp_path / "lib")
    lib.record_model(case.host.info().to_data())
    lib.create_task("t", input_template=TEMPLATE)
    lib.add_version("t", prompt.to_bytes())
    folder = export_version(lib, "t", "vllm", tmp_path / "vllm", chat=case.host.chat)
    text = "a terrible boring film with bad jokes"
    ours = _runtime(case, t=prompt).generate([GenRow(text, "t", max_new_tokens=6)])[0].tokens

    # What a vLLM client does with the export (docs/serving.md), on transformers' own model.
    placement = json.loads((folder / "placement.json").read_text())
    virtual = load_file(folder / "virtual_tokens.safetensors")["virtual_tokens"]
    tokenizer = AutoTokenizer.from_pretrained(case.folder)
    ids = tokenizer(placement["before"] + text + placement["after"],
                    add_special_tokens=False)["input_ids"]
    assert ids == case.host.chat.context_ids(text, template=TEMPLATE)[0]
    model = AutoModelForCausalLM.from_pretrained(case.folder, dtype=torch.float32).eval()
    with torch.no_grad():
        embed = model.get_input_embeddings()
        embeds = torch.cat([virtual, embed(torch.tensor(ids + ours))])[None]
        logits = model(inputs_embeds=embeds).logits[0].float()
    start = placement["virtual_tokens"] + len(ids) - 1
    for i, token in enumerate(ours):
        row = logits[start + i]
        assert row[token] >= row.max() - TIE, f"token {i}: {token} is not the argmax"
    prefix = _prompt(case.host, "prefix", seed=6)
    lib.add_version("t", prefix.to_bytes())
    with pytest.raises(PromptbankError, match="no input for those"):
        export_version(lib, "t", "vllm", tmp_path / "refused", version=2, chat=case.host.chat)
