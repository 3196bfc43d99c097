"""Token sampling for the transformers rollout server, with verl's sampling parameters.

Pure tensor functions; the server (:mod:`dipo_tools.verl_ext.cpu.rollout`) batches requests and calls
:func:`generate_batch`. Semantics follow verl's vLLM server where it matters for training:

* ``max_tokens`` as ``vLLMHttpServer.generate`` computes it (:func:`max_new_tokens`);
* temperature ``<= 1e-5`` is greedy (vLLM's rule), ``top_k <= 0`` and ``top_p >= 1`` disable those filters;
* the returned log-prob of a token is ``log_softmax(logits / temperature)`` over the **whole** vocabulary,
  before top-k/top-p truncation: the quantity verl's actor computes as ``old_log_probs`` (logits divided
  by the rollout temperature), so the rollout-vs-actor difference measures weight sync, not definitions.
  Greedy rows report ``log_softmax(logits)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from dipo_tools.engines.generation import decode_with_logprobs

GREEDY_TEMPERATURE = 1e-5


@dataclass
class SamplingRequest:
    """One generation request: prompt ids and the already-resolved sampling settings."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    ignore_eos: bool = False
    stop_token_ids: list[int] = field(default_factory=list)


def max_new_tokens(prompt_len: int, params: Mapping[str, Any], *, prompt_length: int, response_length: int,
                   max_model_len: int) -> int:
    """The generation budget of one request, as verl's vLLM server computes it.

    ``max_tokens`` (or SGLang's ``max_new_tokens``) when given, else ``min(response_length,
    prompt_length + response_length - prompt_len)``; then clamped to ``[1, max_model_len - prompt_len]``.
    """
    room = max_model_len - prompt_len
    if room < 1:
        raise ValueError(
            f"prompt of {prompt_len} tokens leaves no room to generate within max_model_len={max_model_len}"
        )
    if params.get("max_tokens") is not None:
        wanted = int(params["max_tokens"])
    elif params.get("max_new_tokens") is not None:
        wanted = int(params["max_new_tokens"])
    else:
        wanted = min(response_length, prompt_length + response_length - prompt_len)
    return max(1, min(wanted, room))


def _apply_repetition_penalty(logits: torch.Tensor, seen: torch.Tensor, penalty: torch.Tensor) -> torch.Tensor:
    """vLLM's rule: a seen token's positive logit is divided by the penalty, a negative one multiplied."""
    if bool((penalty == 1.0).all()):
        return logits
    p = penalty[:, None].expand_as(logits)
    penalised = torch.where(logits > 0, logits / p, logits * p)
    return torch.where(seen, penalised, logits)


def _filter_top_k_top_p(scaled: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Set logits outside each row's top-k / nucleus to -inf (rows with the filter off are unchanged)."""
    if bool((top_k <= 0).all()) and bool((top_p >= 1.0).all()):
        return scaled
    sorted_logits, order = scaled.sort(dim=-1, descending=True)
    vocab = scaled.shape[-1]
    rank = torch.arange(vocab, device=scaled.device)[None, :]
    k = torch.where(top_k > 0, top_k.clamp(max=vocab), torch.full_like(top_k, vocab))
    drop = rank >= k[:, None]
    probs = sorted_logits.softmax(dim=-1)
    # keep the smallest prefix whose mass reaches top_p (the first token always stays)
    before = probs.cumsum(dim=-1) - probs
    drop |= before >= top_p[:, None]
    drop[:, 0] = False
    sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
    return torch.full_like(scaled, float("-inf")).scatter(-1, order, sorted_logits)


def sample_step(logits: torch.Tensor, requests: Sequence[SamplingRequest], seen: torch.Tensor,
                generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row: ``(token_ids [B], log_probs [B])`` (see the module docstring for the log-prob)."""
    logits = logits.float()
    temperature = torch.tensor([r.temperature for r in requests], dtype=torch.float32)
    penalty = torch.tensor([r.repetition_penalty for r in requests], dtype=torch.float32)
    top_k = torch.tensor([r.top_k for r in requests], dtype=torch.long)
    top_p = torch.tensor([r.top_p for r in requests], dtype=torch.float32)
    greedy = temperature <= GREEDY_TEMPERATURE
    logits = _apply_repetition_penalty(logits, seen, penalty)
    scaled = logits / torch.where(greedy, torch.ones_like(temperature), temperature)[:, None]
    log_probs = scaled.log_softmax(dim=-1)
    sampled = torch.multinomial(_filter_top_k_top_p(scaled, top_k, top_p).softmax(dim=-1), 1,
                                generator=generator).squeeze(-1)
    tokens = torch.where(greedy, scaled.argmax(dim=-1), sampled)
    return tokens, log_probs.gather(-1, tokens[:, None]).squeeze(-1)


def generate_batch(model: Any, requests: Sequence[SamplingRequest], *, pad_token_id: int,
                   generator: torch.Generator | None = None) -> list[tuple[list[int], list[float]]]:
    """Generate for every request in one left-padded batch with a KV cache.

    Returns per request ``(token_ids, log_probs)``: the generated ids including the stop token when it
    stopped on one, at most ``max_tokens`` of them. The decoding loop is the project's one
    (``dipo_tools.engines.generation.decode_with_logprobs``); :func:`sample_step` picks each token.
    """
    if not requests:
        return []
    vocab = model.get_output_embeddings().weight.shape[0]
    seen = torch.zeros((len(requests), vocab), dtype=torch.bool)  # repetition penalty: prompt + generated
    if any(r.repetition_penalty != 1.0 for r in requests):
        for row, r in enumerate(requests):
            seen[row, [t for t in r.prompt_ids if t < vocab]] = True
    rows = torch.arange(len(requests))

    def pick(logits: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, log_probs = sample_step(logits, requests, seen, generator)
        seen[rows, tokens.clamp(max=vocab - 1)] = True
        return tokens, log_probs

    return decode_with_logprobs(model, [r.prompt_ids for r in requests], [r.max_tokens for r in requests],
                                stop_ids=[[] if r.ignore_eos else r.stop_token_ids for r in requests],
                                pad_id=pad_token_id, pick=pick)
