"""Runtime: mixed-task generation and label scoring on one model, from the prompt bank.

A batch may mix rows of different tasks, versions and none. Each row starts from its task's
prompt keys/values and the template head after it (both cached in the bank), and runs only its
own tokens; rows are laid out so that each computes what it computes alone
(``engine.forward``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from engine.api.generation import (
    DEFAULT_MAX_INPUT_TOKENS,
    MAX_INPUT_TOKENS_ENV,
    GeneratedText,
    LabelScores,
    RowDone,
)
from engine.errors import PromptbankError
from engine.forward.decode import Decoder, Joining, OnToken, Sampling, Stream
from engine.forward.scoring import label_scores
from engine.forward.start import Start, assign
from engine.forward.state import prefill
from engine.model.chat import CHARS_PER_TOKEN
from engine.prompts.soft_prompt import SoftPrompt
from engine.serving.bank import PromptBank, TaskSpec

if TYPE_CHECKING:
    from engine.library import Library
    from engine.model.host import ModelHost

DEFAULT_BATCH = 16


@dataclass
class GenRow:
    """One generation request; ``task`` None runs the base model, ``prompt`` False runs the
    task's input template without its soft prompt (baselines)."""

    text: str
    task: str | None = None
    version: int | None = None
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    system: str | None = None
    shots: list[tuple[str, str]] = field(default_factory=list)
    prompt: bool = True

    @property
    def sampling(self) -> Sampling:
        return Sampling(self.max_new_tokens, self.temperature, self.top_p, list(self.stop),
                        self.seed)


@dataclass
class _Prepared:
    """A row ready for the model: what it starts from and its context token ids."""

    start: Start
    ids: list[int]
    truncated: bool
    version: int | None


class Runtime:
    """Serves any number of tasks on one loaded model; switching a task is a lookup."""

    def __init__(self, host: ModelHost, library: Library | None = None, *, max_prompts: int = 256,
                 force: bool = False, graphs: bool = True,
                 max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS):
        self.host = host
        self.library = library
        self.max_input_tokens = max_input_tokens
        self.bank = PromptBank(host, library, max_prompts=max_prompts, force=force)
        self.chat = host.chat
        self.decoder = Decoder(host, graphs=graphs)

    # Prompt bank ----------------------------------------------------------------------------

    def register(self, spec: TaskSpec | str, prompt: SoftPrompt, *, version: int = 1) -> None:
        """Serve an in-memory prompt as ``version`` of a task (no library needed)."""
        self.bank.register(spec, prompt, version=version)

    def invalidate(self, task: str | None = None) -> None:
        """Forget cached prompt keys/values of one task (or all), e.g. after a new version."""
        self.bank.invalidate(task)

    # Generation -----------------------------------------------------------------------------

    @torch.no_grad()
    def generate(self, rows: Sequence[GenRow], on_token: OnToken | None = None, *,
                 batch_size: int = DEFAULT_BATCH,
                 should_stop: Callable[[], bool] | None = None,
                 admit: Callable[[int], Sequence[GenRow]] | None = None,
                 on_done: Callable[[RowDone], None] | None = None,
                 row_stop: Callable[[int], bool] | None = None) -> list[GeneratedText]:
        """Generate for every row (mixed tasks allowed), streaming text through ``on_token``
        and each finished row through ``on_done``.

        Once ``should_stop()`` is true (checked before each token) every row ends with
        ``finish_reason`` "cancelled" and the text it had so far. ``admit(free)`` gives rows
        that join the decoding batch between two steps (up to ``batch_size`` at once); they
        are numbered after ``rows``, are answered in the result too, and one that cannot run
        ends "refused" with its reason in ``on_done``. ``row_stop(i)`` true ends row ``i``
        alone as cancelled (its requester went away)."""
        for i, row in enumerate(rows):
            _check_settings(i, row)
        memo: dict = {}
        prepared = [self._prepare(i, r.text, r.task, r.version, r.system, r.shots,
                                  r.max_new_tokens, use_prompt=r.prompt, memo=memo)
                    for i, r in enumerate(rows)]
        results: dict[int, GeneratedText] = {}

        def finished(index: int, done: RowDone) -> None:
            results[index] = done.result or GeneratedText(finish_reason="refused")
            if on_done is not None:
                on_done(done)

        def streams(numbered: Sequence[tuple[int, GenRow, _Prepared]]) -> list[Stream]:
            def end(index: int, p: _Prepared) -> Callable[[Stream], None]:
                return lambda s: finished(index, RowDone(index, GeneratedText(
                    s.text, s.ids, s.finish_reason, p.truncated, p.version, len(p.ids))))

            def stop(index: int) -> Callable[[], bool] | None:
                if row_stop is None:
                    return should_stop
                return lambda: row_stop(index) or (should_stop is not None and should_stop())

            return [Stream(self.host.tokenizer, row.sampling, self.chat.stop_ids, index,
                           on_token, stop(index), end(index, p))
                    for index, row, p in numbered]

        joined = [len(rows)]  # the next row number

        def join(free: int) -> Joining | None:
            # Resolved afresh: a version activated while the batch runs serves newcomers.
            ready, fresh_memo = [], {}
            for row in admit(free):
                index, joined[0] = joined[0], joined[0] + 1
                try:  # each joining row is its requester's first: "Row 1" in messages
                    _check_settings(0, row)
                    ready.append((index, row, self._prepare(
                        0, row.text, row.task, row.version, row.system, row.shots,
                        row.max_new_tokens, use_prompt=row.prompt, memo=fresh_memo)))
                except PromptbankError as exc:
                    finished(index, RowDone(index, error=str(exc)))
            if not ready:
                return None
            state, last = self._prefill([p for _, _, p in ready],
                                        max(row.max_new_tokens for _, row, _ in ready),
                                        apart=True)
            return Joining(state, last, streams(ready))

        for begin in range(0, len(rows), batch_size):
            numbered = [(i, rows[i], prepared[i])
                        for i in range(begin, min(begin + batch_size, len(rows)))]
            if should_stop is not None and should_stop():
                for i, _, p in numbered:
                    finished(i, RowDone(i, GeneratedText("", [], "cancelled", p.truncated,
                                                         p.version, len(p.ids))))
                continue
            state, last = self._prefill([p for _, _, p in numbered],
                                        max(row.max_new_tokens for _, row, _ in numbered))
            self.decoder.run(state, last, streams(numbered),
                             admit=join if admit is not None else None, capacity=batch_size)
        return [results[i] for i in range(joined[0])]

    def _prefill(self, prepared: list[_Prepared], room: int, *, apart: bool = False):
        """Prefill rows into a decoder workspace, or (``apart``) into a new state: rows that
        join a batch must not overwrite the workspace it decodes in."""
        starts = list({id(p.start): p.start for p in prepared}.values())
        index = {id(s): i for i, s in enumerate(starts)}
        packed, row_slot, rest = assign(starts, [index[id(p.start)] for p in prepared],
                                        [p.ids for p in prepared])
        return prefill(self.host, packed, row_slot, rest, room,
                       into=None if apart else self.decoder.workspace)

    # Scoring --------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, task: str, texts: Sequence[str], *, version: int | None = None,
              use_prompt: bool = True, system: str | None = None,
              shots: Sequence[tuple[str, str]] = (),
              batch_size: int = DEFAULT_BATCH) -> list[LabelScores]:
        """Rank classification: each label's log-likelihood (answer and end of turn) after
        the input, normalised over the labels. Labels sharing token prefixes are exact."""
        return self.score_rows([(task, t) for t in texts], versions={task: version},
                               use_prompt=use_prompt, system=system, shots=shots,
                               batch_size=batch_size)

    @torch.no_grad()
    def score_rows(self, rows: Sequence[tuple[str, str]], *,
                   versions: Mapping[str, int | None] | None = None, use_prompt: bool = True,
                   system: str | None = None, shots: Sequence[tuple[str, str]] = (),
                   batch_size: int = DEFAULT_BATCH) -> list[LabelScores]:
        """``score`` for (task, text) rows of several classify tasks in mixed batches;
        ``versions`` pins a task's version (default: the active one)."""
        prepared, scores = self.logliks(rows, versions=versions, use_prompt=use_prompt,
                                        system=system, shots=shots, batch_size=batch_size)
        results: list[LabelScores] = []
        for (task, _), row_scores, prep in zip(rows, scores, prepared, strict=True):
            labels = self.bank.spec(task).labels
            probs = torch.softmax(torch.tensor(row_scores, dtype=torch.float64), dim=0)
            best = int(torch.argmax(probs))
            results.append(LabelScores(labels[best], dict(zip(labels, probs.tolist(),
                                                              strict=True)),
                                       prep.truncated, prep.version))
        return results

    @torch.no_grad()
    def logliks(self, rows: Sequence[tuple[str, str]], *,
                versions: Mapping[str, int | None] | None = None, use_prompt: bool = True,
                system: str | None = None, shots: Sequence[tuple[str, str]] = (),
                batch_size: int = DEFAULT_BATCH) -> tuple[list[_Prepared], list[list[float]]]:
        """Each row's summed log-likelihood of each of its task's labels (and end of turn),
        with the prepared rows (truncation, version)."""
        versions = versions or {}
        label_ids: dict[str, list[list[int]]] = {}
        for task, _ in rows:
            if task not in label_ids:
                spec = self.bank.spec(task)
                if spec.kind != "classify" or len(spec.labels) < 2:
                    raise PromptbankError(
                        f"The task '{task}' is not a classify task with labels.",
                        hint="Use `promptbank run` to generate text for it instead.")
                label_ids[task] = [self.chat.answer_ids(label) for label in spec.labels]
        memo: dict = {}
        prepared = [self._prepare(i, text, task, versions.get(task), system, list(shots),
                                  max(map(len, label_ids[task])), use_prompt=use_prompt,
                                  memo=memo)
                    for i, (task, text) in enumerate(rows)]
        scores: list[list[float]] = []
        for begin in range(0, len(rows), batch_size):
            chunk = prepared[begin:begin + batch_size]
            tasks = [task for task, _ in rows[begin:begin + batch_size]]
            starts = list({id(p.start): p.start for p in chunk}.values())
            index = {id(s): i for i, s in enumerate(starts)}
            scores += label_scores(self.host, starts, [index[id(p.start)] for p in chunk],
                                   [p.ids for p in chunk], [label_ids[t] for t in tasks])
        return prepared, scores

    # Shared machinery -----------------------------------------------------------------------

    def _prepare(self, index: int, text: str, task: str | None, version: int | None,
                 system: str | None, shots: list[tuple[str, str]], reserve: int, *,
                 use_prompt: bool, memo: dict) -> _Prepared:
        """Validate a row, resolve what it starts from (once per request: ``memo``), and
        tokenise its context to fit the model."""
        if not isinstance(text, str) or not text.strip():
            raise PromptbankError(f"Row {index + 1} has an empty input.",
                                  hint="Give some text to run the task on.")
        self._check_input_length(index, text)
        key = (task, version, use_prompt, system, tuple(map(tuple, shots)))
        if key not in memo:
            memo[key] = self._row_start(task, version, use_prompt, system, shots)
        template, start, length, number = memo[key]
        budget = self.host.max_positions - length - reserve
        if budget < 1:
            raise PromptbankError(
                f"The prompt and the answer need more than the model's "
                f"{self.host.max_positions}-token context, leaving no room for the input.",
                hint="Use fewer new tokens or a shorter prompt.")
        ids, truncated = self.chat.context_ids(text, template=template, system=system,
                                               shots=shots, budget=budget)
        return _Prepared(start, ids, truncated, number)

    def _check_input_length(self, index: int, text: str) -> None:
        """Refuse an input over the engine's cap, counting at most the tokens that decide it."""
        cap = self.max_input_tokens
        if len(text) < cap // 4 or len(text.encode("utf-8", "replace")) < cap:
            return  # a tokenizer makes at most one token per byte (and one leading marker)
        head = text[:(cap + 1) * CHARS_PER_TOKEN]
        if len(text) > len(head) or len(self.host.tokenizer(head, add_special_tokens=False)
                                         ["input_ids"]) > cap:
            raise PromptbankError(
                f"Row {index + 1}'s input is longer than the {cap:,} tokens this engine serves "
                f"per input ({len(text):,} characters).",
                hint="Shorten it, or start the engine with a larger --max-input-tokens (or "
                f"{MAX_INPUT_TOKENS_ENV}).")

    def _row_start(self, task: str | None, version: int | None, use_prompt: bool,
                   system: str | None, shots: list[tuple[str, str]]) -> tuple:
        """(input template, start, prompt length, version number) of a request's rows."""
        template = self.bank.spec(task).input_template if task is not None else None
        resolved = (self.bank.resolve(task, version) if task is not None and use_prompt
                    else None)
        head = self.chat.head(template=template, system=system, shots=shots)
        start = self.bank.start(resolved, head)
        if resolved is None:
            return template, start, 0, None
        return template, start, resolved.length, resolved.number


def _check_settings(index: int, row: GenRow) -> None:
    if row.max_new_tokens < 1:
        raise PromptbankError(f"Row {index + 1} asks for {row.max_new_tokens} new tokens.",
                              hint="Ask for at least one new token.")
    if row.temperature < 0 or not 0 < row.top_p <= 1:
        raise PromptbankError(f"Row {index + 1} has temperature {row.temperature} and top-p "
                              f"{row.top_p}.", hint="Use temperature >= 0 and 0 < top-p <= 1.")

