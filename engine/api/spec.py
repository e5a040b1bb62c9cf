"""How an op is declared: its arguments with their checks, what it answers, its kind.
Torch-free."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.api.wire import ProtocolError

if TYPE_CHECKING:
    from engine.api.payload import Payload

_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
    "str|list": (str, list),
}


@dataclass(frozen=True)
class Arg:
    """One argument of an op: JSON type name, whether required, default, allowed values,
    and whether it names a file on the client's machine (``file``)."""

    name: str
    type: str
    required: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()
    minimum: float | None = None
    doc: str = ""
    #: "in": a file the engine reads; "out": a path the engine writes. A remote engine
    #: (engine.remote) sends the one to the host first and brings the other back after.
    file: str = ""

    def check(self, op: str, value: Any) -> Any:
        """The value if it fits, else a ProtocolError naming the argument."""
        allowed = _TYPES[self.type]
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be a {self.type}, "
                                f"not {type(value).__name__}.")
        if self.choices and value not in self.choices:
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be one of "
                                f"{', '.join(map(str, self.choices))}; got {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must be at least "
                                f"{self.minimum:g}; got {value!r}.")
        if self.type == "str" and self.required and not value.strip():
            raise ProtocolError(f"Argument '{self.name}' of '{op}' must not be empty.")
        return value


@dataclass(frozen=True)
class OpSpec:
    """One op: its arguments, what it answers, one line of documentation."""

    name: str
    doc: str
    args: tuple[Arg, ...] = ()
    events: str = "result"
    # quick: answered at once, also while an eval/apply runs; job: queued training;
    # long: runs inline and waits for a running eval/apply to end.
    kind: str = "quick"
    #: The payload of its ``result`` event.
    result: type[Payload] | None = None


def task_arg(required: bool = True) -> Arg:
    return Arg("task", "str", required=required, doc="task name")


VERSION_ARG = Arg("version", "int", minimum=1, doc="version number (default: the active one)")
LABELS_ARG = Arg("labels", "list", doc="label words (classify; default: the data's outputs)")
DATA_OPTIONS = (
    Arg("eval", "str", doc="a separate evaluation file (default: hold out eval_fraction)",
        file="in"),
    Arg("input_column", "str"), Arg("output_column", "str"),
    Arg("eval_fraction", "float", default=0.1, minimum=0.0),
    Arg("seed", "int", default=0, doc="seed of the train/eval split"),
)
TRAIN_CONFIG_ARG = Arg("config", "dict", default={}, doc="TrainConfig fields (method, length, …)")
