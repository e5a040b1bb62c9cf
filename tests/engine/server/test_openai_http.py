"""The OpenAI-compatible server driven by the real ``openai`` client over localhost, on a
worker of the tiny model: models, chat, streaming, completions, a classify task with its
label probabilities, two tasks in one decode step, every error case, and serving while a
task trains."""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

from engine.api.wire import Request
from engine.cli import build_parser, main
from engine.forward import decode
from engine.server.openai_http import serving
from engine.server.openai_http.protocol import ApiError, CompletionRequest
from engine.server.openai_http.serving import Bridge
from engine.server.worker import Worker
from tests.conftest import TEST_DEVICE
from tests.engine.worker_fixtures import make_library, train_config

KEY = "test-key"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir, tiny_host):
    """A worker (its scheduler on a thread), the bridge, and the server with an API key."""
    root = tmp_path_factory.mktemp("served") / "library"
    make_library(root, tiny_host).close()
    args = build_parser().parse_args(["--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                                      "--library", str(root), "--max-input-tokens", "64",
                                      "serve"])
    worker = Worker(args, out=io.StringIO())
    # Started as the desktop starts it: the serve_http op, in the engine's own process.
    worker.scheduler.dispatch(Request("s", "serve_http", {"port": 0, "api_key": KEY}))
    started = [json.loads(line) for line in worker.out.getvalue().splitlines()][-1]
    assert started["type"] == "result" and started["running"] and started["key_required"]
    assert "echo" in started["models"] and started["url"] == worker.ctx.http.url
    loop = threading.Thread(target=worker.scheduler.run, daemon=True)
    loop.start()
    yield worker, worker.ctx.http
    worker.scheduler.put(Request("s2", "serve_http", {"stop": True}))
    worker.scheduler.stop("the tests are over")


@pytest.fixture
def client(served):
    return openai.OpenAI(base_url=served[1].url, api_key=KEY, max_retries=0, timeout=120)


def test_models_list_every_served_task_version_and_the_base(client):
    ids = {m.id for m in client.models.list().data}
    assert {"sent", "sent@1", "echo", "echo@1", "deep", "deep@1", "base"} <= ids


def test_chat_streamed_or_not_gives_the_same_greedy_answer(client):
    asked = {"model": "echo", "messages": [{"role": "user", "content": "say hello"}],
             "max_tokens": 6, "temperature": 0}
    whole = client.chat.completions.create(**asked)
    text = whole.choices[0].message.content
    assert whole.choices[0].finish_reason in ("stop", "length") and whole.model == "echo"
    assert whole.usage.completion_tokens >= 1 and whole.usage.prompt_tokens >= 2
    pieces = [c.choices[0].delta.content or "" for c in
              client.chat.completions.create(**asked, stream=True)]
    assert "".join(pieces) == text
    done = client.completions.create(model="echo@1", prompt="say hello", max_tokens=6,
                                     temperature=0)
    assert done.choices[0].text == text  # the same task, version and input


def test_a_classify_task_answers_its_label_with_probabilities(client):
    answer = client.chat.completions.create(
        model="sent", messages=[{"role": "user", "content": "a great film"}], logprobs=True)
    label = answer.choices[0].message.content
    assert label in ("positive", "negative")
    top = answer.choices[0].logprobs.content[0].top_logprobs
    assert {t.token for t in top} == {"positive", "negative"} and top[0].token == label
    assert sum(pow(2.718281828459045, t.logprob) for t in top) == pytest.approx(1.0, abs=1e-4)


def test_two_tasks_at_once_share_one_decode_and_each_is_its_lone_answer(client, served,
                                                                         monkeypatch):
    worker = served[0]
    asks = [("echo", "say one"), ("deep", "say two")]
    alone = [client.chat.completions.create(model=m, messages=[{"role": "user", "content": t}],
                                            max_tokens=5, temperature=0)
             .choices[0].message.content for m, t in asks]
    sent: list[Request] = []
    put = worker.scheduler.put
    monkeypatch.setattr(worker.scheduler, "put",
                        lambda item: (sent.append(item), put(item))[1])
    monkeypatch.setattr(serving, "BATCH_WINDOW_S", 1.0)  # both arrive inside one window
    answers: dict[str, str] = {}

    def ask(model: str, text: str) -> None:
        reply = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": text}], max_tokens=5,
            temperature=0)
        answers[model] = reply.choices[0].message.content

    threads = [threading.Thread(target=ask, args=pair) for pair in asks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    generates = [r for r in sent if getattr(r, "op", "") == "generate"]
    assert len(generates) == 1  # one request, so one decode loop, for both tasks
    assert {row["task"] for row in generates[0].args["rows"]} == {"echo", "deep"}
    assert [answers["echo"], answers["deep"]] == alone


def test_a_request_joins_a_running_decode_and_ends_before_it(client, served, monkeypatch):
    """Continuous batching: a request that arrives while another decodes joins its steps
    (no second generate), answers before it ends, and neither answer changes; a classify
    request is served after the batch."""
    worker = served[0]
    first = {"model": "echo", "messages": [{"role": "user", "content": "say a lot"}],
             "max_tokens": 40, "temperature": 0}
    second = {"model": "deep", "messages": [{"role": "user", "content": "say two"}],
              "max_tokens": 3, "temperature": 0}
    alone = [client.chat.completions.create(**asked).choices[0].message.content
             for asked in (first, second)]
    sent: list[Request] = []
    put = worker.scheduler.put
    monkeypatch.setattr(worker.scheduler, "put", lambda item: (sent.append(item), put(item))[1])
    push = decode.Decoder._push

    def slow_push(self, *args):  # decoding steps slow enough to arrive during them
        time.sleep(0.02)
        return push(self, *args)

    monkeypatch.setattr(decode.Decoder, "_push", slow_push)
    order: list[str] = []
    streaming = threading.Event()
    pieces: list[str] = []

    def stream_first() -> None:
        for part in client.chat.completions.create(**first, stream=True):
            pieces.append(part.choices[0].delta.content or "" if part.choices else "")
            streaming.set()
        order.append("first")

    thread = threading.Thread(target=stream_first)
    thread.start()
    assert streaming.wait(60)
    joined = client.chat.completions.create(**second).choices[0].message.content
    order.append("second")
    # A classify request never joins a generate: it waits for the batch's end.
    label = client.chat.completions.create(
        model="sent", messages=[{"role": "user", "content": "a great film"}])
    thread.join(120)
    assert order == ["second", "first"]
    assert ["".join(pieces), joined] == alone
    assert len(alone[0]) > len(alone[1])
    assert label.choices[0].message.content in ("positive", "negative")
    assert [r.op for r in sent if isinstance(r, Request)] == ["generate", "score"]


def test_a_client_that_goes_away_mid_stream_stops_its_row(served, monkeypatch):
    ended: list[str] = []
    settle = serving.Pending.settle
    monkeypatch.setattr(serving.Pending, "settle", lambda self, kind, value: (
        ended.append(getattr(value, "finish_reason", kind)), settle(self, kind, value))[1])
    push = decode.Decoder._push

    def slow_push(self, *args):
        time.sleep(0.05)
        return push(self, *args)

    monkeypatch.setattr(decode.Decoder, "_push", slow_push)
    host, port = served[1].url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/v1/completions", json.dumps(
        {"model": "echo", "prompt": "say a lot", "max_tokens": 400, "temperature": 0,
         "stream": True}), {"Authorization": f"Bearer {KEY}",
                            "Content-Type": "application/json"})
    reply = conn.getresponse()
    while b'"text": ""' in (line := reply.readline()) or not line.startswith(b"data: {"):
        pass  # up to the first piece of text
    conn.sock.close()
    conn.close()
    deadline = time.monotonic() + 30
    while not ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ended == ["cancelled"]


def test_errors_have_openais_shape_and_status(client, served):
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="echo@9", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="max_tokens"):
        client.chat.completions.create(model="echo", max_tokens=0,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="'n': 1"):
        client.chat.completions.create(model="echo", n=2,
                                       messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError, match="last message"):
        client.chat.completions.create(model="echo",
                                       messages=[{"role": "assistant", "content": "x"}])
    with pytest.raises(openai.APIStatusError, match="longer than the 64 tokens") as long:
        client.chat.completions.create(model="echo",
                                       messages=[{"role": "user", "content": "word " * 400}])
    assert long.value.status_code == 413
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=served[1].url, api_key="wrong", max_retries=0).models.list()
    url = served[1].url
    status, body = _declared_too_large(served[1].port)
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body = _raw(f"{url}/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in body["error"]["message"]
    status, body = _raw(f"{url}/nothing")
    assert status == 404 and "error" in body


def _raw(url: str, data: bytes | None = None) -> tuple[int, dict]:
    """A plain HTTP request with the key: its status and JSON body."""
    request = urllib.request.Request(url, data=data,
                                     headers={"Authorization": f"Bearer {KEY}"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_too_many_waiting_requests_are_refused_with_429(served, monkeypatch):
    monkeypatch.setattr(serving, "MAX_WAITING", 1)
    monkeypatch.setattr(Bridge, "_dispatch", lambda self: None)  # nothing is taken off
    stalled = Bridge(served[0].ctx)
    stalled._waiting.put_nowait(object())  # one already waiting
    with pytest.raises(ApiError) as err:
        stalled.submit(CompletionRequest("echo", "hi", chat=True))
    assert err.value.status == 429


def test_serving_goes_on_while_a_task_trains(client, served):
    worker = served[0]
    def events() -> list[dict]:
        return [json.loads(line) for line in worker.out.getvalue().splitlines()]

    worker.scheduler.put(Request("train-1", "train", {"task": "sent",
                                                      "config": train_config(400)}))
    deadline = time.monotonic() + 120
    while not any(e["id"] == "train-1" and e.get("kind") == "step" for e in events()):
        assert time.monotonic() < deadline, "the training run never stepped"
        time.sleep(0.05)
    reply = client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "still there?"}], max_tokens=3)
    assert reply.choices[0].message.content is not None
    assert not any(e["id"] == "train-1" and e["type"] == "result" for e in events())
    worker.scheduler.put(Request("stop-1", "cancel", {"job": "train-1"}))


def test_serve_refuses_an_open_address_without_a_key(tmp_path, capsys):
    assert main(["--library", str(tmp_path / "lib"), "serve", "--host", "0.0.0.0"]) == 2
    assert "without a key" in capsys.readouterr().err


def _declared_too_large(port: int) -> tuple[int, dict]:
    """A request declaring a 2 MiB body: refused on its header, before the body is read."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.putrequest("POST", "/v1/chat/completions")
    conn.putheader("Authorization", f"Bearer {KEY}")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders(b"{")
    reply = conn.getresponse()
    try:
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


def test_the_op_stops_the_server_and_starts_it_again(tiny_model_dir, tmp_path, tiny_host):
    root = tmp_path / "library"
    make_library(root, tiny_host).close()
    args = build_parser().parse_args(["--model", str(tiny_model_dir), "--device", TEST_DEVICE,
                                      "--library", str(root), "worker"])
    worker = Worker(args, out=io.StringIO())
    worker.scheduler.dispatch(Request("a", "serve_http", {"port": 0}))
    url = worker.ctx.http.url
    assert openai.OpenAI(base_url=url, api_key="-", max_retries=0).models.list().data
    worker.scheduler.dispatch(Request("b", "serve_http", {"stop": True}))
    assert worker.ctx.http is None
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="-", max_retries=0, timeout=5).models.list()
    worker.scheduler.dispatch(Request("c", "serve_http", {"host": "0.0.0.0", "port": 0}))
    refused = json.loads(worker.out.getvalue().splitlines()[-1])
    assert refused["type"] == "error" and "without a key" in refused["message"]
