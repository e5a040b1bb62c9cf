"""The engine process end to end on the tiny model: one worker shared by the module."""

from __future__ import annotations

import json

import pytest

from engine.library import Library
from engine.server.client import RequestFailed
from engine.training.checkpointing import load_checkpoint
from tests.engine.worker_fixtures import make_library, start_worker, train_config


@pytest.fixture(scope="module")
def setup(tiny_model_dir, tiny_host, tmp_path_factory):
    root = tmp_path_factory.mktemp("worker") / "library"
    make_library(root, tiny_host)
    client = start_worker(tiny_model_dir, root)
    yield client, root
    client.close()


def test_hello_ping_and_model_info(setup, tiny_host):
    client, _ = setup
    hello = client.hello.data
    assert hello["protocol"] == 1 and hello["engine"] and "generate" in hello["ops"]
    assert client.call("ping") == {"pong": True}
    info = client.call("model_info")
    assert info["fingerprint"] == tiny_host.fingerprint and info["hidden_size"] == 32
    again = client.call("hello")
    assert again["model"]["fingerprint"] == tiny_host.fingerprint


def test_malformed_lines_get_errors_and_the_worker_carries_on(setup):
    client, _ = setup
    client.send_line("this is not json\n")
    client.send_line("[1, 2, 3]\n")
    client.send_line('{"id": "m1", "op": "ping", "args": "nope"}\n')
    client.send_line('{"op": "ping"}\n')
    got = [client.unsolicited.get(timeout=10) for _ in range(4)]
    assert [e.type for e in got] == ["error"] * 4
    assert [e.id for e in got] == ["", "", "m1", ""]
    assert "not JSON" in got[0].message and "'args'" in got[2].message
    bad = [("nope", {}, "Unknown op 'nope'"), ("ping", {"x": 1}, "Unknown argument 'x'"),
           ("score", {"task": "sent"}, "Missing argument 'texts'"),
           ("nearest_tokens", {"task": "sent", "k": "3"}, "'k'"),
           ("generate", {"rows": [{"txt": "a"}]}, r"rows[0].txt"),
           ("train", {"task": "sent", "config": {"stepz": 3}}, "config.stepz"),
           ("train", {"task": "sent", "config": {"steps": 0}}, "steps must be at least 1"),
           ("train", {"task": "nobody"}, "no task named 'nobody'"),
           ("continue", {"task": "sent", "data": "/no/such.jsonl"}, "does not exist"),
           ("resume", {"run_id": 999}, "no run with id 999"),
           ("cancel", {"job": "nothing"}, "No job 'nothing'")]
    for op, args, words in bad:
        with pytest.raises(RequestFailed) as info:
            client.call(op, **args)
        assert words in str(info.value), (op, str(info.value))
        assert "\n" not in str(info.value)
    assert client.call("ping") == {"pong": True}


def test_generate_streams_tokens_that_make_the_result(setup):
    client, _ = setup
    events = list(client.request("generate", {"rows": [{"text": "hello world", "task": "echo"},
                                                       {"text": "the movie"}],
                                              "max_new_tokens": 6}))
    final = events[-1]
    assert final.type == "result" and len(final.data["results"]) == 2
    for row in (0, 1):
        streamed = "".join(e.data["text"] for e in events if e.type == "token"
                           and e.data["row"] == row)
        assert streamed == final.data["results"][row]["text"]
        assert len(final.data["results"][row]["tokens"]) <= 6
    quiet = client.call("generate", text="hello world", task="echo", max_new_tokens=6,
                        stream=False)
    assert quiet["results"][0]["text"] == final.data["results"][0]["text"]


def test_score_and_unknown_task(setup):
    client, _ = setup
    res = client.call("score", task="sent", texts=["great film", "bad film"])["results"]
    assert len(res) == 2
    for r in res:
        assert set(r["probs"]) == {"positive", "negative"}
        assert r["label"] in r["probs"] and sum(r["probs"].values()) == pytest.approx(1, 1e-4)
    with pytest.raises(RequestFailed, match="no task named 'ghost'"):
        client.call("generate", text="x", task="ghost")


def test_score_baselines_differ_from_the_prompt_and_need_an_instruction(setup):
    client, _ = setup
    prompt, base = (client.call("score", task="sent", texts=["great film"], baseline=b)
                    ["results"][0]["probs"] for b in ("none", "base"))
    assert set(base) == {"positive", "negative"} and base != prompt
    with pytest.raises(RequestFailed, match="has no instruction to score with"):
        client.call("score", task="sent", texts=["great film"], baseline="instruction")


def test_nearest_tokens_and_similarity(setup):
    client, root = setup
    lib = Library(root)
    meta_ids = None
    from engine.prompts.soft_prompt import SoftPrompt

    version = lib.get_version("sent")
    meta_ids = SoftPrompt.from_bytes(lib.read_version_bytes(version)).extra["ids"]
    res = client.call("nearest_tokens", task="sent", k=3)
    assert res["method"] == "prompt" and res["version"] == 1 and len(res["tokens"]) == 4
    for row, wanted in zip(res["tokens"], meta_ids.split(","), strict=True):
        assert len(row) == 3 and row[0]["score"] == pytest.approx(1.0, abs=1e-4)
        assert row[0]["id"] == int(wanted) or row[1]["score"] == pytest.approx(1.0, abs=1e-4)
        assert row[0]["score"] >= row[1]["score"] >= row[2]["score"]
    with pytest.raises(RequestFailed, match="do not apply to a prefix"):
        client.call("nearest_tokens", task="deep")
    sim = client.call("similarity", tasks=["sent", "echo", "deep"])
    assert sim["tasks"] == ["sent", "echo"] and sim["pooling"] == "mean"
    assert sim["matrix"][0][0] == pytest.approx(1.0, abs=1e-4)
    assert sim["matrix"][0][1] == sim["matrix"][1][0]
    assert [s["task"] for s in sim["skipped"]] == ["deep"]
    deep = client.call("similarity", method="prefix", pooling="tokens")
    assert deep["tasks"] == ["deep"] and len(deep["matrix"]) == 1


def test_generate_is_served_while_a_job_trains_then_cancel(setup):
    client, root = setup
    train = client.request("train", {"task": "sent", "config": train_config(2000)})
    queued = train.next_event(30)
    assert queued.data["kind"] == "queued"
    started = train.next_event(60)
    while started.data["kind"] == "prepare":  # its rows are tokenised first
        started = train.next_event(60)
    assert started.data["kind"] == "started" and started.data["step"] == 0
    run_id = started.data["run_id"]
    steps_before = [train.next_event(30).data["step"] for _ in range(3)]
    answer = client.call("generate", text="hello", task="echo", max_new_tokens=4)
    score = client.call("score", task="sent", texts=["great"])
    assert answer["results"][0]["finish_reason"] in ("eos", "stop", "length")
    assert score["results"][0]["label"] in ("positive", "negative")
    client.send_line(json.dumps({"id": train.id, "op": "ping"}) + "\n")  # its id is taken
    refused = client.unsolicited.get(timeout=10)
    assert refused.type == "error" and refused.id == "" and "still in progress" in \
        refused.message and refused.data["request_id"] == train.id
    jobs = client.call("jobs")["jobs"]
    assert jobs[0]["job"] == train.id and jobs[0]["state"] == "running"
    assert jobs[0]["run_id"] == run_id and 0 < jobs[0]["step"] < 2000
    [device] = client.call("devices")["devices"]  # the CPU, its memory and the job on it
    assert (device["device"], device["name"], device["gpu"]) == ("cpu", "CPU", None)
    assert device["engine_bytes"] > 0 and 0 < device["used_bytes"] < device["total_bytes"]
    assert [(j["task"], j["op"], j["state"], j["library"]) for j in device["jobs"]] == [
        ("sent", "train", "running", "")]
    second = client.request("train", {"task": "sent", "config": train_config(5)})
    assert second.next_event(30).data == {"kind": "queued", "position": 1, "task": "sent"}
    assert client.call("cancel", job=second.id) == {"job": second.id, "was": "queued"}
    assert second.result()["started"] is False
    assert client.call("cancel", job=train.id)["was"] == "running"
    events = list(train)
    final = events[-1].data
    assert final["status"] == "cancelled" and final["run_id"] == run_id
    steps = steps_before + [e.data["step"] for e in events if e.data.get("kind") == "step"]
    assert steps == list(range(1, len(steps) + 1)) and final["step"] == steps[-1] < 2000
    assert all(e.data["step_ms"] >= 0 for e in events if e.data.get("kind") == "step")
    run = Library(root).get_run(run_id)
    assert run.status == "cancelled"
    _, state = load_checkpoint(Library(root).checkpoint_dir(run_id))
    assert state["step"] == final["step"]
    listing = client.call("jobs")
    assert listing["jobs"] == [] and run_id in [r["run_id"] for r in listing["resumable"]]


def test_eval_and_apply_stream_progress(setup, tmp_path):
    client, root = setup
    events = list(client.request("eval", {"task": "sent"}))
    final = events[-1]
    assert final.type == "result" and final.data["status"] == "done", final.data
    assert final.data["task"] == "sent" and final.data["n"] > 0
    assert "accuracy" in final.data["metrics"]
    rows = [e.data for e in events if e.type == "progress" and e.data["kind"] == "rows"]
    assert rows and rows[-1]["done"] == rows[-1]["total"] == final.data["n"]
    assert len(Library(root).list_evaluations("sent")) >= 1
    with pytest.raises(RequestFailed, match="'baseline' of 'eval' must be one of"):
        client.call("eval", task="sent", baseline="zero")

    source = tmp_path / "in.csv"
    source.write_text("text,id\ngreat film,1\nbad jokes,2\nhello world,3\n")
    out = tmp_path / "out.csv"
    events = list(client.request("apply", {"tasks": ["sent", "echo"], "input": str(source),
                                           "column": "text", "output": str(out)}))
    assert events[-1].type == "result", events[-1].data
    assert events[-1].data["status"] == "done" and events[-1].data["rows"] == 3
    assert out.read_text().splitlines()[0].startswith("text,id,")
    assert any(e.type == "progress" and e.data["kind"] == "rows" for e in events)
    with pytest.raises(RequestFailed, match="already exists"):
        client.call("apply", tasks="sent", input=str(source), column="text", output=str(out))
    assert client.call("jobs")["jobs"] == []


def test_export_op_writes_each_format_and_refuses_bad_ones(setup, tmp_path):
    client, _ = setup
    for fmt, name in (("pack", "sent.pbpack"), ("peft", "sent-peft"),
                      ("kobold", "sent.zip"), ("safetensors", "sent.safetensors")):
        out = tmp_path / name
        res = client.call("export", task="sent", format=fmt, out=str(out))
        assert res["format"] == fmt and out.exists()
    assert (tmp_path / "sent-peft" / "adapter_config.json").is_file()
    with pytest.raises(RequestFailed, match="KoboldAI cannot use"):
        client.call("export", task="deep", format="kobold", out=str(tmp_path / "deep.zip"))
    assert not (tmp_path / "deep.zip").exists()
    with pytest.raises(RequestFailed, match="'format'"):
        client.call("export", task="sent", format="onnx", out=str(tmp_path / "x"))


def test_a_cancel_stops_a_running_generate_between_tokens(setup):
    client, _ = setup
    full = client.call("generate", text="hello world", task="echo", max_new_tokens=300,
                       stream=False)["results"][0]
    assert len(full["tokens"]) > 50  # long enough to be stopped half way
    gen = client.request("generate", {"text": "hello world", "task": "echo",
                                      "max_new_tokens": 300})
    assert gen.next_event(60).type == "token"  # it runs
    assert client.call("cancel", job=gen.id)["was"] == "ended"
    final = list(gen)[-1]
    assert final.type == "result" and final.data["status"] == "cancelled"
    row = final.data["results"][0]
    assert row["finish_reason"] == "cancelled" and len(row["tokens"]) < len(full["tokens"])
    assert full["text"].startswith(row["text"])
    assert client.call("ping") == {"pong": True}


def test_plan_gives_the_memory_of_a_run_on_the_loaded_model(setup):
    client, _ = setup
    plan = client.call("plan", tasks=["sent"], config={"batch_size": 4})
    assert plan["fits"] and plan["rows_per_pass"] == 4 and plan["device"] == "cpu"
    assert plan["weights"] > 0 and plan["free"] > plan["weights"]
    assert "row(s) per pass" in plan["advice"] and plan["notes"]
