"""Runtime: mixed-task batches compute what each row computes alone, and what the naive
concatenation (PEFT's way, no cache) computes; streaming, stop strings, sampling, scoring."""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from engine.errors import PromptbankError
from engine.serving.bank import TaskSpec
from engine.serving.runtime import GenRow, Runtime
from tests.engine import runtime_helpers
from tests.engine.runtime_helpers import random_prompt

lively_host = runtime_helpers.lively_host

TEXTS = ["hello world", "the movie was great and the acting was wonderful, really", "hi",
         "spam ham win a free prize call now text stop"]
TASKS = {"p0": None, "p3": ("prompt", 3), "p17": ("prompt", 17), "x3": ("prefix", 3),
         "x17": ("prefix", 17)}


def _runtime(host, **kwargs) -> Runtime:
    rt = Runtime(host, **kwargs)
    for seed, (name, spec) in enumerate(TASKS.items()):
        if spec is not None:
            rt.register(name, random_prompt(host, *spec, seed=seed))
    return rt


@pytest.fixture(scope="module")
def runtime(lively_host):
    return _runtime(lively_host)


def _task(name: str) -> str | None:
    return None if TASKS[name] is None else name


def naive_greedy(host, prompt, text: str, steps: int, eos: set[int]) -> list[int]:
    """Greedy decoding that recomputes everything each step: prompt embeddings concatenated
    in front of the tokens (method prompt) or the prefix given as a fresh cache."""
    ids = host.tokenizer(host.chat.context_text(text), add_special_tokens=False)["input_ids"]
    out: list[int] = []
    for _ in range(steps):
        current = torch.tensor([ids + out], device=host.device)
        if prompt is None:
            logits = host.model(input_ids=current).logits
        elif prompt.method == "prompt":
            embeds = torch.cat([prompt.tensor.to(host.device).unsqueeze(0),
                                host.embeddings()(current)], dim=1)
            logits = host.model(inputs_embeds=embeds).logits
        else:
            cache = DynamicCache(ddp_cache_data=[(layer[0].unsqueeze(0), layer[1].unsqueeze(0))
                                                 for layer in prompt.tensor.to(host.device)])
            mask = torch.ones(1, prompt.length + current.shape[1], dtype=torch.long,
                              device=host.device)
            logits = host.model(input_ids=current, past_key_values=cache,
                                attention_mask=mask).logits
        token = int(logits[0, -1].argmax())
        if token in eos:
            break
        out.append(token)
    return out


def test_default_attention_is_sdpa(lively_host):
    assert lively_host.model.config._attn_implementation == "sdpa"


def test_mixed_batch_equals_each_row_alone(runtime):
    rows = [GenRow(text, _task(name), max_new_tokens=6 + (i % 5))
            for i, (text, name) in enumerate((t, n) for t in TEXTS for n in TASKS)]
    mixed = runtime.generate(rows)
    for row, result in zip(rows, mixed, strict=True):
        alone = runtime.generate([row])[0]
        assert result.tokens == alone.tokens, (row.task, row.text)
        assert result.text == alone.text
        assert len(result.tokens) <= row.max_new_tokens
    assert len({tuple(r.tokens) for r in mixed}) > len(mixed) // 2  # outputs really differ


def test_decoding_replayed_from_cuda_graphs_equals_eager_decoding(lively_host):
    """Decoding steps replayed from CUDA graphs (after a shape was seen twice) give exactly
    the tokens of eager steps; on a CPU both sides are eager."""
    rows = [GenRow(text, _task(name), max_new_tokens=9) for text in TEXTS for name in TASKS]
    graphed, eager = _runtime(lively_host), _runtime(lively_host, graphs=False)
    first = graphed.generate(rows)
    again = graphed.generate(rows)
    plain = eager.generate(rows)
    assert [r.tokens for r in first] == [r.tokens for r in again] == [r.tokens for r in plain]
    if lively_host.device.type == "cuda":
        assert graphed.decoder.graphs.captures > 0


def test_mixed_batch_in_bfloat16_scores_each_row_nearly_as_alone(tiny_host_bf16):
    """The bf16 form: a row's label log-likelihoods in a mixed batch (other rows' prompts,
    lengths and padding around it) against the row alone. The logits are bf16 (a spacing of
    0.008-0.016 between neighbouring values at their size) and padded shapes change where
    sums round, so the scores may differ by a few such steps: 0.05 (about 5e-4 seen on a
    CPU), and the chosen label is the same."""
    rt = Runtime(tiny_host_bf16)
    labels = ["positive", "negative", "positive sentiment"]
    for seed, (name, spec) in enumerate(TASKS.items()):
        if spec is not None:
            rt.register(TaskSpec(name, kind="classify", labels=labels),
                        random_prompt(tiny_host_bf16, *spec, seed=seed))
    rows = [(name, text) for text in TEXTS for name in TASKS if TASKS[name] is not None]
    _, mixed = rt.logliks(rows)
    worst = 0.0
    for row, scores in zip(rows, mixed, strict=True):
        _, (alone,) = rt.logliks([row])
        worst = max(worst, max(abs(a - b) for a, b in zip(scores, alone, strict=True)))
        assert max(range(3), key=scores.__getitem__) == max(range(3), key=alone.__getitem__)
    assert worst < 0.05


@pytest.mark.parametrize("name", list(TASKS))
def test_row_equals_naive_concatenation(runtime, lively_host, name):
    prompt = None if TASKS[name] is None else runtime.bank._pinned[name][1]
    rows = [GenRow(text, _task(name), max_new_tokens=6) for text in TEXTS[1:3]]
    for row, result in zip(rows, runtime.generate(rows), strict=True):
        stops = runtime.chat.stop_ids
        assert result.tokens == naive_greedy(lively_host, prompt, row.text, 6, stops)


def test_streaming_pieces_add_up_per_row(runtime):
    rows = [GenRow(t, _task(n), max_new_tokens=7) for t, n in zip(TEXTS, TASKS, strict=False)]
    pieces: dict[int, list[str]] = {}
    results = runtime.generate(rows, on_token=lambda i, s: pieces.setdefault(i, []).append(s))
    for i, result in enumerate(results):
        assert "".join(pieces.get(i, [])) == result.text
        assert all(pieces.get(i, ["x"]))


def test_stop_string_ends_row_and_is_not_streamed(runtime):
    full = runtime.generate([GenRow(TEXTS[1], "p3", max_new_tokens=12)])[0]
    assert len(full.text) > 4
    stop = full.text[3:5]
    first = full.text.find(stop)
    streamed: list[str] = []
    cut = runtime.generate([GenRow(TEXTS[1], "p3", max_new_tokens=12, stop=[stop, "never!"])],
                           on_token=lambda i, s: streamed.append(s))[0]
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:first]
    assert "".join(streamed) == cut.text
    assert full.finish_reason in ("length", "eos")


def test_rows_finish_independently(runtime):
    rows = [GenRow(TEXTS[0], "p3", max_new_tokens=n) for n in (1, 4, 9)]
    results = runtime.generate(rows)
    long = results[2].tokens
    for row, result in zip(rows, results, strict=True):
        assert result.tokens == long[: len(result.tokens)]
        if result.finish_reason == "length":
            assert len(result.tokens) == row.max_new_tokens


def test_rows_joining_a_decoding_batch_compute_what_they_compute_alone(runtime):
    """Rows admitted between decoding steps (the HTTP server's waiting requests) share the
    running batch's steps, each gets what it gets alone, and a row that cannot run is refused
    alone."""
    rows = [GenRow(TEXTS[1], "x17", max_new_tokens=14), GenRow(TEXTS[0], "p3", max_new_tokens=3)]
    waves = [[GenRow(TEXTS[2], "p17", max_new_tokens=8)], [],
             [GenRow(TEXTS[3], None, max_new_tokens=10), GenRow(" ", "p3"),
              GenRow(TEXTS[0], "x3", max_new_tokens=1)],
             [GenRow(TEXTS[1], "p3", max_new_tokens=5, temperature=0.8, seed=4)]]
    admitted, frees, order, pieces, done = [], [], [], {}, {}

    def admit(free: int) -> list[GenRow]:
        frees.append(free)
        wave = waves.pop(0) if waves else []
        admitted.extend(wave)
        return wave

    def on_token(i: int, text: str) -> None:
        order.append(i)
        pieces[i] = pieces.get(i, "") + text

    results = runtime.generate(rows, on_token, batch_size=4, admit=admit,
                               on_done=lambda d: done.setdefault(d.row, d))
    everyone = rows + admitted
    assert len(results) == len(everyone) == 7 and sorted(done) == list(range(7))
    assert min(frees) >= 1 and max(frees) <= 4
    refused = done[4]
    assert results[4].finish_reason == "refused" and "empty input" in refused.error
    for i, (row, result) in enumerate(zip(everyone, results, strict=True)):
        if i == 4:
            continue
        assert result.tokens == runtime.generate([row])[0].tokens, i
        assert done[i].result == result and pieces.get(i, "") == result.text
    # The first joiner streamed while the first row was still decoding: shared steps.
    assert order.index(2) < len(order) - 1 - order[::-1].index(0)


def test_a_row_joining_later_gets_the_version_activated_meanwhile(lively_host):
    runtime = _runtime(lively_host)
    waiting = [GenRow(TEXTS[0], "p3", max_new_tokens=5)]

    def admit(free: int) -> list[GenRow]:
        if not waiting:
            return []
        runtime.register("p3", random_prompt(lively_host, "prompt", 3, seed=99), version=2)
        return [waiting.pop()]

    first, joined = runtime.generate([GenRow(TEXTS[1], "p3", max_new_tokens=8)], admit=admit)
    assert (first.version, joined.version) == (1, 2)
    assert joined.tokens == runtime.generate([GenRow(TEXTS[0], "p3", max_new_tokens=5)])[0].tokens


def test_sampling_is_reproducible_and_top_p_tiny_is_greedy(runtime):
    greedy = runtime.generate([GenRow(TEXTS[0], "x3", max_new_tokens=8)])[0]
    sampled = [GenRow(TEXTS[0], "x3", max_new_tokens=8, temperature=1.5, seed=7)] * 2
    first, second = runtime.generate(sampled)
    assert first.tokens == second.tokens
    narrow = GenRow(TEXTS[0], "x3", max_new_tokens=8, temperature=1.0, top_p=1e-6, seed=3)
    assert runtime.generate([narrow])[0].tokens == greedy.tokens
    others = [GenRow(TEXTS[0], "x3", max_new_tokens=8, temperature=5.0, seed=s) for s in range(4)]
    assert len({tuple(r.tokens) for r in runtime.generate(others)}) > 1


def _label_logprob(host, prompt, text: str, label: str, eot: str) -> float:
    tok = host.tokenizer
    ctx = tok(host.chat.context_text(text), add_special_tokens=False)["input_ids"]
    answer = tok(label + eot, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + answer], device=host.device)
    embeds = torch.cat([prompt.tensor.to(host.device).unsqueeze(0), host.embeddings()(ids)],
                       dim=1)
    logp = torch.log_softmax(host.model(inputs_embeds=embeds).logits[0].double(), dim=-1)
    start = prompt.length + len(ctx)
    return sum(float(logp[start + j - 1, t]) for j, t in enumerate(answer))


def test_score_is_exact_for_labels_sharing_prefixes(lively_host):
    rt = Runtime(lively_host)
    labels = ["pos", "positive", "negative", "neg"]
    prompt = random_prompt(lively_host, "prompt", 4, seed=11)
    rt.register(TaskSpec("cls", kind="classify", labels=labels), prompt)
    texts = ["the movie was great", "bad jokes and a terrible boring film"]
    results = rt.score("cls", texts)
    for text, result in zip(texts, results, strict=True):
        ref = torch.tensor([_label_logprob(lively_host, prompt, text, lb, rt.chat.end_of_turn)
                            for lb in labels], dtype=torch.float64)
        expected = torch.softmax(ref, dim=0).tolist()
        assert [result.probs[lb] for lb in labels] == pytest.approx(expected, abs=1e-4)
        assert result.label == labels[int(ref.argmax())]
        assert sum(result.probs.values()) == pytest.approx(1.0)


def test_score_rows_mix_tasks_like_single_task_calls(lively_host):
    rt = Runtime(lively_host)
    rt.register(TaskSpec("a", kind="classify", labels=["ham", "spam"]),
                random_prompt(lively_host, "prefix", 6, seed=1))
    rt.register(TaskSpec("b", kind="classify", labels=["world", "sports", "business"]),
                random_prompt(lively_host, "prompt", 2, seed=2))
    rows = [("a", "win a free prize"), ("b", "the game"), ("a", "hello"), ("b", "hi there")]
    mixed = rt.score_rows(rows)
    for (task, text), result in zip(rows, mixed, strict=True):
        alone = rt.score(task, [text])[0]
        assert result.label == alone.label
        for label, p in alone.probs.items():
            assert result.probs[label] == pytest.approx(p, abs=1e-5)


def test_bank_is_lru_bounded_and_invalidates(lively_host):
    rt = Runtime(lively_host, max_prompts=2)
    for i in range(3):
        rt.register(f"t{i}", random_prompt(lively_host, "prompt", 2, seed=i))
    outputs = [rt.generate([GenRow("hello", f"t{i}", max_new_tokens=3)])[0].tokens
               for i in range(3)]
    assert len(rt.bank) == 2
    again = rt.generate([GenRow("hello", "t0", max_new_tokens=3)])[0].tokens
    assert again == outputs[0]
    rt.invalidate("t0")
    assert ("mem", "t0", 1) not in rt.bank._cache
    rt.invalidate()
    assert len(rt.bank) == 0


def test_register_new_version_replaces_cached_keys(lively_host):
    rt = Runtime(lively_host)
    rt.register("t", random_prompt(lively_host, "prompt", 3, seed=1))
    first = rt.generate([GenRow(TEXTS[1], "t", max_new_tokens=6)])[0]
    rt.register("t", random_prompt(lively_host, "prompt", 3, seed=2), version=2)
    latest = rt.generate([GenRow(TEXTS[1], "t", max_new_tokens=6)])[0]
    pinned = rt.generate([GenRow(TEXTS[1], "t", version=1, max_new_tokens=6)])[0]
    assert latest.version == 2 and pinned.version == 1
    assert pinned.tokens == first.tokens != latest.tokens


# Bad input ------------------------------------------------------------------------------------


def test_unknown_task_and_version(runtime):
    with pytest.raises(PromptbankError, match="Unknown task 'nope'"):
        runtime.generate([GenRow("hello", "nope")])
    with pytest.raises(PromptbankError, match="no version 9"):
        runtime.generate([GenRow("hello", "p3", version=9)])


def test_empty_input_is_refused(runtime):
    with pytest.raises(PromptbankError, match="Row 2 has an empty input"):
        runtime.generate([GenRow("hello"), GenRow("   ")])


def test_bad_settings_are_refused(runtime):
    with pytest.raises(PromptbankError, match="new tokens"):
        runtime.generate([GenRow("hello", max_new_tokens=0)])
    with pytest.raises(PromptbankError, match="top-p"):
        runtime.generate([GenRow("hello", temperature=1.0, top_p=0.0)])


def test_prompt_for_another_model_is_refused(lively_host):
    from engine.prompts.soft_prompt import ModelGeometry, SoftPrompt

    rt = Runtime(lively_host)
    other = ModelGeometry("0" * 32, 32, 2, 2, 8)
    prompt = SoftPrompt("prompt", torch.zeros(3, 32), other)
    with pytest.raises(PromptbankError, match="another model"):
        rt.register("t", prompt)
    bigger = ModelGeometry("0" * 32, 64, 2, 2, 16)
    with pytest.raises(PromptbankError, match="hidden size 64"):
        rt.register("t", SoftPrompt("prompt", torch.zeros(3, 64), bigger))
    Runtime(lively_host, force=True).register("t", prompt)


def test_long_input_is_truncated_from_the_left(runtime, lively_host):
    words = " ".join(f"w{i}" for i in range(400))
    result = runtime.generate([GenRow(words, "p17", max_new_tokens=5)])[0]
    assert result.truncated
    assert len(result.tokens) >= 1
    short = runtime.generate([GenRow("hello", "p17", max_new_tokens=5)])[0]
    assert not short.truncated
    with pytest.raises(PromptbankError, match="no room for the input"):
        runtime.generate([GenRow(words, "p17", max_new_tokens=lively_host.max_positions)])


def test_score_refuses_generate_task(runtime):
    with pytest.raises(PromptbankError, match="not a classify task"):
        runtime.score("p3", ["hello"])
