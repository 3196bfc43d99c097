"""DiPO configuration: every switch of the algorithm (docs/algorithm.md, "Decisions and switches"), documented."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping
from dipo_tools.config_utils import dataclass_from_mapping

Gate = Literal["max_sample", "group_mean", "none"]
ExtremeBy = Literal["success", "score"]
Reallocate = Literal["both", "hard", "easy"]

_GATES = ("max_sample", "group_mean", "none")
_EXTREME_BY = ("success", "score")
_REALLOCATE = ("both", "hard", "easy")


@dataclass
class DiPOConfig:
    """Configuration of Disentangled Perplexity Policy Optimization (arXiv 2604.13902).

    Parameters:
        enabled: Add the reallocated-reward term ``alpha * A_GRPO(R_r)``. With ``False`` the advantages are
            exactly verl's GRPO ones (same eps, unbiased std, size-1 groups), while the PSD statistics are still
            computed and logged, so that a GRPO baseline reports the same diagnostics as a DiPO run.
        alpha: Weight of the reallocated-reward objective (paper Eq. 11). 0.1 was best in the paper (Table 3);
            1.0 lets the side signal rival the verifier reward and cost 1.43 AVG points on Qwen3-8B. Larger
            values recover more gradient from extreme groups but bias the objective further from the
            verifier reward.
        queue_batches: How many recent batches the perplexity queue holds (paper: the two most recent). More
            batches give tighter confidence intervals for the threshold but react more slowly to the policy's
            drifting perplexity.
        z: Normal quantile of the Wald intervals used to judge admissibility (1.96 = 95 %, the paper's level).
            Larger ``z`` makes PSD more conservative: fewer steps are "disentangled" and reallocate.
        min_side: Minimum number of queued responses on each side of a candidate threshold. Wald intervals
            are meaningless on tiny counts; raising this trades early-training activity for reliability.
        gate: Which extreme groups are reallocated. ``max_sample`` (default): a hard group qualifies when its
            max-PPL response is below the threshold (the whole group is a confident error), an easy group when
            its max-PPL response is at or above it (a lucky success). ``group_mean``: compare the group's mean
            log-PPL instead (less sensitive to one outlier, acts more rarely). ``none``: every extreme group
            qualifies even when PSD is not disentangled (the "BRR without PSD" ablation).
        extreme_by: What makes a group extreme. ``success`` (default): all binary verdicts equal — with a
            shaped reward an all-wrong group can still have score variance, and this still counts it as hard.
            ``score``: zero variance of the score itself (exact equality); such a group is hard when its
            mean success is below 0.5 and easy otherwise.
        reallocate: Which side of BRR acts. ``both`` (default, the paper's DiPO): reward the max-PPL try of
            qualifying hard groups and penalise the max-PPL success of qualifying easy groups. ``hard``:
            only the exploration half, which the paper's Theorem 1 says raises policy entropy; ``easy``:
            only the exploitation half, which Theorem 2 says lowers it. One side alone recovers less
            gradient and lets entropy drift in one direction; it exists to test those predictions and to
            attribute a gain to one half. The skipped side's groups keep ``R_r = 0``; PSD still runs.
        norm_by_std: Divide by the group std as GRPO does (``True``) or only centre as Dr.GRPO (``False``).
            Applies to both advantage terms.
        eps: Added to the group std before dividing; 1e-6 as verl's GRPO.
    """

    enabled: bool = True
    alpha: float = 0.1
    queue_batches: int = 2
    z: float = 1.96
    min_side: int = 10
    gate: Gate = "max_sample"
    extreme_by: ExtremeBy = "success"
    reallocate: Reallocate = "both"
    norm_by_std: bool = True
    eps: float = 1e-6

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.gate not in _GATES:
            raise ValueError(f"DiPOConfig.gate={self.gate!r} is not allowed; use one of {list(_GATES)}")
        if self.extreme_by not in _EXTREME_BY:
            raise ValueError(
                f"DiPOConfig.extreme_by={self.extreme_by!r} is not allowed; use one of {list(_EXTREME_BY)}"
            )
        if self.reallocate not in _REALLOCATE:
            raise ValueError(
                f"DiPOConfig.reallocate={self.reallocate!r} is not allowed; use one of {list(_REALLOCATE)}"
            )
        if not isinstance(self.queue_batches, int) or self.queue_batches < 1:
            raise ValueError(f"DiPOConfig.queue_batches={self.queue_batches!r} must be an integer >= 1")
        if not isinstance(self.min_side, int) or self.min_side < 1:
            raise ValueError(f"DiPOConfig.min_side={self.min_side!r} must be an integer >= 1")
        if not self.z > 0:
            raise ValueError(f"DiPOConfig.z={self.z!r} must be > 0")
        if not self.alpha >= 0:
            raise ValueError(f"DiPOConfig.alpha={self.alpha!r} must be >= 0")
        if not self.eps > 0:
            raise ValueError(f"DiPOConfig.eps={self.eps!r} must be > 0")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> "DiPOConfig":
        """Build from a dict or OmegaConf node, refusing unknown keys with the list of valid ones."""
        return dataclass_from_mapping(cls, values)
