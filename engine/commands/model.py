"""``promptbank model info`` and ``promptbank generate``: the base model on its own."""

from __future__ import annotations

import argparse

from engine.commands._common import emit, load_host


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="the loaded base model")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = msub.add_parser("info", help="name, source, fingerprint, size, device, load time")
    info.set_defaults(func=cmd_info)

    gen = sub.add_parser("generate", help="answer TEXT with the base model (no soft prompt)")
    gen.add_argument("text")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.set_defaults(func=cmd_generate)


def cmd_info(args: argparse.Namespace) -> int:
    emit(args, load_host(args).info().to_dict())
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.runtime import GenRow, Runtime

    runtime = Runtime(load_host(args))
    answer = runtime.generate([GenRow(args.text, max_new_tokens=args.max_new_tokens)])[0].text
    emit(args, {"text": answer}, answer)
    return 0
