"""Task inputs as token ids: the task's input template, the model's chat template, the answer
with its end-of-turn token, and the one truncation rule.

Training, evaluation, scoring and generation all build their token ids here, so a stored
metric and ``promptbank eval`` see the same tokens. Truncation keeps the chat template and
the task template whole and drops words from the start of the input, because the end of the
input and the assistant header are what the answer follows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.api.train_settings import DEFAULT_MAX_LENGTH
from engine.errors import PromptbankError

#: End-of-turn markers of common chat templates, tried before the tokenizer's eos token.
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>")
#: Rows are tokenised in chunks of this many, with progress after each.
ENCODE_CHUNK = 512
#: A token rarely spans more characters than this; longer inputs are cut before tokenising.
CHARS_PER_TOKEN = 16
_SENTINEL = "\x00PROMPTBANK-INPUT\x00"
#: Progress callback: (rows done, rows in all).
OnRows = Callable[[int, int], None]


def common_prefix(sequences: Sequence[Sequence[int]]) -> list[int]:
    """The longest list of token ids that every sequence starts with."""
    if not sequences:
        return []
    first = sequences[0]
    size = min(len(s) for s in sequences)
    for seq in sequences[1:]:
        i = 0
        while i < size and seq[i] == first[i]:
            i += 1
        size = i
    return list(first[:size])


def format_input(text: str, template: str | None = None) -> str:
    """The user message for an input: the task's template with ``{input}`` filled, or the text."""
    if template and "{input}" in template:
        return template.replace("{input}", text)
    return text


def _added_bos(tokenizer) -> str:
    """The BOS token's text when the tokenizer puts it before every text, else ""."""
    bos = tokenizer.bos_token
    if not bos or tokenizer.bos_token_id is None:
        return ""
    ids = tokenizer("a")["input_ids"]
    return bos if ids and ids[0] == tokenizer.bos_token_id else ""


@dataclass
class Row:
    """One tokenised example: context ids (no loss) then answer ids (loss)."""

    prompt_ids: list[int]
    answer_ids: list[int]
    truncated: bool = False

    @property
    def ids(self) -> list[int]:
        return self.prompt_ids + self.answer_ids

    def __len__(self) -> int:
        return len(self.prompt_ids) + len(self.answer_ids)


class Chat:
    """One model's chat format, with what is costly to derive computed once."""

    def __init__(self, tokenizer, max_positions: int) -> None:
        self.tokenizer = tokenizer
        self.max_positions = max_positions
        vocab = tokenizer.get_vocab()
        self.end_of_turn = next((t for t in END_OF_TURN_TOKENS if t in vocab),
                                tokenizer.eos_token or "")
        stops = {vocab.get(self.end_of_turn), tokenizer.eos_token_id}
        self.stop_ids = {int(t) for t in stops if isinstance(t, int) and t >= 0}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # A chat template writes its own BOS; without one (a base model) the text is framed
        # plainly, and the BOS the tokenizer would add must be kept: Gemma 3 270M scores an
        # English sentence at perplexity 13 with it and 423 without.
        self.bos_text = "" if tokenizer.chat_template else _added_bos(tokenizer)
        self._frames: dict[str | None, tuple[str, str] | None] = {}

    # ---- text ------------------------------------------------------------------------

    def _render(self, messages: list[dict]) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False,
                                                  add_generation_prompt=True)

    def _frame(self, system: str | None) -> tuple[str, str] | None:
        """The text around the user message, when the template inserts it verbatim."""
        if system not in self._frames:
            frame = None
            if self.tokenizer.chat_template:
                text = self._render(self._messages(_SENTINEL, system, ()))
                if text.count(_SENTINEL) == 1:
                    before, after = text.split(_SENTINEL)
                    probe = "  a probe\n "
                    if before + probe + after == self._render(self._messages(probe, system, ())):
                        frame = (before, after)
            self._frames[system] = frame
        return self._frames[system]

    @staticmethod
    def _messages(user: str, system: str | None,
                  shots: Sequence[tuple[str, str]]) -> list[dict]:
        messages = [{"role": "system", "content": system}] if system else []
        for question, answer in shots:
            messages += [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]
        messages.append({"role": "user", "content": user})
        return messages

    def context_text(self, user: str, *, system: str | None = None,
                     shots: Sequence[tuple[str, str]] = ()) -> str:
        """The chat template around one user message (and earlier example turns)."""
        if not self.tokenizer.chat_template:
            examples = "".join(f"{q}\n{a}\n\n" for q, a in shots)
            return self.bos_text + (f"{system}\n\n" if system else "") + examples + user + "\n"
        frame = None if shots else self._frame(system)
        if frame is not None:
            return frame[0] + user + frame[1]
        return self._render(self._messages(user, system, shots))

    def input_frame(self, template: str | None = None) -> tuple[str, str]:
        """The text the engine writes before and after an input (the chat template's and the
        task template's), so another program can build the same context."""
        parts = self.context_text(format_input(_SENTINEL, template)).split(_SENTINEL)
        if len(parts) != 2:
            raise PromptbankError(
                "This model's chat template rewrites the user's message, so the text around "
                "an input cannot be given apart from it.",
                hint="Serve the task with `promptbank serve` instead.")
        return parts[0], parts[1]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    # ---- token ids -------------------------------------------------------------------

    def answer_ids(self, output: str) -> list[int]:
        """The ids of an answer followed by the end-of-turn token."""
        return self._encode([output + self.end_of_turn])[0]

    def context_ids(self, text: str, *, template: str | None = None,
                    system: str | None = None, shots: Sequence[tuple[str, str]] = (),
                    budget: int | None = None) -> tuple[list[int], bool]:
        """The context's ids within ``budget`` tokens (default: the model's context), and
        whether the input lost words from its start to fit."""
        return self._fit([text], template, system, shots,
                         self.max_positions if budget is None else budget)[0]

    def _fit(self, texts: list[str], template: str | None, system: str | None,
             shots: Sequence[tuple[str, str]], budget: int) -> list[tuple[list[int], bool]]:
        def build(text: str) -> str:
            return self.context_text(format_input(text, template), system=system, shots=shots)

        cut = max(budget, 1) * CHARS_PER_TOKEN
        # Very long inputs are cut before tokenising, so one huge row costs no more than a
        # long one; the exact cut below then removes whole tokens.
        short = [t if len(t) <= cut else t[-cut:] for t in texts]
        fitted = [(ids, s is not t) for ids, s, t in zip(self._encode([build(s) for s in short]),
                                                          short, texts, strict=True)]
        for i, (ids, _) in enumerate(fitted):
            if len(ids) > budget:
                fitted[i] = (self._shorten(short[i], build, budget, len(ids)), True)
        return fitted

    def _shorten(self, text: str, build: Callable[[str], str], budget: int,
                 length: int) -> list[int]:
        text_ids = self._encode([text])[0]
        keep = len(text_ids) - (length - budget)
        while keep > 0:
            ids = self._encode([build(self.tokenizer.decode(text_ids[-keep:]))])[0]
            if len(ids) <= budget:
                return ids
            keep -= len(ids) - budget
        raise PromptbankError(
            f"The prompt, the chat template and the answer need more than the "
            f"{budget}-token budget, leaving no room for the input.",
            hint="Use fewer new tokens, fewer examples, a shorter template or a shorter prompt.")

    def rows(self, pairs: Sequence[tuple[str, str]], *, template: str | None = None,
             max_length: int = DEFAULT_MAX_LENGTH, on_rows: OnRows | None = None) -> list[Row]:
        """Training rows of (input, output) pairs, tokenised in chunks with progress.

        An answer keeps at most half of ``max_length``; the context gets the rest.
        """
        out: list[Row] = []
        for start in range(0, len(pairs), ENCODE_CHUNK):
            chunk = pairs[start:start + ENCODE_CHUNK]
            answers = [ids[: max(1, max_length // 2)]
                       for ids in self._encode([o + self.end_of_turn for _, o in chunk])]
            budgets = {max(1, max_length - len(a)) for a in answers}
            contexts: dict[int, tuple[list[int], bool]] = {}
            for budget in budgets:
                idx = [j for j, a in enumerate(answers) if max(1, max_length - len(a)) == budget]
                fitted = self._fit([chunk[j][0] for j in idx], template, None, (), budget)
                contexts.update(zip(idx, fitted, strict=True))
            out += [Row(contexts[j][0], answers[j], contexts[j][1]) for j in range(len(chunk))]
            if on_rows is not None:
                on_rows(len(out), len(pairs))
        return out

    def head(self, *, template: str | None = None, system: str | None = None,
             shots: Sequence[tuple[str, str]] = ()) -> list[int]:
        """The ids every context of this template starts with, whatever the input (the chat
        template's start and the task template before ``{input}``).

        Found as the common start of two contexts whose inputs differ in their first
        character class, so a token that could merge with the input is left out. A context
        must still be checked to start with it.
        """
        ids = [self._encode([self.context_text(format_input(probe, template), system=system,
                                               shots=shots)])[0]
               for probe in ("a", "1", " ", "\n")]
        return common_prefix(ids)
