"""Batch apply: one column per task from mixed-task batches, resumable after a stop or a kill,
and every bad input refused before anything is written."""

from __future__ import annotations

import csv
import json

import pytest

from engine.errors import PromptbankError
from engine.serving.apply import apply_file, read_table
from engine.serving.runtime import GenRow, Runtime
from tests.engine import runtime_helpers
from tests.engine.runtime_helpers import library_with_tasks

lively_host = runtime_helpers.lively_host
TEXTS = ["the movie was great", "bad jokes", "hello world", "a terrible boring film",
         "name food price", "wonderful acting, really", "hi"]


@pytest.fixture
def setup(tmp_path, lively_host):
    lib = library_with_tasks(tmp_path, lively_host)
    return lib, Runtime(lively_host, lib)


def _csv(path, texts=TEXTS, column="text"):
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", column])
        writer.writerows([[i, t] for i, t in enumerate(texts)])
    return path


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


def test_two_tasks_in_one_run(setup, tmp_path):
    _, rt = setup
    src = _csv(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    progress = []
    result = apply_file(rt, ["sentiment", "describe"], src, "text", out, batch_size=3,
                        max_new_tokens=5, on_progress=lambda *a: progress.append(a))
    assert result.complete and result.done == len(TEXTS) and result.resumed_from == 0
    table = read_table(out)
    assert table.columns == ["id", "text", "sentiment", "sentiment_probability", "describe"]
    scores = rt.score("sentiment", TEXTS)
    generated = rt.generate([GenRow(t, "describe", max_new_tokens=5) for t in TEXTS])
    for row, text, s, g in zip(table.rows, TEXTS, scores, generated, strict=True):
        assert row["text"] == text
        assert row["sentiment"] == s.label
        assert float(row["sentiment_probability"]) == pytest.approx(s.probs[s.label], abs=1e-4)
        assert row["describe"] == g.text.strip()
    assert [p[0] for p in progress] == [3, 6, 7]
    assert not (tmp_path / "out.csv.partial").exists()


def test_jsonl_and_tsv(setup, tmp_path):
    _, rt = setup
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"body": t, "n": i}) + "\n" for i, t in enumerate(TEXTS)))
    apply_file(rt, ["sentiment"], src, "body", tmp_path / "out.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["n"] for r in rows] == list(range(len(TEXTS)))
    assert all(r["sentiment"] in ("positive", "negative") for r in rows)
    apply_file(rt, ["sentiment"], src, "body", tmp_path / "out.tsv")
    assert read_table(tmp_path / "out.tsv").columns == ["body", "n", "sentiment",
                                                         "sentiment_probability"]


def test_stopped_run_resumes_to_the_same_file(setup, tmp_path):
    _, rt = setup
    src = _csv(tmp_path / "in.csv")
    whole = tmp_path / "whole.csv"
    apply_file(rt, ["describe", "sentiment"], src, "text", whole, batch_size=2,
               max_new_tokens=4)
    out = tmp_path / "out.csv"
    calls = iter([False, False, True])
    stopped = apply_file(rt, ["describe", "sentiment"], src, "text", out, batch_size=2,
                         max_new_tokens=4, should_stop=lambda: next(calls))
    assert not stopped.complete and stopped.done == 4 and not out.exists()
    partial = tmp_path / "out.csv.partial"
    with partial.open("ab") as fh:  # a kill in the middle of writing the next batch
        fh.write(b'5,"half a ro')
    resumed = apply_file(rt, ["describe", "sentiment"], src, "text", out, batch_size=2,
                         max_new_tokens=4)
    assert resumed.complete and resumed.resumed_from == 4
    assert out.read_bytes() == whole.read_bytes()
    assert not partial.exists()


def test_changed_input_starts_over(setup, tmp_path):
    _, rt = setup
    src = _csv(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    apply_file(rt, ["sentiment"], src, "text", out, batch_size=2, should_stop=iter(
        [False, True]).__next__)
    _csv(src, TEXTS[:3])
    result = apply_file(rt, ["sentiment"], src, "text", out, batch_size=2)
    assert result.resumed_from == 0 and len(read_table(out).rows) == 3


def test_existing_output_needs_overwrite(setup, tmp_path):
    _, rt = setup
    src = _csv(tmp_path / "in.csv")
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    with pytest.raises(PromptbankError, match="already exists"):
        apply_file(rt, ["sentiment"], src, "text", out)
    assert out.read_text() == "keep me"
    apply_file(rt, ["sentiment"], src, "text", out, overwrite=True)
    assert len(read_table(out).rows) == len(TEXTS)


def test_bad_inputs_write_nothing(setup, tmp_path):
    _, rt = setup
    good = _csv(tmp_path / "in.csv")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("text\ncaf\xe9\n".encode("latin-1"))
    empty_cell = _csv(tmp_path / "gaps.csv", ["fine", "  ", "ok"])
    cases = [
        (["sentiment"], latin, "text", "not UTF-8"),
        (["sentiment"], good, "body", "no column 'body'.*id, text"),
        (["sentiment"], empty_cell, "text", "Row 2 .* empty 'text'"),
        (["nope"], good, "text", "nope"),
        ([], good, "text", "No task"),
        (["sentiment"], tmp_path / "missing.csv", "text", "does not exist"),
        (["sentiment"], tmp_path / "in.xlsx", "text", "not a .csv"),
    ]
    before = _files(tmp_path)
    for tasks, src, column, message in cases:
        with pytest.raises(PromptbankError, match=message):
            apply_file(rt, tasks, src, column, tmp_path / "out.csv")
    with pytest.raises(PromptbankError, match=r"not a \.csv"):
        apply_file(rt, ["sentiment"], good, "text", tmp_path / "out.txt")
    assert _files(tmp_path) == before
