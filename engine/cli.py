"""The ``promptbank`` command: global options, then one sub-command per feature.

Sub-commands live in ``engine/commands/<feature>.py``, each with ``register(subparsers)``;
they are found automatically (modules starting with ``_`` are helpers), so a feature adds a
file and touches nothing here.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import traceback
from collections.abc import Sequence

from engine import __version__
from engine.api.engine_target import ENGINE_ENV
from engine.api.generation import DEFAULT_MAX_INPUT_TOKENS, MAX_INPUT_TOKENS_ENV
from engine.api.launch import frozen
from engine.api.threads import THREADS_ENV, threads_setting
from engine.errors import PromptbankError
from engine.support.untrusted import terminal_text

# In the installed app every other command runs on the GPU engine once one is installed; these
# run in the app itself (the worker's interpreter was already chosen by whoever started it).
_OWN_COMMANDS = {"gui", "engine", "worker"}
# The commands that can use a remote engine (--engine); every other one computes here.
_REMOTE_COMMANDS = {"gui", "worker", "remote", "remote-host"}


def _add_global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    # Sub-parsers get the same options with SUPPRESS defaults, so `promptbank model info
    # --json` and `promptbank --json model info` mean the same and neither overrides the other.
    def default(value):
        return value if top else argparse.SUPPRESS

    parser.add_argument("--library", metavar="DIR", default=default(None),
                        help="library folder (default: $PROMPTBANK_HOME or the user data folder)")
    parser.add_argument("--model", metavar="SPEC",
                        default=default(os.environ.get("PROMPTBANK_MODEL", "default")),
                        help="default | model folder | file.gguf | cached hub id")
    parser.add_argument("--device", default=default("auto"), help="auto | cpu | cuda[:N] | mps")
    parser.add_argument("--dtype", default=default(os.environ.get("PROMPTBANK_DTYPE", "auto")),
                        choices=["auto", "float32", "bfloat16", "float16"],
                        help="model precision (auto: bfloat16 on a GPU that has it, else "
                             "float32)")
    parser.add_argument("--quantize",
                        default=default(os.environ.get("PROMPTBANK_QUANTIZE") or None),
                        choices=["8bit", "4bit"],
                        help="hold the frozen base in 8 or 4 bits (bitsandbytes; CPU or CUDA)")
    parser.add_argument("--offload", action="store_true", default=default(False),
                        help="let layers that do not fit the device go to the CPU, then disk "
                             "(accelerate; slower)")
    parser.add_argument("--threads", type=threads_setting,
                        default=default(os.environ.get(THREADS_ENV, "auto")),
                        help="CPU threads for the model: auto (every core), shared (one core "
                             "left for another busy program) or a number")
    parser.add_argument("--max-input-tokens", type=input_cap, metavar="N",
                        default=default(os.environ.get(MAX_INPUT_TOKENS_ENV,
                                                       DEFAULT_MAX_INPUT_TOKENS)),
                        help="longest input the engine serves, in tokens; longer ones are "
                             f"refused (default {DEFAULT_MAX_INPUT_TOKENS:,})")
    parser.add_argument("--engine", metavar="ADDRESS", dest="engine_address",
                        default=default(os.environ.get(ENGINE_ENV) or None),
                        help="run the engine on another machine: ssh://[user@]host[:port]"
                             "[/path/to/promptbank] (for `worker`, `gui` and `remote`)")
    parser.add_argument("--engine-command", metavar="CMD", dest="engine_program",
                        default=default(None),
                        help="run the engine through this command, which runs promptbank on "
                             "the host (its arguments are appended); instead of --engine")
    parser.add_argument("--json", action="store_true", default=default(False),
                        help="print machine-readable JSON")
    parser.add_argument("--debug", action="store_true", default=default(False),
                        help="show tracebacks on errors")
    parser.add_argument("--trust-remote-code", action="store_true", default=default(False),
                        help="allow a model folder's own Python code to run (only if trusted)")


def input_cap(value: str | int) -> int:
    """``--max-input-tokens``: a whole number of tokens, at least 16."""
    try:
        cap = int(value)
    except ValueError:
        cap = 0
    if cap < 16:
        raise argparse.ArgumentTypeError(f"'{value}' is not a number of tokens of 16 or more")
    return cap


def _sub_parsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                yield child
                yield from _sub_parsers(child)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every feature's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="promptbank",
        description="A library of trained soft prompts for one local language model. "
        "With no command, opens the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"promptbank {__version__}")
    _add_global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    import engine.commands as commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):  # shared helpers, not commands
            continue
        importlib.import_module(f"engine.commands.{info.name}").register(sub)
    for child in _sub_parsers(parser):
        _add_global_options(child, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptbank`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        # The installed app (a double-click on macOS) fills an empty library with the examples.
        gui = ["gui", "--examples"] if frozen() else ["gui"]
        args = parser.parse_args([*(argv if argv is not None else sys.argv[1:]), *gui])
    try:
        remote = args.engine_address or args.engine_program
        if remote and args.command not in _REMOTE_COMMANDS:
            raise PromptbankError(
                f"`promptbank {args.command}` computes on this machine; a remote engine "
                "(--engine) serves the desktop app (`promptbank --engine ADDRESS`) and "
                "`promptbank --engine ADDRESS worker` for scripts.",
                hint=f"Leave out --engine (and unset {ENGINE_ENV}) to run it here.")
        if frozen() and args.command not in _OWN_COMMANDS:
            from engine.api.gpu_engine import run_cli

            code = run_cli(list(argv if argv is not None else sys.argv[1:]))
            if code is not None:
                return code
        return int(args.func(args) or 0)
    except PromptbankError as exc:
        if args.debug:
            traceback.print_exc()
        if args.json:
            print(json.dumps({"error": str(exc)}))
        print(terminal_text(f"promptbank: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("promptbank: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
