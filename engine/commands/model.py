"""``promptbank model info`` and ``promptbank generate``: the base model on its own."""

from __future__ import annotations

import argparse

from engine.api.optional_models import OPTIONAL
from engine.commands._common import ProgressLine, emit, load_host


def register(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser("model", help="the loaded base model")
    msub = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    info = msub.add_parser("info", help="name, source, fingerprint, size, device, load time, "
                                        "the forward and conversion checks")
    info.set_defaults(func=cmd_info)
    listing = msub.add_parser("list", help="the embedded model, the optional ones (added or "
                                           "not) and the models the library has seen")
    listing.set_defaults(func=cmd_list)
    add = msub.add_parser("add", help="fetch an optional model once (e.g. gemma3-270m)")
    add.add_argument("name", choices=sorted(OPTIONAL))
    add.set_defaults(func=cmd_add)
    remove = msub.add_parser("remove", help="delete an added optional model's file")
    remove.add_argument("name", choices=sorted(OPTIONAL))
    remove.set_defaults(func=cmd_remove)

    gen = sub.add_parser("generate", help="answer TEXT with the base model (no soft prompt)")
    gen.add_argument("text")
    gen.add_argument("--max-new-tokens", type=int, default=64)
    gen.set_defaults(func=cmd_generate)


def cmd_info(args: argparse.Namespace) -> int:
    emit(args, load_host(args).info().to_data())
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engine.api.optional_models import is_added, model_path
    from engine.commands.library import open_library

    rows = [{"spec": "default", "name": "SmolLM2-135M-Instruct", "state": "embedded",
             "about": "the embedded model (instruction-tuned, Q4_1 GGUF)"}]
    rows += [{"spec": m.name, "name": m.title,
              "state": "added" if is_added(m.name) else "not added",
              "path": str(model_path(m.name)), "about": m.about} for m in OPTIONAL.values()]
    library = open_library(args)
    try:
        seen = library.list_models()
    finally:
        library.close()
    rows += [{"spec": m.get("path", ""), "name": m.get("name", ""), "state": "seen",
              "fingerprint": m.get("fingerprint", ""), "family": m.get("family", "")}
             for m in seen if m.get("source") in ("folder", "gguf", "hub")]
    text = "\n".join(f"{r['spec']:<28} {r['state']:<10} {r['name']}" for r in rows)
    emit(args, {"models": rows}, text)
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    from engine.api.optional_models import add

    path = add(args.name, None if args.json else ProgressLine())
    emit(args, {"name": args.name, "path": str(path)},
         f"Added {OPTIONAL[args.name].title}: use --model {args.name}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from engine.api.optional_models import remove

    removed = remove(args.name)
    emit(args, {"name": args.name, "removed": removed},
         f"Removed {args.name}." if removed else f"{args.name} was not added.")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from engine.serving.runtime import GenRow, Runtime

    runtime = Runtime(load_host(args))
    answer = runtime.generate([GenRow(args.text, max_new_tokens=args.max_new_tokens)])[0].text
    emit(args, {"text": answer}, answer)
    return 0
