"""The OpenAI-compatible endpoints' types: a JSON body parsed into a typed request (or an
``ApiError`` in OpenAI's error shape, with its HTTP status), and the response objects."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

#: Largest request body read, in bytes; a larger one is refused with 413.
MAX_BODY = 1 << 20
#: Largest ``max_tokens`` one request may ask for.
MAX_TOKENS = 2048
DEFAULT_MAX_TOKENS = 256
#: OpenAI allows up to four stop sequences.
MAX_STOPS = 4
#: How an engine row ended, as OpenAI says it.
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "cancelled": "stop"}


class ApiError(Exception):
    """A request refused: its HTTP status and OpenAI's error object."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = (
            status, message, kind, param, code)

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's clients read an error from."""
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.code}}


@dataclass
class Sampling:
    """How to decode: the OpenAI fields the engine supports."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 1.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None


@dataclass
class CompletionRequest:
    """A chat or text completion: the model id, the input, its context and decoding."""

    model: str
    text: str
    chat: bool
    system: str | None = None
    shots: list[tuple[str, str]] = field(default_factory=list)
    sampling: Sampling = field(default_factory=Sampling)
    stream: bool = False
    logprobs: bool = False


def _bad(message: str, param: str | None = None) -> ApiError:
    return ApiError(400, message, param=param)


def _number(body: dict, name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not low <= value <= high:
        raise _bad(f"'{name}' must be a number from {low:g} to {high:g}.", name)
    return float(value)


def _sampling(body: dict) -> Sampling:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is None:
        limit = DEFAULT_MAX_TOKENS
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_TOKENS:
        raise _bad(f"'max_tokens' must be a whole number from 1 to {MAX_TOKENS}.", "max_tokens")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list) or len(stop) > MAX_STOPS \
            or not all(isinstance(s, str) and s for s in stop):
        raise _bad(f"'stop' must be a string or a list of at most {MAX_STOPS} strings.", "stop")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)
                             or not 0 <= seed < 2 ** 63):
        raise _bad("'seed' must be a whole number of 0 or more.", "seed")
    if body.get("n", 1) != 1:
        raise _bad("Only 'n': 1 is supported: ask again for another answer.", "n")
    return Sampling(limit, _number(body, "temperature", 1.0, 0.0, 2.0),
                    _number(body, "top_p", 1.0, 0.0, 1.0), stop, seed)


def _model(body: dict) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("'model' is required: a task name (see GET /v1/models).", "model")
    return model.strip()


def _content(message: dict, index: int) -> str:
    content = message.get("content")
    if isinstance(content, list):  # content parts: only text ones are understood
        if not all(isinstance(p, dict) and p.get("type") == "text" for p in content):
            raise _bad(f"messages[{index}] holds a part that is not text.", "messages")
        content = "".join(str(p.get("text", "")) for p in content)
    if not isinstance(content, str):
        raise _bad(f"messages[{index}].content must be text.", "messages")
    return content


def parse_chat(body: Any) -> CompletionRequest:
    """A ``/v1/chat/completions`` body: earlier user/assistant turns become examples."""
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages \
            or not all(isinstance(m, dict) for m in messages):
        raise _bad("'messages' must be a non-empty list of messages.", "messages")
    system = None
    turns: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        role = message.get("role")
        if role in ("system", "developer") and i == 0:
            system = _content(message, i)
        elif role in ("user", "assistant"):
            turns.append((role, _content(message, i)))
        else:
            raise _bad(f"messages[{i}] has the role '{role}'; use system (first), user or "
                       "assistant.", "messages")
    if not turns or turns[-1][0] != "user":
        raise _bad("The last message must be the user's.", "messages")
    pairs = turns[:-1]
    if any(role != ("user", "assistant")[i % 2] for i, (role, _) in enumerate(pairs)):
        raise _bad("Earlier turns must alternate user, assistant.", "messages")
    shots = [(pairs[i][1], pairs[i + 1][1]) for i in range(0, len(pairs), 2)]
    return CompletionRequest(_model(body), turns[-1][1], True, system, shots, _sampling(body),
                             body.get("stream") is True, body.get("logprobs") is True)


def parse_completion(body: Any) -> CompletionRequest:
    """A ``/v1/completions`` body: its ``prompt`` is the task's input."""
    if not isinstance(body, dict):
        raise _bad("The body must be a JSON object.")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise _bad("'prompt' must be one string.", "prompt")
    return CompletionRequest(_model(body), prompt, False, sampling=_sampling(body),
                             stream=body.get("stream") is True,
                             logprobs=body.get("logprobs") not in (None, False, 0))


@dataclass
class Answer:
    """What the engine answered one request: text, why it ended, token counts, and for a
    classify task the label probabilities."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    probs: dict[str, float] | None = None


def _logprobs(answer: Answer, chat: bool) -> dict | None:
    if answer.probs is None:
        return None
    top = [{"token": label, "logprob": math.log(max(p, 1e-300))}
           for label, p in sorted(answer.probs.items(), key=lambda kv: -kv[1])]
    best = {"token": answer.text, "logprob": math.log(max(answer.probs[answer.text], 1e-300))}
    if chat:
        return {"content": [{**best, "bytes": None, "top_logprobs": top}]}
    return {"tokens": [answer.text], "token_logprobs": [best["logprob"]],
            "top_logprobs": [{t["token"]: t["logprob"] for t in top}], "text_offset": [0]}


def new_id(chat: bool) -> str:
    """A response id in OpenAI's style."""
    return f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"


def response(request: CompletionRequest, answer: Answer, rid: str) -> dict[str, Any]:
    """The whole (non-streamed) response."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": FINISH.get(answer.finish_reason,
                                                                      "stop"),
                              "logprobs": _logprobs(answer, request.chat)
                              if request.logprobs else None}
    if request.chat:
        choice["message"] = {"role": "assistant", "content": answer.text}
    else:
        choice["text"] = answer.text
    return {"id": rid, "object": "chat.completion" if request.chat else "text_completion",
            "created": int(time.time()), "model": request.model, "choices": [choice],
            "usage": {"prompt_tokens": answer.prompt_tokens,
                      "completion_tokens": answer.completion_tokens,
                      "total_tokens": answer.prompt_tokens + answer.completion_tokens}}


def chunk(request: CompletionRequest, rid: str, text: str | None = None,
          finish_reason: str | None = None, first: bool = False) -> dict[str, Any]:
    """One server-sent event of a streamed response."""
    choice: dict[str, Any] = {"index": 0, "finish_reason": FINISH.get(finish_reason or "",
                                                                      finish_reason)}
    if request.chat:
        delta: dict[str, Any] = {"role": "assistant"} if first else {}
        if text:
            delta["content"] = text
        choice["delta"] = delta
    else:
        choice["text"] = text or ""
    return {"id": rid, "object": "chat.completion.chunk" if request.chat else "text_completion",
            "created": int(time.time()), "model": request.model, "choices": [choice]}


def model_list(ids: list[str]) -> dict[str, Any]:
    """``GET /v1/models``."""
    return {"object": "list", "data": [{"id": i, "object": "model", "created": 0,
                                        "owned_by": "promptbank"} for i in ids]}
