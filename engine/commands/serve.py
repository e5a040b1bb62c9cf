"""``promptbank serve``: every task of the library behind an OpenAI-compatible endpoint on
localhost, on the engine's one model (mixed-task batches; training may share the process)."""

from __future__ import annotations

import argparse
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


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.server.openai_http.app import check_exposure, start_server, stop_server
    from engine.server.openai_http.serving import BASE_MODEL
    from engine.server.worker import Worker

    check_exposure(args.host, args.api_key)
    with open(os.devnull, "w", encoding="utf-8") as nowhere:
        worker = Worker(args, out=nowhere)
        worker.ctx.ensure_model()
        state = start_server(worker.ctx, args.host, args.port, args.api_key)
        emit(args, state.to_data(),
             f"Serving {len(state.models) - 1} task(s) and '{BASE_MODEL}' at {state.url} "
             f"(OpenAI-compatible). Ctrl+C stops.\n  curl {state.url}/models")
        sys.stdout.flush()
        try:
            worker.scheduler.run()
        except KeyboardInterrupt:
            pass
        finally:
            stop_server(worker.ctx)
    return 0
