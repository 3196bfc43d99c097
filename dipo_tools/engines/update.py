"""The local engine's policy update: packing trajectories, token log-probs, and verl's PPO-clip loss.

``pack_trajectories`` right-aligns every response in one left-padded batch; ``token_logprobs`` runs the
training forward over the response window only; ``policy_update`` runs ``actor.ppo_epochs`` passes of verl's
registered policy loss (``get_policy_loss_fn``) with AdamW and gradient clipping.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from verl.trainer.ppo.core_algos import get_policy_loss_fn
from verl.utils.torch_functional import entropy_from_logits_with_chunking
from verl.workers.config import FSDPActorConfig

from dipo_tools.engines.config import LocalConfig


def token_logprobs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, temperature: float,
                   keep: int, with_entropy: bool = False):
    """Log-probs of the last ``keep`` tokens of each (left-padded) row at ``temperature``: ``[N, keep]``.

    Only the response window gets logits (``logits_to_keep``): prompts are long and shared, and the
    vocabulary projection + log-softmax over them would dominate the update's time and memory. The
    ``[N, keep, vocab]`` tensors are what a real model's update is made of (151,936 columns for Qwen), so
    the log-prob is ``logit - logsumexp`` (no log-softmax copy) and the entropy, which is only logged, is
    computed without a graph a few rows at a time.
    """
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   use_cache=False, logits_to_keep=keep + 1).logits[:, :-1]
    logits = logits.float() / temperature
    picked = logits.gather(-1, input_ids[:, -keep:].unsqueeze(-1)).squeeze(-1)
    lp = picked - torch.logsumexp(logits, dim=-1)
    if not with_entropy:
        return lp, None
    with torch.no_grad():
        flat = logits.detach().reshape(-1, logits.shape[-1])
        return lp, entropy_from_logits_with_chunking(flat, chunk_size=64).view(logits.shape[:-1])


@dataclass
class PackedBatch:
    """Left-padded sequences whose last ``K`` columns hold every response (responses are right-aligned)."""

    input_ids: torch.Tensor  # [N, L]
    attention_mask: torch.Tensor  # [N, L]
    loss_mask: torch.Tensor  # [N, K] 1 on generated response tokens
    old_logprobs: torch.Tensor  # [N, K] sampler log-probs on loss_mask, else 0

    @property
    def keep(self) -> int:
        return self.loss_mask.shape[1]

    def select(self, idx) -> "PackedBatch":
        return PackedBatch(self.input_ids[idx], self.attention_mask[idx], self.loss_mask[idx], self.old_logprobs[idx])


def pack_trajectories(trajs: Sequence[Any], pad_id: int) -> PackedBatch:
    n = len(trajs)
    k = max(max(len(t.response_ids) for t in trajs), 1)
    width = max(len(t.prompt_ids) + len(t.response_ids) for t in trajs)
    width = max(width, k + 1)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    attn = torch.zeros((n, width), dtype=torch.long)
    lmask = torch.zeros((n, k), dtype=torch.float32)
    old = torch.zeros((n, k), dtype=torch.float32)
    for i, t in enumerate(trajs):
        seq = list(t.prompt_ids) + list(t.response_ids)
        r = len(t.response_ids)
        ids[i, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
        attn[i, width - len(seq):] = 1
        if r:
            lmask[i, k - r:] = torch.tensor(t.response_mask, dtype=torch.float32)
            old[i, k - r:] = torch.tensor(t.response_logprobs, dtype=torch.float32)
    return PackedBatch(ids, attn, lmask, old * lmask)


def policy_update(model, optimizer, batch: PackedBatch, advantages: torch.Tensor, cfg: LocalConfig,
                  generator: torch.Generator | None = None) -> dict[str, float]:
    """PPO-clip epochs with verl's registered policy loss + ``agg_loss``; returns averaged metrics."""
    a = cfg.actor
    temp = cfg.rollout.temperature
    loss_fn = get_policy_loss_fn(a.policy_loss)
    verl_cfg = FSDPActorConfig(strategy="fsdp", clip_ratio=a.clip_ratio_low, clip_ratio_low=a.clip_ratio_low,
                               clip_ratio_high=a.clip_ratio_high, clip_ratio_c=a.clip_ratio_c,
                               loss_agg_mode=a.loss_agg_mode, ppo_mini_batch_size=1,
                               ppo_micro_batch_size_per_gpu=1, rollout_n=1)
    device = next(model.parameters()).device
    n = batch.input_ids.shape[0]
    ids, attn = batch.input_ids.to(device), batch.attention_mask.to(device)
    lmask = batch.loss_mask.to(device)
    adv_tok = advantages.to(device=device, dtype=torch.float32)[:, None].expand_as(lmask) * lmask
    old = batch.old_logprobs.to(device)
    if a.recompute_old_logprobs:
        with torch.no_grad():
            was = model.training
            model.eval()
            old, _ = token_logprobs(model, ids, attn, temp, batch.keep)
            model.train(was)
            old = old.detach() * lmask
    mb = a.mini_batch_size or n
    micro = a.micro_batch_size or mb
    sums: dict[str, float] = {}
    count = 0
    model.train()
    for _ in range(a.ppo_epochs):
        order = torch.randperm(n, generator=generator) if a.ppo_epochs > 1 or mb < n else torch.arange(n)
        for s in range(0, n, mb):
            idx = order[s: s + mb]
            tokens_in_mb = lmask[idx].sum().clamp(min=1)
            optimizer.zero_grad(set_to_none=True)
            stats: dict[str, float] = {}
            for m in range(0, len(idx), micro):
                j = idx[m: m + micro]
                lp, ent = token_logprobs(model, ids[j], attn[j], temp, batch.keep, with_entropy=True)
                pg_loss, pg_metrics = loss_fn(old_log_prob=old[j], log_prob=lp, advantages=adv_tok[j],
                                              response_mask=lmask[j], loss_agg_mode=a.loss_agg_mode,
                                              config=verl_cfg)
                # scale the micro-batch token-mean to the mini-batch token-mean
                weight = lmask[j].sum() / tokens_in_mb if a.loss_agg_mode == "token-mean" else len(j) / len(idx)
                (pg_loss * weight).backward()
                stats["actor/pg_loss"] = stats.get("actor/pg_loss", 0.0) + float(pg_loss.detach()) * float(weight)
                ent_mean = float((ent.detach() * lmask[j]).sum() / lmask[j].sum().clamp(min=1))
                stats["actor/entropy"] = stats.get("actor/entropy", 0.0) + ent_mean * float(weight)
                for k, v in pg_metrics.items():
                    stats[k] = stats.get(k, 0.0) + float(v) * float(weight)
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
            if torch.isfinite(grad_norm):
                optimizer.step()
            else:  # a non-finite gradient must not poison the weights; skip this mini-batch
                stats["actor/skipped_nonfinite"] = 1.0
            stats["actor/grad_norm"] = float(grad_norm)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
    optimizer.zero_grad(set_to_none=True)
    return {k: v / max(count, 1) for k, v in sums.items()}

