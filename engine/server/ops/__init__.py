"""The engine process's op handlers, one module per op group (as ``engine.api``): each a
function ``handler(ctx, rid, args)`` that sends its events through ``ctx.send``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.server.ops import generation, inspection, library, session, training

Handler = Callable[[Any, str, dict], None]
HANDLERS: dict[str, Handler] = {**session.HANDLERS, **generation.HANDLERS,
                                **training.HANDLERS, **library.HANDLERS, **inspection.HANDLERS}
