"""``promptbank bench serve-http``: the OpenAI-compatible server (``promptbank serve``, its
own process) under 1, 8 and 32 concurrent clients over 8 tasks — tokens/s, latency and time
to first token — against PEFT generating the same requests one at a time, switching adapters
per request.

Every client streams its answer, so the time to first token is the first text it receives.
A burst of as many one-token requests as the most clients shows the floor of that time under
load: the engine must prefill every waiting request before the last gets its first token.
The tasks hold random ``prompt``-method tensors (speed does not depend on what they say); the
server's answers may end before ``--new-tokens`` at an end of turn, PEFT's never do, so
throughput is compared per generated token.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.commands.bench._stats import percentile
from engine.commands.bench.serve import WORDS, _Peft, _prompt
from engine.errors import PromptbankError

#: Seconds the server gets to load the model and listen.
START_TIMEOUT_S = 600


def register(bsub: argparse._SubParsersAction) -> None:
    parser = bsub.add_parser("serve-http", help="the OpenAI-compatible server under 1-32 "
                             "concurrent clients, against PEFT one request at a time")
    parser.add_argument("--tasks", type=int, default=8, help="tasks the requests spread over")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=64, help="requests timed per level")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.set_defaults(func=cmd_bench_serve_http)


@dataclass
class Sample:
    """One streamed request: seconds to its first text, to its end, and text chunks read."""

    ttft: float
    latency: float
    tokens: int


def _stream(url: str, task: str, text: str, new_tokens: int) -> Sample:
    """One streamed completion request, timed."""
    parts = urlsplit(url)
    body = json.dumps({"model": task, "prompt": text, "max_tokens": new_tokens,
                       "temperature": 0, "stream": True})
    started = time.perf_counter()
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    try:
        conn.request("POST", f"{parts.path}/completions", body,
                     {"Content-Type": "application/json"})
        reply = conn.getresponse()
        if reply.status != 200:
            raise PromptbankError(f"The server answered {reply.status}: "
                                  f"{reply.read(500).decode(errors='replace')}")
        first, tokens = None, 0
        for line in reply:
            if not line.startswith(b"data: {"):
                continue
            choice = json.loads(line[6:])["choices"][0]
            if choice.get("text"):
                tokens += 1
                first = first if first is not None else time.perf_counter() - started
    finally:
        conn.close()
    latency = time.perf_counter() - started
    return Sample(latency if first is None else first, latency, tokens)


def _level(url: str, requests: list[tuple[str, str]], clients: int, new_tokens: int) -> dict:
    """The requests sent by ``clients`` concurrent clients; throughput and percentiles."""
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        samples = list(pool.map(lambda r: _stream(url, r[0], r[1], new_tokens), requests))
    wall = time.perf_counter() - started
    tokens = sum(s.tokens for s in samples)
    ms = 1000.0
    return {"clients": clients, "requests": len(samples), "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1),
            "latency_p50_ms": round(percentile([s.latency for s in samples], 50) * ms, 1),
            "latency_p95_ms": round(percentile([s.latency for s in samples], 95) * ms, 1),
            "ttft_p50_ms": round(percentile([s.ttft for s in samples], 50) * ms, 1),
            "ttft_p95_ms": round(percentile([s.ttft for s in samples], 95) * ms, 1)}


def _library(folder: Path, host, names: list[str]) -> None:
    """A library of one version per task: each a random ``prompt`` of 20 tokens."""
    from engine.library import Library

    library = Library(folder)
    library.record_model(host.info().to_data())
    for i, name in enumerate(names):
        library.create_task(name)
        library.add_version(name, _prompt(host, 20, i, task=name).to_bytes())
    library.close()


def _server(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen, str]:
    """``promptbank serve`` on any free port of this computer, and its base URL."""
    command = [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--json",
               "--library", str(folder), "--model", args.model, "--device", args.device,
               "--dtype", args.dtype]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    line = proc.stdout.readline()
    try:
        return proc, json.loads(line)["url"]
    except (ValueError, KeyError, TypeError):
        proc.kill()
        raise PromptbankError("The server of the benchmark did not start.",
                              hint="Run `promptbank serve --port 0` with the same --model to "
                              "see why.") from None


def cmd_bench_serve_http(args: argparse.Namespace) -> int:
    from engine.commands._common import load_host

    rng = random.Random(0)
    host = load_host(args)
    names = [f"task{i}" for i in range(args.tasks)]
    levels = [int(c) for c in str(args.clients).split(",") if c.strip()]
    requests = [(names[i % len(names)], " ".join(rng.choice(WORDS) for _ in range(30)))
                for i in range(max(args.requests, *levels))]
    with tempfile.TemporaryDirectory() as folder:
        _library(Path(folder), host, names)
        proc, url = _server(args, Path(folder))
        try:
            for name in names:  # warm: a task's first request computes its prompt's keys
                _stream(url, name, requests[0][1], 2)
            lone = [_stream(url, *requests[i % len(requests)], 1).ttft for i in range(8)]
            # The most clients at once, one token each: how long the engine takes to give
            # a first token to all of a burst (their prefills), the floor of its p95.
            burst = _level(url, requests[:levels[-1]], levels[-1], 1)
            measured = [_level(url, requests, c, args.new_tokens) for c in levels]
        finally:
            proc.terminate()
            proc.wait(30)
    result = {"model": host.name, "device": str(host.device), "tasks": len(names),
              "new_tokens": args.new_tokens, "levels": measured,
              "lone_ttft_p50_ms": round(percentile(lone, 50) * 1000, 1),
              "burst_clients": burst["clients"], "burst_ttft_p95_ms": burst["ttft_p95_ms"],
              **_peft_side(host, names, requests, args.new_tokens)}
    top = measured[-1]
    result["speedup_vs_peft_at_top"] = round(top["tokens_per_s"] / result["peft_tokens_per_s"],
                                             2)
    result["ttft_p95_vs_lone_at_top"] = round(top["ttft_p95_ms"] / result["lone_ttft_p50_ms"],
                                              2)
    if args.json:
        print(json.dumps(result))
    else:
        for level in measured:
            print(" ".join(f"{k}={v}" for k, v in level.items()))
        for key, value in result.items():
            if key != "levels":
                print(f"{key:<28} {value}")
    return 0


def _peft_side(host, names: list[str], requests: list[tuple[str, str]],
               new_tokens: int) -> dict:
    """PEFT on its own model copy: the same requests one at a time, adapter set per request."""
    peft = _Peft(host, {name: _prompt(host, 20, i) for i, name in enumerate(names)})
    # The context the server builds for the same input (chat template, no task template).
    ids = {text: host.chat.context_ids(text)[0] for _, text in requests}
    peft.generate(names[0], ids[requests[0][1]], 2)
    started = time.perf_counter()
    for task, text in requests:
        peft.generate(task, ids[text], new_tokens)
    wall = time.perf_counter() - started
    peft.close()
    return {"peft_tokens_per_s": round(len(requests) * new_tokens / wall, 1)}
