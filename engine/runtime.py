"""Runtime: mixed-task generation and label scoring on one model, from the prompt bank.

A batch may mix rows of different tasks, versions and none. Each row's prompt keys/values sit
in a shared past of width P (the longest prompt), right-aligned, with the unused slots masked;
the data tokens are right-padded and every row gets its own position ids (prompt length, then
its real tokens). Right padding means no query ever has nothing to attend to (a left pad with
no prompt would, and SDPA then returns NaN that leaks through the cache), so a row computes what
it computes alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from engine.bank import PromptBank, TaskSpec
from engine.batching import end_of_turn, format_input
from engine.errors import PromptbankError
from engine.kv import Past, data_positions, make_cache
from engine.prompts import SoftPrompt

#: Streaming callback: (row index in the request, new text).
OnToken = Callable[[int, str], None]
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


@dataclass
class GenResult:
    """A generated answer; ``finish_reason`` is eos, stop (a stop string) or length."""

    text: str
    tokens: list[int]
    finish_reason: str
    truncated: bool = False
    version: int | None = None


@dataclass
class ScoreResult:
    """The best label and every label's probability (normalised over the labels)."""

    label: str
    probs: dict[str, float]
    truncated: bool = False
    version: int | None = None


@dataclass
class _Prepared:
    """A row ready for the model: its packed prompt keys/values and its context token ids."""

    packed: torch.Tensor | None
    length: int
    ids: list[int]
    truncated: bool
    version: int | None


@dataclass
class _State:
    """The cache, attention mask and next positions of a running batch."""

    cache: object
    mask: torch.Tensor
    next_pos: torch.Tensor

    def select(self, rows: torch.Tensor) -> None:
        """Keep (or repeat) only ``rows`` of the batch."""
        self.cache.batch_select_indices(rows)
        self.mask = self.mask[rows]
        self.next_pos = self.next_pos[rows]


class Runtime:
    """Serves any number of tasks on one loaded model; switching a task is a lookup."""

    def __init__(self, host, library=None, *, max_prompts: int = 256, force: bool = False):
        self.host = host
        self.library = library
        self.bank = PromptBank(host, library, max_prompts=max_prompts, force=force)
        tok = host.tokenizer
        self.end_of_turn = end_of_turn(tok)
        stops = {tok.convert_tokens_to_ids(self.end_of_turn), tok.eos_token_id}
        self.eos_ids = {int(t) for t in stops if isinstance(t, int) and t >= 0}
        self.pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0

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
                 batch_size: int = DEFAULT_BATCH) -> list[GenResult]:
        """Generate for every row (mixed tasks allowed), streaming text through ``on_token``."""
        for i, row in enumerate(rows):
            _check_settings(i, row)
        memo: dict = {}
        prepared = [self._prepare(i, r.text, r.task, r.version, r.system, r.shots,
                                  r.max_new_tokens, use_prompt=r.prompt, memo=memo)
                    for i, r in enumerate(rows)]
        results: list[GenResult] = []
        for start in range(0, len(rows), batch_size):
            stop = min(start + batch_size, len(rows))
            results += self._generate_batch(prepared[start:stop], rows[start:stop], start,
                                            on_token)
        return results

    def _generate_batch(self, prepared: list[_Prepared], rows: Sequence[GenRow], offset: int,
                        on_token: OnToken | None) -> list[GenResult]:
        streams = [_Stream(self.host.tokenizer, row, self.eos_ids, offset + i, on_token)
                   for i, row in enumerate(rows)]
        generators = [_generator(row, self.host.device) for row in rows]
        state, logits = self._prefill(prepared)
        active = list(range(len(rows)))
        while True:
            tokens = _pick(logits, [rows[a] for a in active], [generators[a] for a in active])
            keep = [j for j, a in enumerate(active) if not streams[a].push(int(tokens[j]))]
            if not keep:
                break
            if len(keep) < len(active):
                index = torch.tensor(keep, device=self.host.device)
                state.select(index)
                tokens = tokens[index]
                active = [active[j] for j in keep]
            logits = self._step(state, tokens)
        return [GenResult(s.text, s.ids, s.finish_reason, p.truncated, p.version)
                for s, p in zip(streams, prepared, strict=True)]

    # Scoring --------------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, task: str, texts: Sequence[str], *, version: int | None = None,
              use_prompt: bool = True, system: str | None = None,
              shots: Sequence[tuple[str, str]] = (),
              batch_size: int = DEFAULT_BATCH) -> list[ScoreResult]:
        """Rank classification: each label's log-likelihood (answer and end of turn) after
        the input, normalised over the labels. Labels sharing token prefixes are exact."""
        return self.score_rows([(task, t) for t in texts], versions={task: version},
                               use_prompt=use_prompt, system=system, shots=shots,
                               batch_size=batch_size)

    @torch.no_grad()
    def score_rows(self, rows: Sequence[tuple[str, str]], *,
                   versions: Mapping[str, int | None] | None = None, use_prompt: bool = True,
                   system: str | None = None, shots: Sequence[tuple[str, str]] = (),
                   batch_size: int = DEFAULT_BATCH) -> list[ScoreResult]:
        """``score`` for (task, text) rows of several classify tasks in mixed batches;
        ``versions`` pins a task's version (default: the active one)."""
        versions = versions or {}
        tok = self.host.tokenizer
        labels_of: dict[str, list[str]] = {}
        label_ids: dict[str, list[list[int]]] = {}
        for task, _ in rows:
            if task not in label_ids:
                spec = self.bank.spec(task)
                if spec.kind != "classify" or len(spec.labels) < 2:
                    raise PromptbankError(
                        f"The task '{task}' is not a classify task with labels.",
                        hint="Use `promptbank run` to generate text for it instead.")
                labels_of[task] = spec.labels
                label_ids[task] = [tok(label + self.end_of_turn, add_special_tokens=False)
                                   ["input_ids"] for label in labels_of[task]]
        memo: dict = {}
        prepared = [self._prepare(i, text, task, versions.get(task), system, list(shots),
                                  max(map(len, label_ids[task])), use_prompt=use_prompt,
                                  memo=memo)
                    for i, (task, text) in enumerate(rows)]
        results: list[ScoreResult] = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            scores = self._score_batch(prepared[start:start + batch_size],
                                       [label_ids[task] for task, _ in chunk])
            for (task, _), row_scores, prep in zip(chunk, scores, prepared[start:],
                                                    strict=False):
                labels = labels_of[task]
                probs = torch.softmax(torch.tensor(row_scores, dtype=torch.float64), dim=0)
                best = int(torch.argmax(probs))
                results.append(ScoreResult(labels[best], dict(zip(labels, probs.tolist(),
                                                                  strict=True)),
                                           prep.truncated, prep.version))
        return results

    def _score_batch(self, prepared: list[_Prepared],
                     candidates: list[list[list[int]]]) -> list[list[float]]:
        """Sum of log-probabilities of each row's candidate token sequences."""
        device = self.host.device
        state, last = self._prefill(prepared)
        first = torch.log_softmax(last, dim=-1)
        owner = [i for i, cands in enumerate(candidates) for _ in cands]
        flat = [c for cands in candidates for c in cands]
        totals = torch.tensor([first[i, c[0]].item() for i, c in zip(owner, flat, strict=True)],
                              dtype=torch.float64)
        width = max(len(c) for c in flat) - 1
        if width > 0:
            state.select(torch.tensor(owner, device=device))
            feed = torch.full((len(flat), width), self.pad_id, dtype=torch.long)
            targets = torch.zeros((len(flat), width), dtype=torch.long)
            valid = torch.zeros((len(flat), width), dtype=torch.long)
            for r, c in enumerate(flat):
                feed[r, : len(c) - 1] = torch.tensor(c[:-1])
                targets[r, : len(c) - 1] = torch.tensor(c[1:])
                valid[r, : len(c) - 1] = 1
            feed, targets, valid = feed.to(device), targets.to(device), valid.to(device)
            positions = state.next_pos.unsqueeze(1) + torch.arange(width, device=device)
            hidden = self._forward(feed, torch.cat([state.mask, valid], dim=1), state.cache,
                                   positions)
            logp = torch.log_softmax(self._logits(hidden), dim=-1)
            picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * valid
            totals += picked.sum(dim=1).double().cpu()
        out: list[list[float]] = []
        pos = 0
        for cands in candidates:
            out.append(totals[pos:pos + len(cands)].tolist())
            pos += len(cands)
        return out

    # Shared machinery -----------------------------------------------------------------------

    def _prepare(self, index: int, text: str, task: str | None, version: int | None,
                 system: str | None, shots: list[tuple[str, str]], reserve: int, *,
                 use_prompt: bool, memo: dict) -> _Prepared:
        """Validate a row, resolve its prompt (once per request: ``memo``), and tokenise its
        context to fit the model."""
        if not isinstance(text, str) or not text.strip():
            raise PromptbankError(f"Row {index + 1} has an empty input.",
                                  hint="Give some text to run the task on.")
        key = (task, version, use_prompt)
        if key not in memo:
            memo[key] = self._row_prompt(task, version, use_prompt)
        template, packed, length, number = memo[key]
        ids, truncated = self._fit(text, lambda t: format_input(t, template), system, shots,
                                   self.host.max_positions - length - reserve)
        return _Prepared(packed, length, ids, truncated, number)

    def _row_prompt(self, task: str | None, version: int | None, use_prompt: bool) -> tuple:
        """(input template, packed keys/values, prompt length, version number) of a row."""
        if task is None:
            return None, None, 0, None
        template = self.bank.spec(task).input_template
        if not use_prompt:
            return template, None, 0, None
        resolved = self.bank.resolve(task, version)
        return template, resolved.packed, resolved.length, resolved.number

    def _context_ids(self, user: str, system: str | None,
                     shots: list[tuple[str, str]]) -> list[int]:
        tok = self.host.tokenizer
        if shots and tok.chat_template:
            messages = [{"role": "system", "content": system}] if system else []
            for question, answer in shots:
                messages += [{"role": "user", "content": question},
                             {"role": "assistant", "content": answer}]
            messages.append({"role": "user", "content": user})
            text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            examples = "".join(f"{q}\n{a}\n\n" for q, a in shots)
            text = self.host.chat_text(examples + user, system=system)
        return tok(text, add_special_tokens=False)["input_ids"]

    def _fit(self, text: str, build: Callable[[str], str], system: str | None,
             shots: list[tuple[str, str]], budget: int) -> tuple[list[int], bool]:
        """Context ids within ``budget`` tokens; a long input loses words from its start."""
        ids = self._context_ids(build(text), system, shots)
        if len(ids) <= budget:
            return ids, False
        tok = self.host.tokenizer
        text_ids = tok(text, add_special_tokens=False)["input_ids"]
        keep = len(text_ids) - (len(ids) - budget)
        while keep > 0:
            ids = self._context_ids(build(tok.decode(text_ids[-keep:])), system, shots)
            if len(ids) <= budget:
                return ids, True
            keep -= len(ids) - budget
        raise PromptbankError(
            f"The prompt, the chat template and the answer need more than the model's "
            f"{self.host.max_positions}-token context, leaving no room for the input.",
            hint="Use fewer new tokens, fewer examples, or a shorter prompt.")

    def _prefill(self, prepared: list[_Prepared]) -> tuple[_State, torch.Tensor]:
        """Run every row's context after its prompt; return the state and last-token logits."""
        device = self.host.device
        batch = len(prepared)
        width = max(len(p.ids) for p in prepared)
        past_width = max(p.length for p in prepared)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        data_mask = torch.zeros((batch, width), dtype=torch.long)
        past_mask = torch.zeros((batch, past_width), dtype=torch.long)
        for i, p in enumerate(prepared):
            ids[i, : len(p.ids)] = torch.tensor(p.ids)
            data_mask[i, : len(p.ids)] = 1
            past_mask[i, past_width - p.length:] = 1
        ids, data_mask, past_mask = ids.to(device), data_mask.to(device), past_mask.to(device)
        lengths = torch.tensor([p.length for p in prepared], device=device)
        cache = make_cache(self._shared_past(prepared, past_width), batch) if past_width else None
        mask = torch.cat([past_mask, data_mask], dim=1)
        hidden, cache = self._forward(ids, mask, cache, data_positions(data_mask, lengths),
                                      keep_cache=True)
        last = data_mask.sum(dim=1) - 1
        logits = self._logits(hidden[torch.arange(batch, device=device), last])
        return _State(cache, mask, lengths + last + 1), logits

    def _shared_past(self, prepared: list[_Prepared], width: int) -> Past:
        """Every row's prompt keys/values right-aligned in one past of ``width`` slots."""
        first = prepared[0].packed
        if first is not None and all(p.packed is first for p in prepared):
            return [(k.unsqueeze(0), v.unsqueeze(0)) for k, v in first]  # one task: broadcast
        h = self.host
        shared = torch.zeros((h.num_layers, 2, len(prepared), h.num_kv_heads, width, h.head_dim),
                             device=h.device, dtype=h.dtype)
        for i, p in enumerate(prepared):
            if p.packed is not None:
                shared[:, :, i, :, width - p.length:] = p.packed
        return [(layer[0], layer[1]) for layer in shared]

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, cache, positions: torch.Tensor,
                 *, keep_cache: bool = False):
        out = self.host.model.base_model(input_ids=ids, attention_mask=mask,
                                         past_key_values=cache, position_ids=positions,
                                         use_cache=True)
        if keep_cache:
            return out.last_hidden_state, out.past_key_values
        return out.last_hidden_state

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.host.model.get_output_embeddings()(hidden).float()

    def _step(self, state: _State, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one new token per active row; return the next logits."""
        ones = torch.ones((tokens.shape[0], 1), dtype=state.mask.dtype, device=state.mask.device)
        state.mask = torch.cat([state.mask, ones], dim=1)
        hidden = self._forward(tokens.unsqueeze(1), state.mask, state.cache,
                               state.next_pos.unsqueeze(1))
        state.next_pos = state.next_pos + 1
        return self._logits(hidden[:, -1])


class _Stream:
    """One row's generated tokens and text, its stop rules, and what it has streamed."""

    def __init__(self, tokenizer, row: GenRow, eos_ids: set[int], index: int,
                 on_token: OnToken | None) -> None:
        self.tokenizer, self.row, self.eos_ids = tokenizer, row, eos_ids
        self.index, self.on_token = index, on_token
        self.ids: list[int] = []
        self.text = ""
        self.sent = 0
        self.finish_reason = ""

    def push(self, token: int) -> bool:
        """Take the next token; return True when the row is finished."""
        if token in self.eos_ids:
            return self._finish("eos")
        self.ids.append(token)
        self.text = self.tokenizer.decode(self.ids, skip_special_tokens=True)
        hits = [self.text.find(s) for s in self.row.stop if s and s in self.text]
        if hits:
            self.text = self.text[: min(hits)]
            return self._finish("stop")
        if len(self.ids) >= self.row.max_new_tokens:
            return self._finish("length")
        self._send(self._safe_end())
        return False

    def _safe_end(self) -> int:
        """How much text can be streamed: not a half character, not a possible stop's start."""
        end = len(self.text.rstrip("\ufffd"))
        for stop in self.row.stop:
            for size in range(min(len(stop) - 1, end), 0, -1):
                if self.text[:end].endswith(stop[:size]):
                    end -= size
                    break
        return end

    def _send(self, end: int) -> None:
        if self.on_token is not None and end > self.sent:
            self.on_token(self.index, self.text[self.sent:end])
        self.sent = max(self.sent, end)

    def _finish(self, reason: str) -> bool:
        self.finish_reason = reason
        self._send(len(self.text))
        return True


def _check_settings(index: int, row: GenRow) -> None:
    if row.max_new_tokens < 1:
        raise PromptbankError(f"Row {index + 1} asks for {row.max_new_tokens} new tokens.",
                              hint="Ask for at least one new token.")
    if row.temperature < 0 or not 0 < row.top_p <= 1:
        raise PromptbankError(f"Row {index + 1} has temperature {row.temperature} and top-p "
                              f"{row.top_p}.", hint="Use temperature >= 0 and 0 < top-p <= 1.")


def _generator(row: GenRow, device: torch.device) -> torch.Generator | None:
    if row.temperature <= 0:
        return None
    gen = torch.Generator(device=device)
    if row.seed is None:
        gen.seed()
    else:
        gen.manual_seed(row.seed)
    return gen


def _pick(logits: torch.Tensor, rows: list[GenRow],
          generators: list[torch.Generator | None]) -> torch.Tensor:
    """Greedy for temperature 0, else nucleus sampling, row by row."""
    chosen = logits.argmax(dim=-1)
    for j, (row, gen) in enumerate(zip(rows, generators, strict=True)):
        if gen is None:
            continue
        probs = torch.softmax(logits[j] / row.temperature, dim=-1)
        ordered, order = probs.sort(descending=True)
        drop = ordered.cumsum(0) - ordered >= row.top_p
        ordered[drop] = 0
        pick = torch.multinomial(ordered / ordered.sum(), 1, generator=gen)
        chosen[j] = order[pick[0]]
    return chosen
