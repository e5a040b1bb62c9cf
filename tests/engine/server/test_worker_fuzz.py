"""A real worker fed random and adversarial lines (garbage bytes, deep nesting, huge numbers,
random requests) still answers a ping after each batch, and answers bad requests with
one-line errors, never an internal exception."""

from __future__ import annotations

import json
import queue
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.api.registry import OPS
from engine.server.client import Client
from tests.conftest import REAL_CACHE, TEST_DEVICE

# Every op but those that end the worker or write files where a random path points.
SAFE_OPS = [op for op in OPS if op not in ("shutdown", "install_examples", "import", "export",
                                           "apply", "load_model", "create_task", "add_dataset")]
ARG_NAMES = st.sampled_from(["text", "task", "texts", "rows", "version", "max_new_tokens",
                             "temperature", "top_p", "stop", "seed", "k", "run_id", "job",
                             "config", "data", "baseline", "tasks", "method", "x"])
LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
          | st.floats() | st.text(max_size=8))
JSON_VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=4) | ARG_NAMES, inner, max_size=3),
                           max_leaves=12)
IDS = st.text(alphabet="abcdef0123456789", min_size=1, max_size=6).map(lambda s: "f" + s)
HUGE_NUMBERS = (st.sampled_from(["1e400", "-1e400", "NaN", "Infinity", "-Infinity",
                                 "1" + "0" * 30 + ".5", "0." + "0" * 400 + "1"])
                | st.integers(min_value=19, max_value=6000).map(lambda n: "9" * n))


def with_number(rid: str, op: str, name: str, number: str) -> str:
    return json.dumps({"id": rid, "op": op, "args": {name: 0}})[:-3] + number + "}}"


def nested(depth: int, wrap: str) -> str:
    closing = "]" if wrap == "[" else "}"
    return '{"id": "fdeep", "op": "ping", "args": {"x": ' + wrap * depth + closing * depth + "}}"


LINES = st.one_of(
    st.binary(max_size=300),
    st.builds(nested, st.integers(min_value=1, max_value=300_000),
              st.sampled_from(["[", '{"a":'])),
    st.builds(with_number, IDS, st.sampled_from(SAFE_OPS), ARG_NAMES, HUGE_NUMBERS),
    st.builds(lambda rid, op, args: json.dumps({"id": rid, "op": op, "args": args}),
              IDS, st.sampled_from(SAFE_OPS), st.dictionaries(ARG_NAMES, JSON_VALUES, max_size=4)),
)
# An internal failure shows as "SomeError: text"; bad input must be told in words instead.
INTERNAL = re.compile(r"^[A-Z]\w*(Error|Exception)\b")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz") / "library"
    # No model: every op that needs one fails at once, so each example stays quick.
    worker = Client.start("no-such-model", root, TEST_DEVICE, timeout=60,
                          env={"PROMPTBANK_CACHE": REAL_CACHE, "HF_HUB_OFFLINE": "1"})
    yield worker
    worker.close()


def drained(client: Client) -> list:
    out = []
    while True:
        try:
            out.append(client.unsolicited.get_nowait())
        except queue.Empty:
            return out


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(lines=st.lists(LINES, min_size=1, max_size=4))
def test_the_worker_answers_a_ping_after_any_lines(client, lines):
    for line in lines:
        client.send_line((line.encode() if isinstance(line, str) else line) + b"\n")
    assert client.request("ping").result() == {"pong": True}
    for event in drained(client):
        if event.type == "error":
            assert "\n" not in event.message and not INTERNAL.match(event.message), event.message


def test_one_deeply_nested_line_of_200_kb(client):
    drained(client)
    client.send_line(nested(100_000, "[") + "\n")
    event = client.unsolicited.get(timeout=60)
    assert event.type == "error" and event.id == ""
    assert event.message == "Malformed request: nested deeper than 64 levels."
    assert client.call("ping") == {"pong": True} and client.alive
