"""``promptbank serve``: every task of the library behind an OpenAI-compatible endpoint on
localhost, on the engine's one model (mixed-task batches; training may share the process)."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

from engine.commands._common import emit

API_KEY_ENV = "PROMPTBANK_API_KEY"


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="an OpenAI-compatible server for every task "
                           "(GET /v1/models, POST /v1/chat/completions, /v1/completions)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: this computer only)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: any)")
    serve.add_argument("--api-key", default=os.environ.get(API_KEY_ENV),
                       help=f"require 'Authorization: Bearer KEY' (or {API_KEY_ENV})")
    serve.set_defaults(func=cmd_serve)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.errors import PromptbankError
    from engine.server.openai_http.app import HttpServer, build_app
    from engine.server.openai_http.serving import BASE_MODEL, Bridge
    from engine.server.worker import Worker

    if not _loopback(args.host) and not args.api_key:
        raise PromptbankError(f"Listening on {args.host} would let other computers use the "
                              "model without a key.",
                              hint=f"Give --api-key (or {API_KEY_ENV}), or keep the default "
                              "--host 127.0.0.1.")
    with open(os.devnull, "w", encoding="utf-8") as nowhere:
        worker = Worker(args, out=nowhere)
        worker.ctx.ensure_model()
        bridge = Bridge(worker)
        server = HttpServer(build_app(bridge, args.api_key), args.host, args.port).start()
        models = bridge.model_ids()
        emit(args, {"url": server.url, "models": models},
             f"Serving {len(models) - 1} task(s) and '{BASE_MODEL}' at {server.url} "
             f"(OpenAI-compatible). Ctrl+C stops.\n"
             f"  curl {server.url}/models")
        sys.stdout.flush()
        try:
            worker.scheduler.run()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
    return 0
