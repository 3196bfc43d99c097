"""Rewards: the exact ToolRL reward, the multi-turn episode reward, the math reward, and verl's entry point.

``compute_score`` has verl's custom-reward signature. Point verl at it with::

    reward.custom_reward_function.path=pkg://reward
    reward.custom_reward_function.name=compute_score
    # optional, passed as keyword arguments (verl's reward_kwargs):
    +reward.custom_reward_function.reward_kwargs.toolrl.granularity=coarse

Every call returns a dict of floats: ``score`` (the shaped reward verl trains on), ``acc`` (the binary
verdict; DiPO reads it as ``success``) and the reward's components, which verl logs per step.
"""
from __future__ import annotations

from typing import Any, Mapping

from reward.math import MathConfig, MathResult, math_reward
from reward.toolrl import GroundTruthError, ToolRLConfig, ToolRLResult, toolrl_reward

__all__ = [
    "compute_score",
    "dispatch_kind",
    "toolrl_reward",
    "ToolRLConfig",
    "ToolRLResult",
    "GroundTruthError",
    "math_reward",
    "MathConfig",
    "MathResult",
    "TOOLRL_SOURCES",
    "MATH_SOURCES",
    "EPISODE_SOURCES",
]

# Matched as case-insensitive substrings of ``data_source`` (ToolRL itself routes on "rlla" in the name).
TOOLRL_SOURCES = ("rlla", "toolrl", "toolace", "xlam", "hammer")
MATH_SOURCES = ("math", "dapo", "gsm8k", "aime", "amc", "olympiad", "minerva", "numina", "deepscaler")
EPISODE_SOURCES = ("tool_env", "multi_turn", "multiturn", "bfcl", "episode")


def dispatch_kind(data_source: str) -> str:
    """``"episode"``, ``"toolrl"`` or ``"math"`` for a verl ``data_source``; ValueError if unknown."""
    name = str(data_source).lower()
    for kind, keys in (("episode", EPISODE_SOURCES), ("toolrl", TOOLRL_SOURCES), ("math", MATH_SOURCES)):
        if any(k in name for k in keys):
            return kind
    raise ValueError(
        f"reward.compute_score: unknown data_source {data_source!r}. Known substrings: ToolRL {list(TOOLRL_SOURCES)}, "
        f"math {list(MATH_SOURCES)}, multi-turn episodes {list(EPISODE_SOURCES)}. Rename the data_source column or "
        "pass data_kind='toolrl'|'math'|'episode' in reward_kwargs."
    )


def _step(extra_info: Mapping[str, Any], kw: Mapping[str, Any]) -> int:
    for source in (kw, extra_info):
        for key in ("step", "global_step", "global_steps"):
            value = source.get(key)
            if value is not None:
                return int(value)
    return 0


def _sample_id(extra_info: Mapping[str, Any]) -> Any:
    for key in ("index", "id", "uid", "task_id"):
        if extra_info.get(key) is not None:
            return extra_info[key]
    return None


def _episode_metrics(extra_info: Mapping[str, Any], sample_id: Any) -> dict[str, float]:
    """A multi-turn episode is scored where it ran (the agent loop / engine, with ``reward.multi_turn``).

    The agent loop stores ``MultiTurnResult.metrics()`` in its output's ``extra_fields["episode_reward"]``;
    verl merges those fields into ``extra_info`` before calling us.
    """
    found = extra_info.get("episode_reward")
    if found is None:
        rollout = extra_info.get("rollout_reward_scores") or {}
        found = rollout.get("episode_reward") if isinstance(rollout, Mapping) else None
    if not isinstance(found, Mapping) or "score" not in found:
        raise ValueError(
            f"reward.compute_score: multi-turn sample {sample_id!r} has no precomputed episode reward. The agent loop "
            "must put reward.multi_turn.score_episode(...).metrics() into extra_fields['episode_reward'] "
            f"(got extra_info keys {sorted(extra_info)})."
        )
    out = {k: float(v) for k, v in found.items() if isinstance(v, (int, float, bool))}
    out["acc"] = float(found.get("acc", found.get("success", 0.0)))
    return out


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: Mapping[str, Any] | None = None,
    **kw: Any,
) -> dict[str, float]:
    """verl's custom reward function: dispatch on ``data_source`` and return floats for logging.

    Keyword arguments (from verl's ``reward_kwargs``): ``toolrl`` / ``math`` (config mappings or config
    objects), ``data_kind`` (force ``"toolrl"``/``"math"``/``"episode"``), ``step`` (the training step
    for scheduled ToolRL variants; otherwise ``extra_info["global_step"]`` if the pipeline fills it, else 0).
    Extra keywords verl passes (e.g. ``reward_router_address``) are ignored.
    """
    extra_info = dict(extra_info or {})
    sample_id = _sample_id(extra_info)
    kind = kw.get("data_kind") or dispatch_kind(data_source)
    if kind == "toolrl":
        cfg = ToolRLConfig.from_mapping(kw.get("toolrl") or kw.get("toolrl_config"))
        return toolrl_reward(solution_str, ground_truth, _step(extra_info, kw), cfg, sample_id=sample_id).metrics()
    if kind == "math":
        cfg = MathConfig.from_mapping(kw.get("math") or kw.get("math_config"))
        return math_reward(solution_str, ground_truth, cfg, sample_id=sample_id).metrics()
    if kind == "episode":
        return _episode_metrics(extra_info, sample_id)
    raise ValueError(f"reward.compute_score: data_kind must be 'toolrl', 'math' or 'episode', got {kind!r}")
