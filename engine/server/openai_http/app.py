"""The HTTP transport of the OpenAI endpoints: Starlette routes on uvicorn, in a thread of
the engine process. Bodies are bounded, every error has OpenAI's shape, and with an API key
every request must carry it."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from engine.api.generation import HttpServerState
from engine.errors import PromptbankError
from engine.server.openai_http.protocol import (
    MAX_BODY,
    ApiError,
    CompletionRequest,
    chunk,
    model_list,
    new_id,
    parse_chat,
    parse_completion,
    response,
)
from engine.server.openai_http.serving import Bridge, Pending

if TYPE_CHECKING:
    from engine.server.context import Context

log = logging.getLogger("promptbank.http")


async def _body(request: Request) -> object:
    """The request's JSON body, read at most ``MAX_BODY`` bytes far."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY:
        raise ApiError(413, f"The body is over {MAX_BODY:,} bytes.", code="body_too_large")
    data = bytearray()
    async for part in request.stream():
        data += part
        if len(data) > MAX_BODY:
            raise ApiError(413, f"The body is over {MAX_BODY:,} bytes.", code="body_too_large")
    try:
        return json.loads(bytes(data))
    except ValueError as exc:
        raise ApiError(400, f"The body is not valid JSON ({exc}).") from exc


def _sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


async def _stream(pending: Pending, rid: str) -> AsyncIterator[str]:
    """Server-sent events: a first chunk, one per piece of text, the end, then [DONE]."""
    request = pending.request
    try:
        yield _sse(chunk(request, rid, first=True))
        while True:
            kind, value = await run_in_threadpool(pending.out.get)
            if kind == "token":
                yield _sse(chunk(request, rid, text=value))
            elif kind == "answer":
                yield _sse(chunk(request, rid, finish_reason=value.finish_reason))
                break
            else:
                yield _sse(value.body())
                break
        yield _sse("[DONE]")
    finally:  # also when the client went away mid-stream: its row need not decode on
        pending.gone = True


def build_app(bridge: Bridge, api_key: str | None = None) -> Starlette:
    """The Starlette application of the endpoints on ``bridge``."""

    async def models(_request: Request) -> Response:
        return JSONResponse(model_list(await run_in_threadpool(bridge.model_ids)))

    async def complete(request: Request,
                       parse: Callable[[object], CompletionRequest]) -> Response:
        wanted = parse(await _body(request))
        pending = await run_in_threadpool(bridge.submit, wanted)
        rid = new_id(wanted.chat)
        if wanted.stream:
            return StreamingResponse(_stream(pending, rid), media_type="text/event-stream")
        answer = await run_in_threadpool(pending.answer)
        return JSONResponse(response(wanted, answer, rid))

    async def chat(request: Request) -> Response:
        return await complete(request, parse_chat)

    async def completions(request: Request) -> Response:
        return await complete(request, parse_completion)

    async def refused(_request: Request, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            return JSONResponse(exc.body(), status_code=exc.status)
        if isinstance(exc, HTTPException):
            kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
            return JSONResponse(ApiError(exc.status_code, str(exc.detail), kind=kind).body(),
                                status_code=exc.status_code)
        if isinstance(exc, PromptbankError):
            return JSONResponse(ApiError(400, str(exc)).body(), status_code=400)
        log.exception("an HTTP request failed")
        return JSONResponse(ApiError(500, f"The server failed: {exc}", kind="server_error")
                            .body(), status_code=500)

    async def authorise(request: Request, call_next) -> Response:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), (api_key or "").encode()):
            return JSONResponse(ApiError(401, "A valid API key is needed: send "
                                         "'Authorization: Bearer KEY'.",
                                         code="invalid_api_key").body(), status_code=401)
        return await call_next(request)

    return Starlette(routes=[Route("/v1/models", models, methods=["GET"]),
                             Route("/v1/chat/completions", chat, methods=["POST"]),
                             Route("/v1/completions", completions, methods=["POST"])],
                     middleware=[Middleware(BaseHTTPMiddleware, dispatch=authorise)]
                     if api_key else [],
                     exception_handlers={Exception: refused, HTTPException: refused,
                                         ApiError: refused})


class HttpServer:
    """uvicorn serving an app from a background thread; ``url`` once it listens."""

    def __init__(self, app: Starlette, host: str = "127.0.0.1", port: int = 8000) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning", lifespan="off",
                                                    loop="asyncio", http="h11",
                                                    timeout_graceful_shutdown=2))
        self.host = host
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)

    def start(self, timeout: float = 20.0) -> HttpServer:
        """Start listening; a port in use or a bad address is a clear error."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise PromptbankError(f"The server could not listen on {self.host}:"
                                      f"{self.server.config.port}.",
                                      hint="Choose another --port (one no program uses) or "
                                      "--host.")
            time.sleep(0.02)
        return self

    @property
    def port(self) -> int:
        """The port it listens on (the one chosen by the system for port 0)."""
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        """The base URL clients use (with /v1)."""
        return f"http://{self.host}:{self.port}/v1"

    def stop(self) -> None:
        """Stop listening and end the thread."""
        self.server.should_exit = True
        self.thread.join(10)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse to listen beyond this computer without an API key."""
    if not _loopback(host) and not api_key:
        raise PromptbankError(f"Listening on {host} would let other computers use the model "
                              "without a key.",
                              hint="Give an API key (--api-key or PROMPTBANK_API_KEY), or keep "
                              "the address 127.0.0.1.")


def start_server(ctx: Context, host: str, port: int, api_key: str | None) -> HttpServerState:
    """Start the server in this engine process (once; a running one is stopped first)."""
    check_exposure(host, api_key)
    stop_server(ctx)
    bridge = Bridge(ctx)
    ctx.http = HttpServer(build_app(bridge, api_key), host, port).start()
    return HttpServerState(True, ctx.http.url, bridge.model_ids(), bool(api_key))


def stop_server(ctx: Context) -> HttpServerState:
    """Stop the server of this engine process, if one runs."""
    if ctx.http is not None:
        ctx.http.stop()
        ctx.http = None
    return HttpServerState(False)
