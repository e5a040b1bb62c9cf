"""The wire format: encoding, decoding, argument validation (no process needed)."""

from __future__ import annotations

import io
import json

import pytest

from engine.api.generation import generate_rows
from engine.api.registry import OP_SPECS, OPS, ops_table_markdown, validate_args
from engine.api.wire import (
    EVENT_TYPES,
    Event,
    ProtocolError,
    Request,
    decode_event,
    decode_request,
    error,
    read_lines,
    request_id_of,
)


def test_request_round_trip_for_every_op():
    for op in OPS:
        req = Request(f"id-{op}", op, {"a": [1, "two", {"x": None}]})
        line = req.encode()
        assert line.endswith("\n") and line.count("\n") == 1
        assert decode_request(line) == req


def test_event_round_trip_and_final():
    events = [Event("r1", "result", {"pong": True}), error("r2", "bad thing"),
              Event("r3", "progress", {"kind": "step", "step": 2}),
              Event("r4", "token", {"row": 0, "text": "hé\nllo"}),
              Event("", "hello", {"protocol": 1}),
              Event("r5", "log", {"level": "info", "message": "x"})]
    for event in events:
        line = event.encode()
        assert line.count("\n") == 1
        assert decode_event(line) == event
    assert [e.final for e in events] == [True, True, False, False, False, False]
    assert events[1].message == "bad thing"


def test_event_id_and_type_win_over_fields():
    line = Event("r1", "result", {"id": "spoof", "type": "error", "x": 1}).encode()
    assert json.loads(line) == {"id": "r1", "type": "result", "x": 1}


@pytest.mark.parametrize("line, words", [
    ("not json", "not JSON"),
    ("[1, 2]", "one JSON object"),
    ('{"op": "ping"}', "'id'"),
    ('{"id": "", "op": "ping"}', "'id'"),
    ('{"id": 5, "op": "ping"}', "'id'"),
    ('{"id": "a"}', "'op'"),
    ('{"id": "a", "op": "ping", "args": [1]}', "'args'"),
    (b'\xff\xfe', "not JSON"),
    ('{"id": "a", "op": "ping", "op": "shutdown"}', "the key 'op' twice"),
    ('{"id": "a", "op": "generate", "args": {"task": "t", "task": "u"}}', "the key 'task'"),
])
def test_malformed_requests_are_refused(line, words):
    with pytest.raises(ProtocolError, match=words):
        decode_request(line)


def test_null_args_mean_no_args():
    assert decode_request('{"id": "a", "op": "ping", "args": null}').args == {}


def test_request_id_of_broken_lines():
    assert request_id_of('{"id": "r9", "op": 3}') == "r9"
    assert request_id_of("garbage") == ""
    assert request_id_of('{"id": 4}') == ""
    assert request_id_of("[1]") == ""


def test_a_deeply_nested_line_is_refused_without_recursion():
    line = '{"id": "d1", "op": "ping", "args": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    for decode in (decode_request, decode_event):
        with pytest.raises(ProtocolError, match="nested deeper than 64 levels"):
            decode(line)
    assert request_id_of(line) == ""


@pytest.mark.parametrize("value", ["1" + "0" * 30, "1" * 6000, "1e999", "NaN", "-Infinity"])
def test_request_numbers_out_of_range_are_refused(value):
    line = '{"id": "n1", "op": "generate", "args": {"text": "a", "max_new_tokens": ' + value + "}}"
    with pytest.raises(ProtocolError, match=r"number|JSON does not allow"):
        decode_request(line)
    # The error goes to the request when its id can still be read (not past Python's own
    # limit of 4,300 digits).
    assert request_id_of(line) == ("" if len(value) > 4300 else "n1")


def test_a_line_over_the_limit_is_read_only_up_to_it():
    stream = io.BytesIO(b"short\n" + b"x" * 50 + b"\nnext\nlast")
    assert list(read_lines(stream, limit=20)) == [b"short\n", b"x" * 21, b"next\n", b"last"]
    with pytest.raises(ProtocolError, match="longer than"):
        decode_request(b"{" + b" " * (16 << 20) + b"}")


def test_bad_events_are_refused():
    for line in ('{"id": "a", "type": "nonsense"}', '{"type": "result"}', "[]"):
        with pytest.raises(ProtocolError):
            decode_event(line)
    assert "result" in EVENT_TYPES


def test_validate_fills_defaults():
    assert validate_args("nearest_tokens", {"task": "t"}) == {"task": "t", "version": None,
                                                              "k": 5}
    assert validate_args("similarity", {})["pooling"] == "mean"
    assert validate_args("ping", {}) == {}


@pytest.mark.parametrize("op, args, words", [
    ("nope", {}, "Unknown op 'nope'"),
    ("ping", {"x": 1}, "Unknown argument 'x'"),
    ("score", {"texts": ["a"]}, "Missing argument 'task'"),
    ("score", {"task": "t", "texts": "a"}, "'texts' of 'score' must be a list"),
    ("score", {"task": "  ", "texts": []}, "'task' of 'score' must not be empty"),
    ("nearest_tokens", {"task": "t", "k": 0}, "'k' of 'nearest_tokens' must be at least 1"),
    ("nearest_tokens", {"task": "t", "k": True}, "'k' of 'nearest_tokens' must be a int"),
    ("nearest_tokens", {"task": "t", "k": 2.5}, "'k'"),
    ("resume", {"run_id": "3"}, "'run_id'"),
    ("cancel", {}, "Missing argument 'job'"),
    ("apply", {"tasks": 3, "input": "a", "column": "c", "output": "o"}, "'tasks'"),
    ("generate", {"text": "hi", "temperature": -1}, "'temperature'"),
])
def test_validate_names_the_bad_argument(op, args, words):
    with pytest.raises(ProtocolError, match=words):
        validate_args(op, args)


def test_float_arguments_accept_ints():
    assert validate_args("generate", {"text": "x", "temperature": 1})["temperature"] == 1


def test_generate_rows_shorthand_and_defaults():
    args = validate_args("generate", {"text": "hi", "task": "t", "max_new_tokens": 5})
    assert generate_rows(args) == [{"text": "hi", "task": "t", "max_new_tokens": 5,
                                    "temperature": 0.0, "top_p": 1.0, "stop": []}]
    args = validate_args("generate", {"rows": [{"text": "a"}, {"text": "b", "task": "u",
                                                               "max_new_tokens": 2}],
                                      "task": "t"})
    rows = generate_rows(args)
    assert [(r["text"], r["task"], r["max_new_tokens"]) for r in rows] == [("a", "t", 64),
                                                                           ("b", "u", 2)]


@pytest.mark.parametrize("args, words", [
    ({}, "exactly one of"),
    ({"text": "a", "rows": [{"text": "b"}]}, "exactly one of"),
    ({"rows": []}, "must not be empty"),
    ({"rows": ["a"]}, r"rows\[0\]' of 'generate' must be an object"),
    ({"rows": [{"task": "t"}]}, r"rows\[0\].text"),
    ({"rows": [{"text": "a", "colour": 1}]}, r"rows\[0\].colour"),
    ({"rows": [{"text": "a"}, {"text": "b", "max_new_tokens": "9"}]}, r"rows\[1\].max_new"),
])
def test_generate_rows_refuses_bad_rows(args, words):
    with pytest.raises(ProtocolError, match=words):
        generate_rows(validate_args("generate", args))


def test_every_op_is_documented():
    table = ops_table_markdown()
    for op, spec in OP_SPECS.items():
        assert f"| `{op}` |" in table
        assert spec.doc and spec.kind in ("quick", "job", "long")
    for op in ("ping", "load_model", "model_info", "generate", "score", "train", "continue",
               "cancel", "jobs", "eval", "apply", "nearest_tokens", "similarity", "shutdown",
               "resume", "hello"):
        assert op in OPS


def test_every_op_has_a_spec_a_result_type_and_exactly_one_handler():
    from engine.api.registry import GROUPS, RESULTS
    from engine.server.ops import HANDLERS

    declared = [spec.name for group in GROUPS for spec in group.SPECS]
    assert len(declared) == len(set(declared))  # no op declared twice
    assert set(HANDLERS) == set(OP_SPECS) == set(RESULTS)


def test_docs_protocol_holds_the_generated_op_table():
    from pathlib import Path

    from engine.api.registry import OPS_BEGIN, OPS_END

    doc = (Path(__file__).resolve().parents[3] / "docs" / "protocol.md").read_text()
    assert doc.split(OPS_BEGIN, 1)[1].split(OPS_END, 1)[0].strip() == ops_table_markdown(), \
        "run `make docs`"
