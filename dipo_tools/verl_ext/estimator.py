"""DiPO as a verl advantage estimator, registered under the name ``"dipo"``.

verl's generic call site passes custom estimators only ``token_level_rewards``, ``response_mask``,
``index`` and ``config`` (``verl.trainer.ppo.ray_trainer.compute_advantage``); DiPO also needs the old-policy log-probs, the binary
verdict and the persistent PPL queue. Our trainer subclass (``dipo_tools.verl_ext.trainer``) passes them;
called without them, this estimator stops with an error that says how to launch instead.

Options come from ``algorithm.dipo.*`` (see :class:`dipo_tools.dipo.DiPOConfig`), except the std
normalisation: verl's own ``algorithm.norm_adv_by_std_in_grpo`` is its one source of truth (it applies to
both DiPO terms, as in GRPO); an ``algorithm.dipo.norm_by_std`` that disagrees with it is refused.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from dipo_tools.dipo import DiPOConfig, DiPOState, compute_dipo_advantages, response_log_ppl

ESTIMATOR_NAME = "dipo"
logger = logging.getLogger(__name__)


def dipo_config_from_algorithm(config: Any) -> DiPOConfig:
    """Read ``algorithm.dipo`` (a dict, DictConfig or verl AlgoConfig); the std switch is verl's own.

    Raises ValueError when ``algorithm.dipo.norm_by_std`` contradicts ``algorithm.norm_adv_by_std_in_grpo``:
    silently preferring one would train a different objective than the config says.
    """
    if config is None:
        return DiPOConfig()
    dipo_node = config.get("dipo", None) if hasattr(config, "get") else None
    values = dict(DiPOConfig.from_mapping(dipo_node).__dict__)
    norm = config.get("norm_adv_by_std_in_grpo", None) if hasattr(config, "get") else None
    if norm is not None:
        own = dipo_node.get("norm_by_std", None) if dipo_node is not None and hasattr(dipo_node, "get") else None
        if own is not None and bool(own) != bool(norm):
            raise ValueError(
                f"algorithm.dipo.norm_by_std={own} contradicts algorithm.norm_adv_by_std_in_grpo={norm}; verl's key "
                "decides for both advantage terms: remove algorithm.dipo.norm_by_std and set "
                "algorithm.norm_adv_by_std_in_grpo"
            )
        values["norm_by_std"] = bool(norm)
    return DiPOConfig(**values)


@register_adv_est(ESTIMATOR_NAME)
def compute_dipo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: np.ndarray,
    old_log_probs: Optional[torch.Tensor] = None,
    acc: Optional[Any] = None,
    state: Optional[DiPOState] = None,
    config: Optional[Any] = None,
    stats_out: Optional[dict] = None,
    **unused: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DiPO outcome advantage, broadcast over the response mask like verl's GRPO.

    Args:
        token_level_rewards: ``[B, T]``; the score of a response is its sum (verl's convention).
        response_mask: ``[B, T]``; 0 on tool/user/padding tokens.
        index: ``[B]`` uids grouping the rollouts of one prompt.
        old_log_probs: ``[B, T]`` old-policy log-probs (required).
        acc: ``[B]`` binary verdict per response, e.g. ``reward_extra_info["acc"]`` (required).
        state: the persistent :class:`DiPOState`; a fresh one (a queue of this batch only) when ``None``.
        config: ``config.algorithm``.
        stats_out: if given, filled with DiPO's statistics (for verl's metrics).
    Returns:
        ``(advantages, returns)``, both ``[B, T]`` and equal, as every outcome estimator in verl.
    """
    if old_log_probs is None or acc is None:
        missing = [n for n, v in (("old_log_probs", old_log_probs), ("acc", acc)) if v is None]
        raise ValueError(
            f"adv_estimator=dipo needs {missing}, which verl's generic compute_advantage does not pass to custom "
            "estimators. Launch with our entry point (`dipo train --engine verl ...` or "
            "`python -m dipo_tools.verl_ext.main ...`), whose trainer supplies them."
        )
    if state is None:
        logger.warning("compute_dipo_outcome_advantage got no DiPOState: the PPL queue holds only this batch")
        state = DiPOState()
    dipo_config = dipo_config_from_algorithm(config)
    scores = token_level_rewards.sum(dim=-1)
    log_ppl = response_log_ppl(old_log_probs, response_mask)
    success = torch.as_tensor(np.asarray(acc, dtype=np.float64)).reshape(-1) > 0.5
    advantages, stats = compute_dipo_advantages(scores, success, log_ppl, index, state, dipo_config)
    if stats_out is not None:
        stats_out.update(stats)
    advantages = advantages.to(token_level_rewards.dtype).unsqueeze(-1) * response_mask
    return advantages, advantages
