"""HF ``generate`` behind the runner's ``GenerateFn`` interface, with per-token log-probs and batching.

The episode runner awaits ``generate(token_ids, sampling_params)`` once per assistant step. Running G x B
episodes concurrently, :class:`BatchedGenerator` collects every request that is pending at the same moment
of the event loop and serves them with ONE left-padded ``model.generate`` call, so a step's G samples (and
the episodes' later steps) are generated as a batch.

Log-probs are ``log_softmax(raw_logits / T)`` of the sampled tokens: the same quantity the training forward
pass computes, so PPO ratios start at 1 (top-p/top-k truncation is not part of it, as in verl).
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import torch


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


class BatchedGenerator:
    """Async ``GenerateFn``: ``await gen(token_ids, sampling_params) -> (new_ids, logprobs)``.

    ``sampling_params`` keys understood (verl/vLLM names and HF names): ``temperature`` (0 = greedy),
    ``top_p``, ``top_k``, ``max_new_tokens`` / ``max_tokens``, ``stop_token_ids``.
    """

    def __init__(self, model, tokenizer, max_batch: int = 128, default_max_new_tokens: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.default_max_new_tokens = default_max_new_tokens
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self._pending: dict[str, list[_Request]] = {}
        self._flushing: set[str] = set()
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
        self._pending.setdefault(key, []).append(_Request(list(token_ids), max_new, fut))
        if key not in self._flushing:
            self._flushing.add(key)
            asyncio.get_running_loop().create_task(self._flush(key, key_params))
        return await fut

    async def _flush(self, key: str, params: dict) -> None:
        # Let every other ready episode reach its generate() call before we batch.
        n = -1
        while n != len(self._pending.get(key, [])):
            n = len(self._pending.get(key, []))
            for _ in range(3):
                await asyncio.sleep(0)
        reqs = self._pending.pop(key, [])
        self._flushing.discard(key)
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
        model = self.model
        device = next(model.parameters()).device
        limits = max_new_tokens or [self.default_max_new_tokens] * len(prompts)
        budget = max(limits)
        temperature = float(_param(params, "temperature", default=1.0))
        top_p = float(_param(params, "top_p", default=1.0))
        top_k = int(_param(params, "top_k", default=0) or 0)
        eos = {self.tokenizer.eos_token_id}
        eos.update(int(t) for t in (params.get("stop_token_ids") or []))
        eos.discard(None)

        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attn = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, p in enumerate(prompts):  # left padding: every prompt ends where generation starts
            if p:
                input_ids[i, width - len(p):] = torch.tensor(p, dtype=torch.long)
                attn[i, width - len(p):] = 1
        greedy = temperature <= 0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=budget, do_sample=not greedy, pad_token_id=self.pad_id, eos_token_id=sorted(eos),
            return_dict_in_generate=True, output_logits=True, use_cache=True,
        )
        if not greedy:
            gen_kwargs.update(temperature=temperature, top_p=top_p, top_k=top_k)
        was_training = model.training
        model.eval()
        try:
            out = model.generate(input_ids=input_ids.to(device), attention_mask=attn.to(device), **gen_kwargs)
        finally:
            model.train(was_training)
        self.num_calls += 1
        self.num_sequences += len(prompts)
        new = out.sequences[:, width:].cpu()
        if new.shape[1] == 0:
            return [([], []) for _ in prompts]
        logits = torch.stack(out.logits, dim=1).float().cpu()  # [B, S, V] raw logits
        logp = torch.log_softmax(logits / (temperature if not greedy else 1.0), dim=-1)
        tok_logp = logp.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        results = []
        eos_t = torch.tensor(sorted(eos))
        for i in range(len(prompts)):
            row = new[i, :limits[i]]
            hit = torch.isin(row, eos_t).nonzero()
            n = int(hit[0, 0]) + 1 if hit.numel() else row.numel()
            results.append((row[:n].tolist(), tok_logp[i, :n].tolist()))
        return results
