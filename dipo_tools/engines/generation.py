"""HF sampling behind the runner's ``GenerateFn`` interface, with per-token log-probs and batching.

The episode runner awaits ``generate(token_ids, sampling_params)`` once per assistant step. Running G x B
episodes concurrently, :class:`BatchedGenerator` collects every request that is pending at the same moment
of the event loop and serves them with ONE left-padded, KV-cached sampling loop (:func:`decode_with_logprobs`,
our own rather than ``model.generate``, which cannot return the training log-prob without keeping every
step's logits), so a step's G samples (and the episodes' later steps) are generated as a batch.

Log-probs are ``log_softmax(raw_logits / T)`` of the sampled tokens: the same quantity the training forward
pass computes, so PPO ratios start at 1 (top-p/top-k truncation is not part of it, as in verl). They are
taken step by step (:func:`sample_with_logprobs`), so generation never holds more than one step's logits.
"""
from __future__ import annotations

import asyncio
import contextvars
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessorList, TopKLogitsWarper, TopPLogitsWarper


def _param(params: dict, *names: str, default: Any = None) -> Any:
    for n in names:
        if params.get(n) is not None:
            return params[n]
    return default


@dataclass
class _Request:
    ids: list[int]
    max_new_tokens: int
    future: asyncio.Future = field(repr=False)
    order: int = 0  # the episode's index in run_episodes: a batch's rows are sorted by it


#: index of the episode (in :meth:`BatchedGenerator.run_episodes`) the current task belongs to
_EPISODE_INDEX: contextvars.ContextVar[int] = contextvars.ContextVar("dipo_episode_index", default=0)


class BatchedGenerator:
    """Async ``GenerateFn``: ``await gen(token_ids, sampling_params) -> (new_ids, logprobs)``.

    ``sampling_params`` keys understood (verl/vLLM names and HF names): ``temperature`` (0 = greedy),
    ``top_p``, ``top_k``, ``max_new_tokens`` / ``max_tokens``, ``min_tokens`` / ``min_new_tokens`` (stop
    tokens are not sampled before that many tokens; fixed-length generation for benchmarks), ``stop_token_ids``.
    """

    def __init__(self, model, tokenizer, max_batch: int = 128, default_max_new_tokens: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.default_max_new_tokens = default_max_new_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pending: dict[str, list[_Request]] = {}
        self._params: dict[str, dict] = {}
        self._flushing: set[str] = set()
        self._round: list[int] | None = None  # [episodes still running] of run_episodes(lockstep=True), else None
        self._releasing = False
        self.num_calls = 0  # generate() calls, for tests and benchmarks
        self.num_sequences = 0
        self.seconds = 0.0  # wall time inside generate_batch (for the step-time split)

    async def __call__(self, token_ids: list[int], sampling_params: dict) -> tuple[list[int], list[float]]:
        params = dict(sampling_params or {})
        max_new = int(_param(params, "max_tokens", "max_new_tokens", default=self.default_max_new_tokens))
        if max_new <= 0:
            return [], []
        key_params = {k: v for k, v in params.items() if k not in ("max_new_tokens", "max_tokens")}
        key = json.dumps(key_params, sort_keys=True, default=str)
        fut = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append(_Request(list(token_ids), max_new, fut, _EPISODE_INDEX.get()))
        self._params[key] = key_params
        if self._round is not None:
            self._release_if_all_wait()
        elif key not in self._flushing:
            self._flushing.add(key)
            asyncio.get_running_loop().create_task(self._flush(key))
        return await fut

    async def run_episodes(self, episodes: Sequence[Awaitable], lockstep: bool = True) -> list:
        """Run episode coroutines concurrently; their results in order.

        ``lockstep=True`` makes sampling reproducible: a batch is generated only once every running episode
        waits for the model, with its rows in episode order, so which episodes share a batch, and which random
        draw each row gets, never depends on how long tool calls took. The price: an episode whose tool call
        returned early waits for the slowest one of the round (bounded by the tool-call timeout).
        ``lockstep=False`` batches whatever is pending when the event loop is idle (the ``__call__`` path).
        """
        if lockstep and self._round is not None:
            raise RuntimeError("run_episodes(lockstep=True) is already running on this generator")
        round_ = [len(episodes)] if lockstep else None
        if round_ is not None:
            self._round = round_

        async def one(index: int, episode: Awaitable):
            _EPISODE_INDEX.set(index)
            try:
                return await episode
            finally:
                if round_ is not None and self._round is round_:  # not after the round ended (an episode failed)
                    round_[0] -= 1
                    self._release_if_all_wait()  # the episodes still running may all be waiting now

        tasks = [asyncio.ensure_future(one(i, e)) for i, e in enumerate(episodes)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:  # one episode failed: stop the others rather than leave them waiting on a batch
                t.cancel()
            raise
        finally:
            if round_ is not None and self._round is round_:
                self._round = None

    def _release_if_all_wait(self) -> None:
        waiting = sum(not r.future.done() for v in self._pending.values() for r in v)  # not a cancelled episode's
        if waiting and waiting >= self._round[0] and not self._releasing:
            self._releasing = True
            asyncio.get_running_loop().call_soon(self._release)

    def _release(self) -> None:
        """Generate every pending request: one batch per sampling-parameter set, rows in episode order."""
        pending, self._pending = self._pending, {}
        self._releasing = False
        for key in sorted(pending):
            self._serve(sorted(pending[key], key=lambda r: r.order), self._params[key])

    async def _flush(self, key: str) -> None:
        # Let every other ready episode reach its generate() call before we batch.
        n = -1
        while n != len(self._pending.get(key, [])):
            n = len(self._pending.get(key, []))
            for _ in range(3):
                await asyncio.sleep(0)
        reqs = self._pending.pop(key, [])
        self._flushing.discard(key)
        self._serve(reqs, self._params[key])

    def _serve(self, reqs: list[_Request], params: dict) -> None:
        for i in range(0, len(reqs), self.max_batch):
            chunk = reqs[i:i + self.max_batch]
            try:
                outs = self.generate_batch([r.ids for r in chunk], params, [r.max_new_tokens for r in chunk])
            except BaseException as e:  # hand the error to every waiting episode
                for r in chunk:
                    if not r.future.done():
                        r.future.set_exception(e)
                continue
            for r, out in zip(chunk, outs):
                if not r.future.done():
                    r.future.set_result(out)

    @torch.no_grad()
    def generate_batch(self, prompts: list[list[int]], params: dict,
                       max_new_tokens: list[int] | None = None) -> list[tuple[list[int], list[float]]]:
        """Synchronous batched sampling; returns ``(new_ids, logprobs)`` per prompt (stops after EOS)."""
        if not prompts:
            return []
        t0 = time.perf_counter()
        try:
            return self._generate_batch(prompts, params, max_new_tokens)
        finally:
            self.seconds += time.perf_counter() - t0

    def _generate_batch(self, prompts, params, max_new_tokens):
        eos = {self.tokenizer.eos_token_id}
        eos.update(int(t) for t in (params.get("stop_token_ids") or []))
        eos.discard(None)
        results = sample_with_logprobs(
            self.model, prompts, max_new_tokens or [self.default_max_new_tokens] * len(prompts),
            temperature=float(_param(params, "temperature", default=1.0)),
            top_p=float(_param(params, "top_p", default=1.0)), top_k=int(_param(params, "top_k", default=0) or 0),
            min_new_tokens=int(_param(params, "min_tokens", "min_new_tokens", default=0)),
            stop_ids=sorted(eos), pad_id=self.pad_id)
        self.num_calls += 1
        self.num_sequences += len(prompts)
        return results


#: ``pick(last_logits [B, vocab], step) -> (token_ids [B], log_probs [B])``: how one decoding step chooses
#: each row's next token and the log-prob recorded for it. The logits are the model's raw last-position ones.
TokenPicker = Callable[[torch.Tensor, int], "tuple[torch.Tensor, torch.Tensor]"]


@torch.no_grad()
def decode_with_logprobs(model, prompts: Sequence[Sequence[int]], max_new_tokens: Sequence[int], *,
                         stop_ids: Sequence[Sequence[int]], pad_id: int,
                         pick: TokenPicker) -> list[tuple[list[int], list[float]]]:
    """The one HF decoding loop with log-probs: left-padded ``prompts``, a KV cache, ``pick`` per step.

    Row ``i`` stops after a token in ``stop_ids[i]`` (kept) or ``max_new_tokens[i]`` tokens; its
    ``(new_ids, logprobs)`` are returned. Each step keeps only that step's ``[B, vocab]`` logits: the chosen
    token's log-prob is taken before the next step, so memory is the KV cache plus one step's logits, never
    ``B x steps x vocab`` (20 GB in fp32 for 64 x 512 tokens of Qwen's 151,936-token vocab). Finished rows
    are fed the pad id; rows never attend to each other, so a row's tokens do not depend on its batch.
    Used by :func:`sample_with_logprobs` (engine, eval) and the verl CPU rollout server's sampler.
    """
    n = len(prompts)
    if n == 0:
        return []
    device = next(model.parameters()).device
    width = max(len(p) for p in prompts)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    for i, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
        if p:
            input_ids[i, width - len(p):] = torch.tensor(list(p), dtype=torch.long)
            attn[i, width - len(p):] = 1
    input_ids, attn = input_ids.to(device), attn.to(device)
    position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
    limits = torch.tensor(list(max_new_tokens), device=device)
    finished = limits <= 0
    stop_mask = None  # [B, vocab]: True where the token ends that row (per row: requests may differ)
    tokens: list[torch.Tensor] = []
    logprobs: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    try:
        # logits of the last position only: the prompt's other logits are never used (and cost vocab x length)
        out = model(input_ids=input_ids, attention_mask=attn, position_ids=position_ids, use_cache=True,
                    logits_to_keep=1)
        next_pos = position_ids[:, -1:] + 1
        for step in range(int(limits.max())):
            if bool(finished.all()):
                break
            logits = out.logits[:, -1]
            cache = out.past_key_values
            del out
            if stop_mask is None:
                stop_mask = torch.zeros((n, logits.shape[-1]), dtype=torch.bool, device=device)
                for i, ids in enumerate(stop_ids):
                    stop_mask[i, [t for t in ids if 0 <= t < logits.shape[-1]]] = True
            nxt, lp = pick(logits, step)
            del logits
            nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
            logprobs.append(lp)
            tokens.append(nxt)
            finished = finished | stop_mask.gather(1, nxt[:, None]).squeeze(1) | (limits <= step + 1)
            if bool(finished.all()):
                break
            attn = torch.cat([attn, attn.new_ones((n, 1))], dim=1)
            out = model(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos,
                        past_key_values=cache, use_cache=True)
            next_pos = next_pos + 1
    finally:
        model.train(was_training)
    if not tokens:
        return [([], []) for _ in prompts]
    new = torch.stack(tokens, dim=1).cpu()
    lps = torch.stack(logprobs, dim=1).cpu()
    ends = stop_mask.cpu()
    results = []
    for i in range(n):
        row = new[i, :max(int(max_new_tokens[i]), 0)]
        hit = ends[i, row].nonzero()
        k = int(hit[0, 0]) + 1 if hit.numel() else row.numel()
        results.append((row[:k].tolist(), lps[i, :k].tolist()))
    return results


def temperature_picker(temperature: float, *, top_p: float = 1.0, top_k: int = 0, min_new_tokens: int = 0,
                       stop_ids: Sequence[int] = ()) -> TokenPicker:
    """The engine's and eval's sampling rule, one setting for the whole batch.

    ``temperature <= 0`` is greedy (log-probs then at temperature 1). The log-prob is
    ``log_softmax(raw_logits / T)``, what the training forward computes; top-k/top-p (transformers' own
    warpers, in ``generate``'s order) and ``min_new_tokens`` (no stop token before that many tokens) only
    choose the token. Sampling draws from torch's global RNG (the engine seeds it and checkpoints it).
    """
    greedy = temperature <= 0
    scale = 1.0 if greedy else float(temperature)
    warpers = LogitsProcessorList()
    if not greedy and top_k > 0:
        warpers.append(TopKLogitsWarper(top_k))
    if not greedy and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    stop = torch.tensor(sorted(stop_ids), dtype=torch.long)

    def pick(raw: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        logits = raw.float() / scale
        scores = logits
        if step < min_new_tokens:
            scores = logits.index_fill(-1, stop.to(logits.device), float("-inf"))
        if greedy:
            nxt = scores.argmax(-1)
        else:
            # the warpers never read input_ids; generate passes the sequence, we pass none
            scores = warpers(None, scores) if warpers else scores
            nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1).squeeze(1)
        return nxt, torch.log_softmax(logits, dim=-1).gather(-1, nxt[:, None]).squeeze(1)

    return pick


def sample_with_logprobs(model, prompts: list[list[int]], max_new_tokens: list[int], *, temperature: float,
                         stop_ids: list[int], pad_id: int, top_p: float = 1.0, top_k: int = 0,
                         min_new_tokens: int = 0) -> list[tuple[list[int], list[float]]]:
    """Sample continuations of ``prompts`` with :func:`temperature_picker`; ``(new_ids, logprobs)`` per prompt.

    Row ``i`` stops after a token in ``stop_ids`` (kept) or ``max_new_tokens[i]`` tokens (see
    :func:`decode_with_logprobs` for the memory bound and :func:`temperature_picker` for the log-prob).
    """
    pick = temperature_picker(temperature, top_p=top_p, top_k=top_k, min_new_tokens=min_new_tokens,
                              stop_ids=stop_ids)
    return decode_with_logprobs(model, prompts, max_new_tokens, stop_ids=[list(stop_ids)] * len(prompts),
                                pad_id=pad_id, pick=pick)
