"""Handlers of the ops that look inside prompts: nearest tokens and task similarity."""

from __future__ import annotations

from engine.api.inspection import NearTokens, Similarity
from engine.api.wire import ProtocolError
from engine.errors import PromptbankError
from engine.methods import get_method
from engine.server.context import Context


def nearest_tokens(ctx: Context, rid: str, args: dict) -> None:
    from engine.serving.inspection import nearest_tokens as nearest

    ver, prompt = ctx.soft_prompt(args["task"], args["version"])
    tokens = nearest(ctx.ensure_model(rid), prompt, k=args["k"])
    ctx.send(NearTokens(task=args["task"], version=ver.number, method=prompt.method,
                        k=args["k"], tokens=tokens).event(rid))


def similarity(ctx: Context, rid: str, args: dict) -> None:
    from engine.serving.inspection import similarity as cosine

    method = get_method(args["method"]).name  # an unknown method is named with the known ones
    names = args["tasks"] or [t.name for t in ctx.library.list_tasks()]
    host = ctx.ensure_model(rid)
    prompts, skipped = {}, []
    for name in names:
        if not isinstance(name, str):
            raise ProtocolError("Argument 'tasks' of 'similarity' must list task names.")
        try:
            _, prompt = ctx.soft_prompt(name, None)
        except PromptbankError as exc:
            skipped.append({"task": name, "reason": str(exc)})
            continue
        if prompt.method != method:
            skipped.append({"task": name, "reason": f"its active version is a "
                            f"{prompt.method}, not a {method}"})
        elif prompt.geometry.fingerprint != host.fingerprint:
            skipped.append({"task": name, "reason": "trained on another model"})
        else:
            prompts[name] = prompt
    sim = cosine(prompts, pooling=args["pooling"])
    ctx.send(Similarity(method=method, skipped=skipped, **sim).event(rid))


HANDLERS = {"nearest_tokens": nearest_tokens, "similarity": similarity}
