"""``promptbank worker`` (the engine process) and ``promptbank gui`` (the desktop app)."""

from __future__ import annotations

import argparse
import os

from engine.api.launch import module_command
from engine.errors import PromptbankError


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run the engine process (JSON lines on stdin/stdout)")
    worker.add_argument("--listen", metavar="SOCKET",
                        help="serve the clients of this Unix socket one at a time instead of "
                             "stdin/stdout; the work goes on between them (a remote engine)")
    worker.add_argument("--idle-exit", type=float, metavar="SECONDS",
                        help="with --listen: shut down after this long with no client and no "
                             "work (default 1800)")
    worker.set_defaults(func=cmd_worker)
    gui = sub.add_parser("gui", help="open the desktop app (the default with no command)")
    gui.add_argument("--examples", action="store_true",
                     help="on first run, fill an empty library with the shipped examples")
    gui.add_argument("--check", action="store_true",
                     help="open the window, wait for the engine's model, print it and quit")
    gui.set_defaults(func=cmd_gui)


def cmd_worker(args: argparse.Namespace) -> int:
    from engine.api.engine_target import EngineTarget

    target = EngineTarget.parse(args.engine_address, args.engine_program)
    if target is not None:
        from engine.remote.relay import run_relay

        return run_relay(target, args)
    from engine.server.worker import run

    return run(args)


def desktop_argv(args: argparse.Namespace) -> list[str]:
    """The command line that starts the desktop app with the same global options."""
    argv = [*module_command("desktop"), "--model", args.model, "--device", args.device]
    if args.library:
        argv += ["--library", args.library]
    if args.engine_program:
        raise PromptbankError("The desktop app takes a remote engine as --engine ADDRESS "
                              "(ssh://…), not --engine-command.")
    if args.engine_address:
        argv += ["--engine", args.engine_address]
    argv += [f"--{flag}" for flag in ("examples", "check") if getattr(args, flag, False)]
    return argv


def cmd_gui(args: argparse.Namespace) -> int:
    # The GUI runs in a fresh process so the engine never imports Qt and the GUI process
    # never holds torch; in the bundle that process is the same program (packaging/entry.py).
    argv = desktop_argv(args)
    os.execv(argv[0], argv)
    return 0
