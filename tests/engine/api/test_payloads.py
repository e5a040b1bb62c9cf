"""Typed event payloads: every one survives the wire (encode, decode, parse) unchanged."""

from __future__ import annotations

import dataclasses

import pytest

from engine.api.generation import (
    ApplyOutcome,
    EvalOutcome,
    Generated,
    GeneratedText,
    HttpServerState,
    LabelScores,
    RowDone,
    RowsProgress,
    Scored,
    Token,
)
from engine.api.inspection import NearTokens, Similarity
from engine.api.library import (
    Activated,
    DatasetAdded,
    ExamplesInstalled,
    Exported,
    Imported,
    LibraryInfo,
    TaskDeleted,
    TaskSaved,
)
from engine.api.payload import Payload
from engine.api.registry import GROUPS, OP_SPECS, RESULTS, parse_event
from engine.api.session import (
    Bye,
    CancelAnswer,
    DeviceJob,
    DeviceLine,
    DevicesListing,
    Hello,
    JobLine,
    JobsListing,
    LoadProgress,
    MethodInfo,
    ModelDescription,
    Pong,
    ResumableRun,
)
from engine.api.training import (
    EvalProgress,
    JobOutcome,
    MemoryPlan,
    PrepareProgress,
    ProbeProgress,
    Queued,
    RankedStarts,
    Started,
    StartRank,
    StepProgress,
    TaskFailed,
    VersionSaved,
)
from engine.api.wire import Event, ProtocolError, decode_event

SAMPLES: list[tuple[str, Payload]] = [
    ("load_model", LoadProgress(stage="Loading the model", fraction=0.9)),
    ("train", Queued(position=2, task="sent")),
    ("resume", Started(task="sent", run_id=4, step=30, total=60)),
    (
        "train",
        StepProgress(
            step=3,
            total=60,
            loss=0.51,
            lr=0.02,
            tokens_per_s=812.5,
            eta_s=41.2,
            step_ms=120.5,
            job="r7",
        ),
    ),
    (
        "train",
        EvalProgress(
            step=20, eval_loss=0.4, metric=0.75, metric_name="accuracy", n=8, step_ms=90.0, job="r7"
        ),
    ),
    ("apply", RowsProgress(done=32, total=100, rows_per_s=12.5, eta_s=5.4)),
    ("eval", RowsProgress(done=16, total=16)),
    ("train", PrepareProgress(done=512, total=90_000)),
    ("generate", Token(row=1, text="hé\nllo")),
    ("generate", RowDone(row=2, result=GeneratedText("hi", [5], "stop", prompt_tokens=3))),
    ("generate", RowDone(row=3, error="Row 1 has an empty input.")),
    ("hello", Hello(protocol=1, engine="0.1.0", model={"name": "tiny"}, ops=["ping"],
                    methods=[MethodInfo(name="prefix", summary="keys and values",
                                        tensor_key="prefix", token_axis=3, default_lr=0.02)])),
    ("ping", Pong()),
    ("shutdown", Bye()),
    (
        "model_info",
        ModelDescription(
            name="tiny",
            source="folder",
            path="/m",
            fingerprint="ab",
            parameters=1000,
            hidden_size=32,
            layers=2,
            heads=4,
            kv_heads=2,
            head_dim=8,
            vocab_size=300,
            max_positions=512,
            device="cpu",
            dtype="float32",
            threads=2,
            load_seconds=0.3,
        ),
    ),
    (
        "generate",
        Generated(
            [
                GeneratedText("hi", [5, 6], "eos", False, 2, prompt_tokens=11),
                GeneratedText("x", [7], "length", True, None),
            ]
        ),
    ),
    ("generate", Generated([GeneratedText("h", [5], "cancelled")], status="cancelled")),
    ("score", Scored([LabelScores("positive", {"positive": 0.9, "negative": 0.1}, False, 1)])),
    ("serve_http", HttpServerState(True, "http://127.0.0.1:8000/v1", ["echo", "base"], True)),
    ("serve_http", HttpServerState()),
    (
        "train",
        JobOutcome(
            status="done",
            task="sent",
            run_id=3,
            version=2,
            steps=60,
            step=60,
            total=60,
            best_metric=0.8,
            metric_name="accuracy",
            tokens_per_s=900.0,
            summary={"train_seconds": 12.0},
        ),
    ),
    (
        "continue",
        JobOutcome(
            status="cancelled",
            task="sent",
            run_id=5,
            step=7,
            total=60,
            interrupted="the desktop or client went away",
        ),
    ),
    ("cancel", CancelAnswer(job="r7", was="running")),
    (
        "jobs",
        JobsListing(
            [
                JobLine("r7", "train", "sent", "running", 3, 10, 60),
                JobLine("r9", "eval", "sent", "running"),
            ],
            [ResumableRun(2, "sent", "cancelled")],
        ),
    ),
    (
        "eval",
        EvalOutcome(
            status="done",
            task="sent",
            version=None,
            metrics={"accuracy": 0.5},
            n=12,
            baseline="fewshot",
            data_sha256="ff",
        ),
    ),
    (
        "apply",
        ApplyOutcome(
            status="cancelled",
            out_path="o.csv",
            rows=10,
            done=4,
            resumed_from=0,
            truncated=1,
            complete=False,
            columns=["text", "sent"],
        ),
    ),
    (
        "nearest_tokens",
        NearTokens(
            task="sent",
            version=1,
            method="prompt",
            k=2,
            tokens=[[{"id": 3, "token": "a", "score": 0.5}]],
        ),
    ),
    (
        "similarity",
        Similarity(
            method="prompt",
            tasks=["a", "b"],
            matrix=[[1.0, 0.2], [0.2, 1.0]],
            pooling="mean",
            skipped=[{"task": "c", "reason": "no version"}],
        ),
    ),
    ("export", Exported(task="sent", format="pack", path="/x/sent.pbpack")),
    (
        "import",
        Imported(format="pack", added=["sent v1"], renamed=["a → a (2)"], skipped=[], notes=["n"]),
    ),
    ("library_info", LibraryInfo(root="/lib", schema_version=3, tasks=2)),
    ("create_task", TaskSaved(task={"name": "t"}, datasets=[{"id": 1}])),
    ("edit_task", TaskSaved(task={"name": "u"})),
    ("delete_task", TaskDeleted(deleted="t")),
    ("activate", Activated(task="t", version={"number": 2})),
    ("add_dataset", DatasetAdded(dataset={"id": 2}, added=False)),
    ("install_examples", ExamplesInstalled(installed=["a"], skipped=["b: why"])),
    # Many tasks at once: a joint job's events name their task, and its result one outcome
    # per saved task; ranking starting points.
    ("train_joint", Started(task="a", run_id=4, total=6, run_ids=[4, 5], tasks=["a", "b"])),
    ("train_joint", StepProgress(step=2, total=6, loss=0.7, lr=0.01, job="r3", task="b")),
    (
        "train_joint",
        EvalProgress(step=2, eval_loss=0.6, metric=0.5, metric_name="accuracy", n=4, task="a"),
    ),
    ("train_joint", VersionSaved(task="b", version=3, step=4, run_id=5)),
    ("train_joint", TaskFailed(task="a", message="The training loss became NaN.")),
    (
        "train_joint",
        JobOutcome(
            status="done",
            task="a",
            run_id=4,
            steps=6,
            step=6,
            total=6,
            run_ids=[4, 5],
            tasks=["a", "b"],
            failed={"a": "NaN"},
            summary={"train_seconds": 1.5},
            results=[
                JobOutcome(
                    task="b",
                    run_id=5,
                    version=3,
                    steps=4,
                    step=4,
                    total=4,
                    summary={"stop_reason": "steps done"},
                )
            ],
        ),
    ),
    (
        "resume",
        JobOutcome(
            status="cancelled",
            task="a",
            run_id=4,
            step=3,
            total=6,
            run_ids=[4, 5],
            tasks=["a", "b"],
        ),
    ),
    (
        "universal",
        JobOutcome(
            task="uni",
            run_id=7,
            version=1,
            steps=2,
            total=2,
            summary={"after": {"a": {"metric": 0.5}}},
        ),
    ),
    (
        "jobs",
        JobsListing(
            [JobLine("r3", "train_joint", "a", "running", 4, 2, 6, [4, 5], ["a", "b"])],
            [ResumableRun(5, "b", "cancelled", joint_id=4)],
        ),
    ),
    (
        "devices",
        DevicesListing(
            [
                DeviceLine("cuda:0", "NVIDIA H100", "1", 0, 30 * 2**30, 80 * 2**30,
                           12 * 2**30, [DeviceJob("sent", "train", "running", 4, 60),
                                        DeviceJob("ag", "train", "queued", library="5f3a2b1c",
                                                  user="bob")]),
                DeviceLine("cpu", "CPU", used_bytes=9 * 2**30, total_bytes=24 * 2**30),
            ]
        ),
    ),
    ("rank_starts", ProbeProgress(done=2, total=5)),
    (
        "rank_starts",
        RankedStarts(
            method="prompt",
            length=4,
            best="universal:uni",
            starts=[
                StartRank("universal:uni", "universal", 1, 2.5, 1.25, "#1: loss 1.250"),
                StartRank("text", "text", None, 2.6, 1.5, "#2: loss 1.500"),
            ],
        ),
    ),
    ("rank_starts", RankedStarts(method="prefix", length=8)),
    (
        "plan",
        MemoryPlan(
            "cuda:0",
            "bfloat16",
            24 << 30,
            16 << 30,
            1 << 20,
            600 << 20,
            300 << 20,
            4 << 20,
            8,
            False,
            1,
            20 << 30,
            True,
            "8 row(s) per pass",
            ["Rows: up to 256 tokens"],
        ),
    ),
]


@pytest.mark.parametrize(
    "op, payload", SAMPLES, ids=[f"{op}-{type(pl).__name__}" for op, pl in SAMPLES]
)
def test_every_payload_round_trips_through_a_line(op, payload):
    line = payload.event("r1").encode()
    event = decode_event(line)
    assert event.type == payload.EVENT
    parsed = parse_event(op, event)
    assert parsed == payload and type(parsed) is type(payload)


def test_every_payload_class_has_a_sample_and_every_op_a_result_type():
    classes = {
        c
        for group in GROUPS
        for c in vars(group).values()
        if isinstance(c, type) and issubclass(c, Payload) and c is not Payload
    }
    shown: set[type] = set()

    def show(payload: Payload) -> None:  # the sample and every payload nested in it
        shown.add(type(payload))
        for value in vars(payload).values():
            for inner in value if isinstance(value, list) else [value]:
                if isinstance(inner, Payload):
                    show(inner)

    for _, pl in SAMPLES:
        show(pl)
    assert classes == shown
    assert set(OP_SPECS) <= set(RESULTS)


def test_progress_carries_its_kind_and_numbers_keep_their_types():
    data = RowsProgress(done=3, total=9).event("a").data
    assert data["kind"] == "rows" and data["done"] == 3
    parsed = parse_event("apply", decode_event(RowsProgress(3, 9).event("a").encode()))
    assert isinstance(parsed, RowsProgress) and isinstance(parsed.done, int)


def test_unknown_fields_are_ignored_and_unknown_kinds_refused():
    event = Event("r", "progress", {"kind": "step", "step": 2, "from_the_future": 1})
    assert parse_event("train", event) == StepProgress(step=2)
    with pytest.raises(ProtocolError, match="no payload type"):
        parse_event("train", Event("r", "progress", {"kind": "mystery"}))
    with pytest.raises(ProtocolError, match="no payload type"):
        parse_event("no-such-op", Event("r", "result", {}))


def test_payloads_are_plain_dataclasses_with_docstrings():
    for _, sample in SAMPLES:
        assert dataclasses.is_dataclass(sample) and type(sample).__doc__
