"""Every op of the engine, from the group modules: their specs, result payloads and
progress kinds; validating a request and parsing an event. A new op is one ``OpSpec`` in its
group (with its result payload) and one handler in ``engine.server.ops``. Torch-free."""

from __future__ import annotations

from typing import Any

from engine.api import generation, inspection, library, session, training
from engine.api.payload import Payload
from engine.api.spec import OpSpec
from engine.api.wire import Event, ProtocolError

GROUPS = (session, generation, training, library, inspection)
OP_SPECS: dict[str, OpSpec] = {spec.name: spec for group in GROUPS for spec in group.SPECS}
OPS = tuple(OP_SPECS)
RESULTS: dict[str, type[Payload]] = {name: spec.result for name, spec in OP_SPECS.items()
                                     if spec.result is not None}
PROGRESS: dict[str, type[Payload]] = {cls.KIND: cls for group in GROUPS for cls in group.PROGRESS}


def validate_args(op: str, args: dict[str, Any],
                  specs: dict[str, OpSpec] = OP_SPECS) -> dict[str, Any]:
    """The arguments with defaults filled in; ProtocolError names an unknown op or bad arg
    (``specs``: the ops to know, the engine's unless given)."""
    spec = specs.get(op)
    if spec is None:
        raise ProtocolError(f"Unknown op '{op}'; known ops: {', '.join(specs)}.")
    known = {a.name: a for a in spec.args}
    for name in args:
        if name not in known:
            expected = ", ".join(known) or "none"
            raise ProtocolError(f"Unknown argument '{name}' for '{op}' (expected: {expected}).")
    out: dict[str, Any] = {}
    for arg in spec.args:
        if arg.name in args and args[arg.name] is not None:
            out[arg.name] = arg.check(op, args[arg.name])
        elif arg.required:
            raise ProtocolError(f"Missing argument '{arg.name}' for '{op}'.")
        else:
            out[arg.name] = arg.default
    return out


def ops_table_markdown() -> str:
    """The op reference as a Markdown table (for the README)."""
    lines = ["| op | arguments | events | what it does |", "| --- | --- | --- | --- |"]
    for spec in OP_SPECS.values():
        args = ", ".join(a.name if a.required else f"{a.name}?" for a in spec.args) or "—"
        lines.append(f"| `{spec.name}` | {args} | {spec.events} | {spec.doc} |")
    return "\n".join(lines)


def parse_event(op: str, event: Event) -> Payload:
    """The typed payload of an event of an ``op`` request (ProtocolError if unknown)."""
    if event.type == "progress":
        cls = PROGRESS.get(str(event.data.get("kind", "")))
    elif event.type == "token":
        cls = generation.Token
    elif event.type == "row_done":
        cls = generation.RowDone
    elif event.type == "hello":
        cls = session.Hello
    elif event.type == "result":
        cls = RESULTS.get(op)
    else:
        cls = None
    if cls is None:
        raise ProtocolError(f"no payload type for a '{event.type}' event of '{op}' "
                            f"({event.data.get('kind', '')})")
    return cls.from_data(event.data)


OPS_BEGIN = "<!-- ops:begin (written by `make docs` from engine.api; do not edit) -->"
OPS_END = "<!-- ops:end -->"


def write_ops_table(path: str) -> None:
    """Rewrite the op table between the markers of the Markdown file at ``path``."""
    from pathlib import Path

    doc = Path(path)
    head, rest = doc.read_text().split(OPS_BEGIN, 1)
    doc.write_text(f"{head}{OPS_BEGIN}\n{ops_table_markdown()}\n{OPS_END}"
                   f"{rest.split(OPS_END, 1)[1]}")
