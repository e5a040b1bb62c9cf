"""Each benchmark runs end to end on the tiny model and prints the fields its issue names.

Only the output's shape and exactness checks are asserted, never a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.api.train_settings import DEFAULT_REPLAY
from engine.commands.bench.continual import ANCHOR
from tests.conftest import TEST_DEVICE

ROOT = Path(__file__).resolve().parents[3]


def bench(model_dir: Path, *args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--model", str(model_dir), "--device", TEST_DEVICE,
         "bench", *args, "--json"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_bench_train_fields_and_equal_step0_loss(tiny_model_dir, tmp_path):
    out = bench(tiny_model_dir, "train", "--lengths", "3,5", "--steps", "2", "--cycle", "2",
                "--data", str(tmp_path / "no-data"))
    assert {"device", "model", "runs"} <= set(out)
    assert [r["length"] for r in out["runs"]] == [3, 5]
    for run in out["runs"]:
        assert {"batch_size", "ours_tokens_per_s", "peft_tokens_per_s", "speedup",
                "step0_loss_diff"} <= set(run)
        assert run["step0_loss_diff"] < 1e-4


def test_bench_serve_fields(tiny_model_dir):
    out = bench(tiny_model_dir, "serve", "--alternations", "3", "--tasks", "3",
                "--new-tokens", "2", "--bank", "5")
    for key in ("device", "switch_p50_ms", "switch_p99_ms", "reload_s", "peft_switch_p99_ms",
                "mixed_vs_peft_speedup", "mixed_vs_single_task_ratio",
                "ttft_cached_vs_base_ratio", "ttft_peft_vs_base_ratio", "bank_1000_rss_mb"):
        assert key in out, key


def test_bench_serve_http_fields(tiny_model_dir):
    out = bench(tiny_model_dir, "serve-http", "--tasks", "2", "--clients", "1,3",
                "--requests", "3", "--new-tokens", "2")
    assert [level["clients"] for level in out["levels"]] == [1, 3]
    for level in out["levels"]:
        assert level["requests"] == 3 and level["tokens"] > 0
        for key in ("tokens_per_s", "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms",
                    "ttft_p95_ms"):
            assert level[key] > 0, key
    for key in ("lone_ttft_p50_ms", "peft_tokens_per_s", "speedup_vs_peft_at_top",
                "ttft_p95_vs_lone_at_top", "burst_ttft_p95_ms"):
        assert out[key] > 0, key
    assert out["burst_clients"] == 3


def test_bench_worker_fields(tiny_model_dir):
    out = bench(tiny_model_dir, "worker", "--requests", "3", "--pings", "5",
                "--max-new-tokens", "2", "--length", "3", "--micro-batch", "2")
    for key in ("generate_p50_ms", "generate_p95_ms", "train_step_ms", "train_step_p95_ms",
                "ping_p95_ms", "generate_p95_budget_ms", "train_steps_during"):
        assert key in out, key
    assert out["train_micro_batch"] == 2 and out["train_steps_timed"] >= 6


def test_bench_remote_trains_both_ways_and_counts_the_bytes(tiny_model_dir):
    out = bench(tiny_model_dir, "remote", "--steps", "2", "--rows", "60")
    for side in ("local", "remote"):
        assert out[side]["train_s"] > 0 and out[side]["total_s"] > out[side]["train_s"]
    # The dataset crossed once (base64 in JSON lines) and the trained version came back.
    assert out["remote"]["bytes_sent"] > out["dataset_bytes"]
    assert out["remote"]["bytes_received"] > 0
    assert out["train_overhead"] > 0 and "engine.cli" in out["remote"]["engine"]


@pytest.mark.parametrize("name", ["quality", "continual", "transfer"])
def test_bench_on_real_data_skips_cleanly_without_it(tiny_model_dir, tmp_path, name):
    out = bench(tiny_model_dir, name, "--data", str(tmp_path / "absent"))
    assert "skipped" in out and "absent" in out["skipped"]


def _fake_benchmark_data(root: Path) -> Path:
    """The four benchmark tasks' files in their real formats, a few rows each."""
    words = ["good fun", "bad plot", "great cast", "dull scenes", "fine music", "awful end"]
    (root / "sst2").mkdir(parents=True)
    for name in ("stsa.binary.train", "stsa.binary.dev"):
        (root / "sst2" / name).write_text("".join(
            f"{i % 2} {w} {i}\n" for i, w in enumerate(words * 4)))
    (root / "agnews").mkdir()
    topics = ["World", "Sports", "Business", "Sci/Tech"]
    (root / "agnews" / "train.tsv").write_text("".join(
        f"news item {i}\t{topics[i % 4]}\n" for i in range(24)))
    (root / "agnews" / "test.csv").write_text("Class Index,Title,Description\n" + "".join(
        f"{i % 4 + 1},t,story {i}\n" for i in range(12)))
    (root / "sms_spam").mkdir()
    (root / "sms_spam" / "SMSSpamCollection.tsv").write_text("Label\tSMS\n" + "".join(
        f"{'spam' if i % 3 == 0 else 'ham'}\tmessage {i}\n" for i in range(40)))
    (root / "e2e").mkdir()
    for name in ("train.csv", "test.csv"):
        (root / "e2e" / name).write_text("mr,ref,fixed,orig_mr\n" + "".join(
            f'"name[P{i}], food[Thai]",P{i} serves Thai food.,0,"x"\n' for i in range(24)))
    return root


def test_bench_multitask_fields_and_joint_equals_sequential(tiny_model_dir, tmp_path):
    data = _fake_benchmark_data(tmp_path / "data")
    out = bench(tiny_model_dir, "multitask", "--data", str(data), "--steps", "2",
                "--train-rows", "20", "--eval-rows", "6", "--batch-size", "4",
                "--method", "prompt", "--length", "2")
    tasks = ["sst2", "agnews", "sms_spam", "e2e"]
    assert out["tasks"] == tasks
    joint = out["joint"]
    for key in ("sequential_train_s", "joint_train_s", "train_time_ratio", "wall_time_ratio"):
        assert key in joint, key
    for name in tasks:
        row = joint["tasks"][name]
        assert row["max_loss_diff"] < 1e-4
        assert row["joint"]["steps"] == row["sequential"]["steps"] == 2
        assert row["joint"]["metric"] == pytest.approx(row["sequential"]["metric"], abs=1e-4)
    assert joint["tasks"]["e2e"]["joint"]["metric_name"] == "eval_loss"


def test_bench_transfer_trains_every_start_from_the_other_tasks_only(tiny_model_dir, tmp_path):
    data = _fake_benchmark_data(tmp_path / "data")
    out = bench(tiny_model_dir, "transfer", "--data", str(data), "--tasks", "sst2,agnews,e2e",
                "--points", "1,2", "--start-points", "1", "--source-steps", "2",
                "--train-rows", "20", "--eval-rows", "6", "--few-shot-rows", "4,8",
                "--few-shot-steps", "2", "--batch-size", "4", "--method", "prompt",
                "--length", "2")
    assert [r["held_out"] for r in out["held_out"]] == ["sst2", "agnews", "e2e"]
    for row in out["held_out"]:
        others = [t for t in ("sst2", "agnews", "e2e") if t != row["held_out"]]
        assert row["sources"] == others
        inits = row["inits"]
        assert inits["universal"] == f"universal:universal-without-{row['held_out']}"
        assert inits["shared"] == f"universal:shared-without-{row['held_out']}"
        assert inits["mix"] == "mix:" + ",".join(others)
        assert inits["suggested"] in {f"task:{o}" for o in others}
        assert row["probe"]["pick"] in {*(f"task:{o}" for o in others), "mix", "text"}
        assert row["probe"]["head_start"] and row["probe"]["steps_saved"] is not None
        assert set(row["curves"]["text"]) == {"1", "2"}
        assert all(set(row["curves"][s]) == {"1"} for s in inits if s != "text")
        assert set(row["few_shot"]) == {"4", "8"}
        assert all(r["steps"] <= 2 for r in row["few_shot"]["8"].values())
    assert out["held_out"][2]["metric_name"] == "eval_loss"
    assert set(out["summary"]) == {"universal", "shared", "suggested", "mix"}
    assert set(out["summary"]["mix"]["few_shot_gain_points"]) == {"4", "8"}


def test_bench_multitask_skips_cleanly_without_data(tiny_model_dir, tmp_path):
    out = bench(tiny_model_dir, "multitask", "--data", str(tmp_path / "absent"))
    assert "skipped" in out and "absent" in out["skipped"]


def test_bench_prepare_fields(tiny_model_dir, tmp_path):
    out = bench(tiny_model_dir, "prepare", "--rows", "700", "--long-mb", "0.5", "--data",
                str(tmp_path / "no-data"))
    assert out["rows"] == 700 and out["train_rows"] == 630  # a tenth held out for evaluation
    for key in ("task_create_s", "job_start_s", "ms_per_row", "job_start_ms_per_row",
                "first_progress_s", "longest_gap_s", "threads"):
        assert key in out, key
    assert out["progress_calls"] == 2  # chunks of 512 rows
    long = out["long_row"]
    assert long["truncated"] and long["tokens"] <= 256 and long["chars"] == int(0.5 * 2**20)


def test_bench_train_with_a_busy_neighbour(tiny_model_dir, tmp_path):
    import os

    out = bench(tiny_model_dir, "--threads", "1", "train", "--lengths", "3", "--steps", "2",
                "--cycle", "1", "--neighbour", "--data", str(tmp_path / "no-data"))
    assert out["threads"] == 1
    (run,) = out["runs"]
    busy = run["neighbour"]
    assert {"ours_tokens_per_s", "peft_tokens_per_s", "speedup"} <= set(busy)
    with pytest.raises(ProcessLookupError):  # the neighbour was stopped with the run
        os.kill(busy["neighbour_pid"], 0)


def test_bench_quality_scores_ours_on_the_test_rows_and_selects_on_validation(
        tiny_model_dir, tmp_path):
    data = _fake_benchmark_data(tmp_path / "data")
    out = bench(tiny_model_dir, "quality", "--data", str(data), "--tasks", "sst2", "--steps",
                "2", "--eval-size", "6", "--train-rows", "20", "--no-peft", "--method",
                "prompt", "--length", "2")
    ours = out["results"][0]["ours"]
    # Scored on the six test rows (a whole number of them), selected on training rows.
    assert round(ours["accuracy"] * 6, 6) == round(ours["accuracy"] * 6)
    assert 0.0 <= ours["validation"] <= 1.0


def test_bench_continual_runs_every_strategy_through_both_sequences(tiny_model_dir, tmp_path):
    data = _fake_benchmark_data(tmp_path / "data")
    out = bench(tiny_model_dir, "continual", "--data", str(data), "--quick", "--steps", "2",
                "--train-rows", "12", "--eval-size", "4")
    assert [s["sequence"] for s in out["sequences"]] == ["topics", "tasks"]
    topics, tasks = out["sequences"]
    assert topics["stages"] == ["World + Sports", "Business + Sci/Tech"]
    assert tasks["stages"] == ["sst2", "sms_spam"]  # --quick: two stages
    for seq in out["sequences"]:
        rows = {r["strategy"]: r for r in seq["strategies"]}
        assert list(rows) == ["continue", "replay", "anchor", "replay+anchor", "progressive"]
        assert seq["scratch"][0] is None and 0 <= seq["scratch"][1] <= 1
        for row in rows.values():
            history = row["history"]
            assert [len(h) for h in history] == [1, 2] and row["final"] == history[-1]
            assert row["average"] == pytest.approx(sum(row["final"]) / 2)
            best = max(history[0][0], history[1][0])
            assert row["forgetting_points"] == pytest.approx(100 * (best - history[1][0]))
        # Progressive serves the first stage's inputs with the first stage's own frozen
        # version: its outputs stay bit for bit what they were, so nothing is forgotten.
        assert rows["progressive"]["old_outputs_unchanged"]
        assert rows["progressive"]["forgetting_points"] == 0
        assert not rows["continue"]["old_outputs_unchanged"]  # one prompt moved on
        assert (rows["replay"]["replay"], rows["anchor"]["anchor"]) == (DEFAULT_REPLAY, ANCHOR)


def test_bench_quality_can_run_the_peft_baseline_alone(tiny_model_dir, tmp_path):
    data = _fake_benchmark_data(tmp_path / "data")
    out = bench(tiny_model_dir, "quality", "--data", str(data), "--tasks", "sst2", "--steps",
                "2", "--eval-size", "6", "--train-rows", "20", "--no-ours", "--length", "2")
    (row,) = out["results"]
    assert "ours" not in row
    assert round(row["peft"]["accuracy"] * 6, 6) == round(row["peft"]["accuracy"] * 6)


def test_bench_memory_measures_a_load_in_its_own_process_and_plans_the_cards(tiny_model_dir):
    from engine.commands.bench.memory import CARDS_GB, SHAPES, _measure, planned_fits

    load = _measure({"kind": "load", "folder": str(tiny_model_dir)})
    assert load["peak_mb"] > 50 and load["seconds"] >= 0 and "float32" in load["dtype_reason"]
    rows = planned_fits(8, 256)
    assert len(rows) == len(SHAPES) * (len(CARDS_GB) * 3 + 1)
    plan = {(r["shape"], r["device"], r["free_gb"], r["base"]): r for r in rows}
    assert not plan[("llama-8b", "cuda", 16, "bfloat16")]["fits"]  # 16 GB of weights
    assert plan[("llama-8b", "cuda", 16, "4bit")]["fits"]
    assert plan[("llama-8b", "cpu", 22.5, "bfloat16")]["rows_per_pass"] < 8
    assert (plan[("llama-1b", "cuda", 24, "4bit")]["planned_gb"]
            < plan[("llama-1b", "cuda", 24, "bfloat16")]["planned_gb"])
