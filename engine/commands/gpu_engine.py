"""``promptbank engine install|status|remove``: the GPU engine installed on demand."""

from __future__ import annotations

import argparse
import sys

from engine.commands._common import emit


def register(sub: argparse._SubParsersAction) -> None:
    engine = sub.add_parser("engine", help="the GPU engine (torch for this machine's GPU)")
    esub = engine.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    status = esub.add_parser("status", help="whether a GPU engine is installed and usable")
    status.set_defaults(func=cmd_status)
    install = esub.add_parser("install", help="download torch for this GPU into an engine "
                              "environment (Ctrl-C cancels; the CPU engine stays)")
    install.add_argument("--torch-backend", default="auto", metavar="NAME",
                         help="auto (fits the driver), cpu, cu126, cu128, rocm6.4, …, or index "
                         "(torch as the configured package index serves it)")
    install.set_defaults(func=cmd_install)
    remove = esub.add_parser("remove", help="delete the GPU engine; the CPU engine is used")
    remove.set_defaults(func=cmd_remove)


def cmd_status(args: argparse.Namespace) -> int:
    from engine.api.gpu_engine import status

    found = status()
    hint = "" if found.ready else " The CPU engine is used; `promptbank engine install` adds one."
    emit(args, found.to_dict(), found.describe() + hint)
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    from engine.api.gpu_engine import install

    def progress(stage: str, fraction: float) -> None:
        print(f"[{100 * fraction:3.0f}%] {stage}", file=sys.stderr, flush=True)

    def log(line: str) -> None:
        print(f"       {line}", file=sys.stderr, flush=True)

    found = install(args.torch_backend, progress=progress, log=log)
    emit(args, found.to_dict(), found.describe())
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from engine.api.gpu_engine import engine_home, remove

    removed = remove()
    text = ("GPU engine removed; the CPU engine is used." if removed
            else f"No GPU engine was installed in {engine_home()}.")
    emit(args, {"removed": removed}, text)
    return 0
