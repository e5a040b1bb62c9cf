"""A task's rows as OpenAI chat fine-tuning JSONL, one conversation per line: system = the
task's instruction (left out when it has none), user = the input, assistant = the output.

Each line is checked against the documented shape before the file is written, and our own
dataset reader reads the file back to the same rows (the soft prompt replaces the system
turn, so the reader leaves it out of the input).
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import PromptbankError
from engine.library import Library
from engine.library.readers import Example
from engine.support.fileio import atomic_write_bytes

ROLES = ("system", "user", "assistant")
SPLITS = ("train", "eval")


def chat_record(instruction: str, example: Example) -> dict:
    """One fine-tuning example: the conversation that teaches ``example``."""
    turns = [("system", instruction)] if instruction.strip() else []
    turns += [("user", example.input), ("assistant", example.output)]
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


def check_chat_line(line: str, number: int) -> None:
    """Refuse a line that is not a chat fine-tuning example as OpenAI documents it: an object
    holding only ``messages``, each a role (system, user, assistant) with text content,
    ending with the assistant's turn."""
    where = f"Line {number} of the fine-tuning file"
    record = json.loads(line)
    if not isinstance(record, dict) or set(record) != {"messages"}:
        raise PromptbankError(f"{where} must be an object holding only 'messages'.")
    messages = record["messages"]
    if not isinstance(messages, list) or not messages:
        raise PromptbankError(f"{where} has no messages.")
    for message in messages:
        if not isinstance(message, dict) or set(message) != {"role", "content"} \
                or message["role"] not in ROLES or not isinstance(message["content"], str):
            raise PromptbankError(f"{where} has a message that is not a role with text.")
    roles = [m["role"] for m in messages]
    if roles[-1] != "assistant" or "user" not in roles or "system" in roles[1:]:
        raise PromptbankError(f"{where} must hold a user turn and end with the assistant's "
                              "(a system turn only first).")


def export_openai_jsonl(library: Library, task: str, out: Path, *, split: str = "train") -> Path:
    """Write ``task``'s ``split`` rows as chat fine-tuning JSONL."""
    if split not in SPLITS:
        raise PromptbankError(f"Unknown split '{split}'.", hint="Use train or eval.")
    record = library.get_task(task)
    rows = library.examples(task, split)
    if not rows:
        raise PromptbankError(f"The task '{task}' has no {split} rows to export.",
                              hint="Add a dataset to it first (promptbank data add)."
                              if split == "train" else "Use --split train.")
    instruction = record.instruction or record.description or ""
    lines = [json.dumps(chat_record(instruction, e), ensure_ascii=False) for e in rows]
    for number, line in enumerate(lines, 1):
        check_chat_line(line, number)
    atomic_write_bytes(out, ("\n".join(lines) + "\n").encode("utf-8"))
    return out
