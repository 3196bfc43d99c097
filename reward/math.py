"""Math answer reward: a binary verdict from ``math-verify``, scored +1 / -1 as DAPO does.

The answer is taken, in this order, from the last ``Answer: ...`` line (DAPO's prompt asks for it) and
otherwise from the whole reply tail, where ``math-verify`` prefers the last ``\\boxed{...}``. Equivalent
forms (``1/2``, ``0.5``, ``\\frac{1}{2}``, ``\\dfrac12``) are equal; no extractable answer is wrong.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from dipo_tools.config_utils import dataclass_from_mapping

__all__ = ["MathConfig", "MathResult", "math_reward", "extract_answer_line"]

# ``Answer:`` at the start of a line (DAPO: "Answer: $Answer"), case-insensitive; the last one wins.
_ANSWER_LINE = re.compile(r"(?im)^[ \t*]*answer[ \t*]*:[ \t*]*(.+?)[ \t]*$")

# math-verify logs a warning every time timeouts are disabled; that is a deliberate choice here.
logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass
class MathConfig:
    """Configuration of the math reward.

    Parameters:
        correct_score / incorrect_score: the two reward values (DAPO: +1 / -1). ``0`` for a wrong answer
            instead gives a 0/1 reward, which centres differently under GRPO but ranks the same.
        use_answer_line: look for DAPO's ``Answer:`` line first. Turn off for datasets whose prompts
            ask for ``\\boxed{}`` only, where an "Answer:" inside the reasoning could be a draft.
        max_solution_chars: score only the last N characters of the reply (DAPO uses 300; the longest
            MATH-500 answer has 159 characters). Bounds the parse cost of long rambling replies;
            ``0`` = the whole reply.
        timeout_seconds: math-verify's per-comparison time limit. It relies on ``signal.alarm``, which
            works only in the main thread; verl calls reward functions from worker threads, so the limit is
            applied only when running in the main thread (``None`` disables it everywhere).
    """

    correct_score: float = 1.0
    incorrect_score: float = -1.0
    use_answer_line: bool = True
    max_solution_chars: int = 300
    timeout_seconds: int | None = 5

    @classmethod
    def from_mapping(cls, mapping: Any) -> "MathConfig":
        return dataclass_from_mapping(cls, mapping)


@dataclass(frozen=True)
class MathResult:
    score: float
    success: bool
    pred: str | None  # the extracted answer as math-verify read it (None: nothing extractable)
    gold: str | None
    details: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        return {"score": float(self.score), "acc": float(self.success), "has_answer": float(self.pred is not None)}


def extract_answer_line(text: str) -> str | None:
    """The content of the last ``Answer: ...`` line, or None."""
    found = _ANSWER_LINE.findall(text)
    return found[-1] if found else None


def _targets():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig

    return (LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig())


def _parse(text: str, timeout: int | None) -> list:
    from math_verify import parse

    return parse(text, _targets(), parsing_timeout=timeout)


def _as_boxed(answer: str) -> str:
    # A bare answer ("1/2", "\dfrac{1}{2}") is read like a boxed one; math-verify needs delimiters for LaTeX.
    return answer if ("\\boxed" in answer or "$" in answer) else "\\boxed{" + answer + "}"


def math_reward(solution: str, ground_truth: Any, config: MathConfig | None = None, *, sample_id: Any = None) -> MathResult:
    """Verify the reply's final answer against ``ground_truth`` (a string or number). Never raises on the reply."""
    from math_verify import verify

    cfg = MathConfig.from_mapping(config)
    if isinstance(ground_truth, (int, float)) and not isinstance(ground_truth, bool):
        ground_truth = str(ground_truth)
    if not isinstance(ground_truth, str) or not ground_truth.strip():
        raise ValueError(
            f"Math ground truth of sample {sample_id!r} must be a non-empty string, got {ground_truth!r}; "
            "put the final answer (e.g. '\\frac{1}{2}') in reward_model.ground_truth"
        )
    timeout = cfg.timeout_seconds if threading.current_thread() is threading.main_thread() else None
    gold = _parse(_as_boxed(ground_truth.strip()), timeout)
    if not gold:
        raise ValueError(
            f"Math ground truth of sample {sample_id!r} cannot be parsed by math-verify: {ground_truth!r}; "
            "write it as a LaTeX or plain expression"
        )
    text = solution if isinstance(solution, str) else ""
    if cfg.max_solution_chars > 0:
        text = text[-cfg.max_solution_chars:]
    source = "none"
    pred: list = []
    try:
        line = extract_answer_line(text) if cfg.use_answer_line else None
        if line is not None:
            pred, source = _parse(_as_boxed(line.strip().rstrip(".")), timeout), "answer_line"
        if not pred:
            pred, source = _parse(text, timeout), "text"
        ok = bool(pred) and verify(gold, pred, timeout_seconds=timeout)
    except Exception as exc:  # noqa: BLE001 - a pathological reply (timeout, sympy error) is simply wrong
        return MathResult(cfg.incorrect_score, False, None, str(gold[-1]), {"error": f"{type(exc).__name__}: {exc}"[:200]})
    pred_str = str(pred[-1]) if pred else None
    return MathResult(
        cfg.correct_score if ok else cfg.incorrect_score,
        bool(ok),
        pred_str,
        str(gold[-1]),
        {"source": source if pred else "none"},
    )
