"""Evaluation: metrics of a version or a baseline, stored with the data hash; compare table;
the runtime serving prompts from the library (active version changes, checksums)."""

from __future__ import annotations

import json

import pytest

from engine.errors import PromptbankError
from engine.serving.evaluate import compare_rows, compare_text, evaluate, examples_sha256
from engine.serving.metrics import accuracy
from engine.serving.runtime import GenRow, Runtime
from tests.engine import runtime_helpers
from tests.engine.runtime_helpers import library_with_tasks, random_prompt

lively_host = runtime_helpers.lively_host


@pytest.fixture
def setup(tmp_path, lively_host):
    lib = library_with_tasks(tmp_path, lively_host)
    return lib, Runtime(lively_host, lib)


def test_classify_eval_is_stored_with_data_hash(setup):
    lib, rt = setup
    examples = lib.examples("sentiment", "eval")
    result = evaluate(rt, lib, "sentiment")
    assert result.version == 1 and result.n == len(examples) > 0
    predicted = [r.label for r in rt.score("sentiment", [e.input for e in examples])]
    assert result.metrics["accuracy"] == pytest.approx(
        accuracy(predicted, [e.output for e in examples]))
    assert set(result.metrics) == {"accuracy", "macro_f1"}
    stored = lib.list_evaluations("sentiment")
    assert len(stored) == 1
    assert stored[0].data_sha256 == examples_sha256(examples) == result.data_sha256
    assert stored[0].version_id == lib.get_version("sentiment").id
    assert stored[0].metrics == result.metrics


def test_baselines_and_compare_table(setup):
    lib, rt = setup
    evaluate(rt, lib, "sentiment")
    instruction = evaluate(rt, lib, "sentiment", baseline="instruction")
    fewshot = evaluate(rt, lib, "sentiment", baseline="fewshot")
    assert instruction.version is None and fewshot.version is None
    rows = compare_rows(lib, "sentiment")
    assert [r["what"] for r in rows] == ["v1", "instruction", "fewshot"]
    assert len({r["data"] for r in rows}) == 1
    table = compare_text(rows)
    assert "accuracy" in table.splitlines()[0] and "fewshot" in table


def test_generate_eval_and_data_file(setup, tmp_path):
    lib, rt = setup
    data = tmp_path / "extra.jsonl"
    pairs = [("hello world", "how are you"), ("name food price", "a sentence")]
    data.write_text("".join(json.dumps({"input": i, "output": o}) + "\n" for i, o in pairs))
    result = evaluate(rt, lib, "describe", data=data)
    assert set(result.metrics) == {"exact_match", "token_f1", "rouge_l", "chrf"}
    assert result.n == 2
    assert all(0 <= v <= 1 for v in result.metrics.values())
    fewshot = evaluate(rt, lib, "describe", data=data, baseline="fewshot")
    assert fewshot.version is None and fewshot.data_sha256 == result.data_sha256
    assert [e.baseline for e in lib.list_evaluations("describe")] == ["none", "fewshot"]


def test_bad_evaluations_leave_the_catalogue_alone(setup, tmp_path):
    lib, rt = setup
    with pytest.raises(PromptbankError, match="Unknown baseline"):
        evaluate(rt, lib, "sentiment", baseline="magic")
    with pytest.raises(PromptbankError, match="no version 7"):
        evaluate(rt, lib, "sentiment", version=7)
    with pytest.raises(PromptbankError, match="nope"):
        evaluate(rt, lib, "nope")
    lib.update_task("describe", instruction="")
    with pytest.raises(PromptbankError, match="no instruction"):
        evaluate(rt, lib, "describe", baseline="instruction")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"input": "caf\xe9", "output": "x"}\n')
    with pytest.raises(PromptbankError, match="not UTF-8"):
        evaluate(rt, lib, "describe", data=bad)
    assert lib.list_evaluations("sentiment") == [] and lib.list_evaluations("describe") == []


def test_runtime_follows_the_active_version(setup, lively_host):
    lib, rt = setup
    lib.set_active("describe", 1)
    row = GenRow("hello world", "describe", max_new_tokens=6)
    first = rt.generate([row])[0]
    lib.add_version("describe", random_prompt(lively_host, "prompt", 7, seed=9).to_bytes())
    assert rt.generate([row])[0].version == 1  # version 1 is still the active one
    lib.set_active("describe", 2)
    second = rt.generate([row])[0]
    assert second.version == 2 and second.tokens != first.tokens
    assert rt.generate([GenRow("hello world", "describe", 1, max_new_tokens=6)])[0].tokens == \
        first.tokens


def test_damaged_or_foreign_prompt_file_is_refused(setup, lively_host):
    lib, rt = setup
    version = lib.get_version("sentiment")
    path = lib.version_path(version)
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")
    with pytest.raises(PromptbankError, match="checksum"):
        rt.score("sentiment", ["hello"])
    from engine.prompts.soft_prompt import ModelGeometry

    other = ModelGeometry("0" * 32, lively_host.hidden_size, lively_host.num_layers,
                          lively_host.num_kv_heads, lively_host.head_dim)
    foreign = random_prompt(lively_host, "prompt", 3)
    foreign.geometry = other
    lib.add_version("describe", foreign.to_bytes())
    with pytest.raises(PromptbankError, match="another model"):
        rt.generate([GenRow("hello", "describe", version=2)])


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_the_metric_training_stores_is_what_promptbank_eval_measures(tiny_host, tmp_path,
                                                                    method):
    """One label scorer, one truncation rule and one data hash: the best metric a run saves
    with its version is the accuracy `promptbank eval` gives that version on the same rows."""
    from engine.training.config import TrainConfig
    from engine.training.job import TrainingJob, run_job
    from tests.engine.train_helpers import make_library

    lib = make_library(tmp_path)
    config = TrainConfig(method=method, length=3, steps=4, lr=0.1, batch_size=4,
                         eval_every=4, init="vocab", warmup=0.0)
    result = run_job(TrainingJob.start(lib, tiny_host, "sentiment", config))
    stored = lib.get_version("sentiment").metrics
    measured = evaluate(Runtime(tiny_host, lib), lib, "sentiment")
    assert measured.version == result.version == 1
    assert stored["metric_name"] == "accuracy" and stored["best_metric"] == result.best_metric
    assert measured.metrics["accuracy"] == pytest.approx(result.best_metric, abs=1e-12)
    assert measured.n == len(lib.examples("sentiment", "eval"))
