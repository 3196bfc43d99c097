"""Scoring a rollout for the local engine: one adapter over the three rewards, and the rollout metrics.

``make_scorer(cfg)`` returns ``scorer(trajectory, task, step) -> Scored`` for ``reward.name``;
``score_all`` applies it so that a reward bug on one sample scores that sample as failed instead of
stopping training; ``rollout_metrics`` averages what a batch of scored trajectories logs.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reward import multi_turn, toolrl
from reward.math import math_reward

from dipo_tools.engines.config import LocalConfig


@dataclass
class Scored:
    score: float
    success: bool
    components: dict[str, float]


def _numeric_fields(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    items = dataclasses.asdict(obj).items() if dataclasses.is_dataclass(obj) else (obj or {}).items()
    for k, v in items:
        if isinstance(v, bool) or (isinstance(v, (int, float)) and math.isfinite(float(v))):
            out[prefix + k] = float(v)
    return out


def toolrl_ground_truth(task) -> str:
    """The ToolRL ground-truth string for a single-turn task (metadata wins, else built from the calls)."""
    gt = (task.metadata or {}).get("toolrl_ground_truth")
    if gt:
        return gt
    calls = (task.gt_calls or [[]])[0]
    body = "\n".join(json.dumps({"name": c.name, "parameters": dict(c.arguments)}) for c in calls)
    return f"<tool_call>\n{body}\n</tool_call>" if calls else ""


def make_scorer(cfg: LocalConfig) -> Callable[[Any, Any, int], Scored]:
    """``scorer(trajectory, task, step) -> Scored`` for the configured reward."""
    name, rconf = cfg.reward.name, cfg.reward.kwargs  # the reward's own config class (engines.config)
    if name == "multi_turn":
        def score_mt(traj, task, step):
            r = multi_turn.score_episode(traj, task, config=rconf)
            comps = {k: v for k, v in _numeric_fields(r).items() if k not in ("score", "success")}
            comps.update({f"c_{k}": float(v) for k, v in (getattr(r, "components", None) or {}).items()})
            return Scored(float(r.score), bool(r.success), comps)

        return score_mt

    if name == "math":
        def score_math(traj, task, step):
            steps = [s for turn in traj.turns for s in turn]
            answer = (task.metadata or {}).get("answer")
            r = math_reward(steps[-1].text if steps else "", answer, rconf, sample_id=getattr(task, "id", None))
            return Scored(float(r.score), bool(r.success), {"has_answer": float(r.pred is not None),
                                                              "tool_calls": float(traj.num_tool_calls)})

        return score_math

    def score_toolrl(traj, task, step):
        steps = [s for turn in traj.turns for s in turn]
        text = steps[0].text if steps else ""
        r = toolrl.toolrl_reward(text, toolrl_ground_truth(task), step=step, config=rconf)
        return Scored(float(r.score), bool(r.success), {"format": float(r.format), "correctness": float(r.correctness)})

    return score_toolrl


def score_all(scorer: Callable[[Any, Any, int], Scored], trajs: Sequence[Any], tasks: Sequence[Any],
              step: int) -> list[Scored]:
    """Score every trajectory against its task; a reward exception scores that one sample as failed."""
    out = []
    for tr, task in zip(trajs, tasks):
        try:
            out.append(scorer(tr, task, step))
        except Exception as e:  # a reward bug on one sample must not kill training: score it as failed
            out.append(Scored(0.0, False, {"reward_error": 1.0}))
            print(f"[dipo] reward failed on task {getattr(task, 'id', '?')}: {type(e).__name__}: {e}")
    return out


def rollout_metrics(trajs: Sequence[Any], scored: Sequence[Scored], prefix: str) -> dict[str, float]:
    """Means over a batch, as ``<prefix>/<name>``: reward, success, lengths, calls, parse errors, components."""
    m: dict[str, float] = {
        f"{prefix}/reward": float(np.mean([s.score for s in scored])),
        f"{prefix}/success": float(np.mean([s.success for s in scored])),
        f"{prefix}/response_tokens": float(np.mean([sum(t.response_mask) for t in trajs])),
        f"{prefix}/tool_calls": float(np.mean([t.num_tool_calls for t in trajs])),
        f"{prefix}/assistant_turns": float(np.mean([t.num_assistant_turns for t in trajs])),
    }
    steps = [s for t in trajs for turn in t.turns for s in turn]
    if steps:
        m[f"{prefix}/parse_error_rate"] = float(np.mean([s.parse_error is not None for s in steps]))
    comp_keys = sorted({k for s in scored for k in s.components})
    for k in comp_keys:
        vals = [s.components[k] for s in scored if k in s.components]
        m[f"{prefix}/reward_{k}"] = float(np.mean(vals))
    return m
