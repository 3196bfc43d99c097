"""DiPO core: pure tensor functions and the two small state/config types (no I/O, no verl import).

Public API::

    log_ppl = response_log_ppl(old_log_probs, response_mask)          # [B]
    adv, stats = compute_dipo_advantages(scores, success, log_ppl, uids, state, DiPOConfig())  # stats: DiPOStats
"""
from .advantages import DiPOStats, compute_dipo_advantages
from .brr import classify_groups, reallocated_rewards
from .config import DiPOConfig
from .groups import Groups, group_codes, grpo_advantages
from .ppl import response_log_ppl
from .psd import ThresholdFit, fit_threshold
from .state import DiPOState

__all__ = [
    "DiPOConfig",
    "DiPOState",
    "DiPOStats",
    "Groups",
    "ThresholdFit",
    "classify_groups",
    "compute_dipo_advantages",
    "fit_threshold",
    "group_codes",
    "grpo_advantages",
    "reallocated_rewards",
    "response_log_ppl",
]
