"""Supervised warm-up: oracle episodes recorded by the shared runner, then cross-entropy on their tokens.

``oracle_trajectories`` plays each task through ``tool_envs.runner.run_episode`` with a scripted
``generate`` that writes the ground-truth calls (and the closing reply), so the warm-up sees exactly the
token layout RL will produce; ``sft_warmup`` fits the model to those generated tokens (prompts masked).
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tool_envs.chat import ChatRenderer
from tool_envs.oracle import oracle_generate
from tool_envs.runner import RunnerConfig, run_episode

from dipo_tools.engines.config import SFTConfig
from dipo_tools.engines.metrics import progress_bar
from dipo_tools.engines.update import pack_trajectories, token_logprobs


def oracle_trajectories(tasks: Sequence[Any], *, tokenizer, env_for: Callable[[Any], Any], runner: RunnerConfig,
                        renderer: ChatRenderer, sampling_params: dict, final_text: str) -> list[Any]:
    """Run each task with a scripted ``generate`` that emits the ground-truth calls; drop empty episodes."""
    fmt = runner.tool_format

    async def _all():
        return await asyncio.gather(*[
            run_episode(tokenizer=tokenizer, env=env_for(t), task=t,
                        generate=oracle_generate(tokenizer, t, fmt, final_text),
                        sampling_params=sampling_params, config=runner, renderer=renderer)
            for t in tasks])

    out = list(asyncio.run(_all()))
    return [t for t in out if sum(t.response_mask) > 0]


def sft_warmup(model, trajectories: Sequence[Any], sft: SFTConfig, *, steps: int, pad_id: int,
               device: torch.device, seed: int, progress: bool) -> list[float]:
    """``steps`` AdamW steps of token cross-entropy on random batches of ``trajectories``; the losses."""
    opt = torch.optim.AdamW(model.parameters(), lr=sft.lr)
    rng = random.Random(seed + 101)
    losses = []
    bar = progress_bar(range(steps), "sft warm-up", progress)
    model.train()
    for _ in bar:
        batch = pack_trajectories(rng.sample(trajectories, min(sft.batch_size, len(trajectories))), pad_id)
        ids, attn, lm = batch.input_ids.to(device), batch.attention_mask.to(device), batch.loss_mask.to(device)
        lp, _ = token_logprobs(model, ids, attn, 1.0, batch.keep)
        loss = -(lp * lm).sum() / lm.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
