# Over 400 lines on purpose: this module mirrors one published reward (ToolRL) rule for rule, so it can be read side by side with it.
"""The ToolRL reward (Qian et al., "ToolRL: Reward is All Tool Learning Needs", arXiv 2504.13958).

Rule for rule the published reward (qiancheng0/ToolRL, ``verl/utils/reward_score/rlla.py``), re-written
as pure functions with the environment-variable switches turned into typed ``ToolRLConfig`` fields and
the training step passed explicitly::

    R = R_format + R_correctness (+ R_length)          default range [-3, 4]

* ``R_format`` in {min_f, max_f}: the response must fully match the layout the *ground truth* uses
  (``<think>`` then ``<tool_call>`` and/or ``<response>``, exact newlines, each tag once).
* ``R_correctness`` in [min_c, max_c]: 0 when the ground truth has no ``<tool_call>``; ``max_c`` for an
  exact (order-sensitive) call-list match; ``min_c`` when the calls cannot be parsed; otherwise
  ``(max_c - min_c) * S / S_max + min_c`` with ``S`` = multiset-Jaccard of the call names plus, for each
  ground-truth call greedily matched to an unused same-name prediction, key-Jaccard + #equal values.
* ``R_length`` (off by default): words inside ``<think>`` over a target length, capped at 1.

``success`` (the binary verdict DiPO splits rollouts by) is: format matched and the call list
is an exact match (as a multiset: parallel calls in another order also succeed); for ground truths
without a tool call, the format matched.
"""
from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Literal, Mapping, Sequence
from dipo_tools.config_utils import dataclass_from_mapping

__all__ = [
    "GroundTruthError",
    "ToolRLConfig",
    "ToolRLResult",
    "CallMatch",
    "toolrl_reward",
    "extract_assistant_span",
    "expected_format",
    "format_matches",
    "parse_ground_truth_calls",
    "parse_predicted_calls",
    "match_score",
    "score_call_lists",
    "calls_to_dicts",
    "reward_ranges",
    "think_length_reward",
]

Granularity = Literal["fine", "refined", "intermediate", "coarse"]
ScaleSchedule = Literal["constant", "two_stage", "smooth"]
LengthReward = Literal["off", "fixed", "scheduled"]
AssistantSpan = Literal["qwen", "llama", "none"]

_TOOL_OPEN, _TOOL_CLOSE = "<tool_call>", "</tool_call>"
_RESP_OPEN, _RESP_CLOSE = "<response>", "</response>"

# The four layouts, chosen from the ground truth. ``match`` == the reference's ``search`` here: without
# MULTILINE, ``^`` only matches at position 0.
_LAYOUTS = {
    "response": re.compile(r"^<think>.*?</think>\n<response>.*?</response>$", re.DOTALL),
    "tool_call": re.compile(r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>$", re.DOTALL),
    "both": re.compile(r"^<think>.*?</think>\n<tool_call>\n.*?\n</tool_call>\n<response>.*?</response>$", re.DOTALL),
    "think": re.compile(r"^<think>.*?</think>$", re.DOTALL),
}

_SPAN_MARKERS = {
    "qwen": ("<|im_start|>assistant", "<|im_end|>"),
    "llama": ("<|start_header_id|>assistant<|end_header_id|>", "<|eot_id|>"),
}

# Published constants of the SCHEDULEREWARD variant: both ranges start at [-2, 2] and move linearly
# towards the configured ranges; the format range is clipped at max >= 1, min <= -1, the correctness range
# at max <= 3, min >= -3.
_SCHED_START = 2.0
_SCHED_FORMAT_MAX_FLOOR, _SCHED_FORMAT_MIN_CAP = 1.0, -1.0
_SCHED_CORRECT_MAX_CAP, _SCHED_CORRECT_MIN_FLOOR = 3.0, -3.0


class GroundTruthError(ValueError):
    """The ground truth of a sample cannot be scored (a data error, never a model error)."""


@dataclass
class ToolRLConfig:
    """Configuration of the ToolRL reward. Defaults reproduce the paper's main setting exactly.

    Every variant of the paper's ablations (Sec. 5) is a field; ``from_env_flags`` maps the reference
    repository's environment variables (``CORRECTMAX1=1`` ...) onto these fields.

    Parameters:
        format_range: ``(min_f, max_f)`` of the format reward. Default ``(0, 1)``. A wider range makes
            layout compliance weigh more against call correctness; the paper keeps it at (0, 1).
        correctness_range: ``(min_c, max_c)`` of the correctness reward. Default ``(-3, 3)``: correctness
            dominates format, which is what the paper found best. ``(-1, 1)`` is the "equal max" ablation
            (``CORRECTMAX1``), which in the paper trained worse.
        scale_schedule: how the two ranges change with the training ``step``.
            ``"constant"`` (default) — fixed ranges.
            ``"two_stage"`` (``MAX1STEP30MAX3``) — before ``two_stage_switch_step`` the correctness range is
            divided by 3 (so [-1, 1]); from then on the format range is halved (so [0, 0.5]). Emphasises
            format early and correctness later; the paper reports it slightly below constant.
            ``"smooth"`` (``SCHEDULEREWARD``) — both ranges start at [-2, 2] and move linearly towards the
            configured ranges over ``schedule_steps`` (format max floored at 1 and min capped at -1,
            correctness clipped to [-3, 3]). Smoother than two-stage; also below constant in the paper.
        two_stage_switch_step: the step at which ``"two_stage"`` switches (published: 30).
        schedule_steps: the horizon of ``"smooth"`` (published: 150).
        granularity: how partial credit is given for a wrong call list.
            ``"fine"`` (default) — name Jaccard + per-call key Jaccard + per-value equality: the densest
            signal, best in the paper.
            ``"refined"`` (``REFINEDREWARD``) — name and key matches count only when the lists are identical
            (no Jaccard partial credit).
            ``"intermediate"`` (``INTERMEDIATEREWARD``) — a ground-truth call scores 1 only if some unused
            prediction equals it exactly; ``S_max = 1 + #calls``.
            ``"coarse"`` (``COARSEREWARD``) — all or nothing: exact list match gives ``max_c``, anything else
            ``min_c``. Sparsest signal; worst in the paper.
        length_reward: the think-length reward of Sec. 5.1. ``"off"`` (default; the paper found it hurts
            small models), ``"fixed"`` (``WITHLENGTH``: target ``length_target_words``) or ``"scheduled"``
            (``WITHLENGTH`` + ``SCHEDULELENGTH``: target grows linearly from ``length_schedule_start`` to
            ``length_schedule_end`` over ``length_schedule_steps`` and keeps growing after).
        length_range: ``(min, max)`` of the length reward (published: (0, 1)).
        length_target_words: words in ``<think>`` that earn the full length reward (published: 512).
        length_schedule_start / length_schedule_end / length_schedule_steps: the scheduled target
            (published: 384 -> 640 over 105 steps).
        accept_arguments_key: also accept Qwen's native ``"arguments"`` key wherever ToolRL expects
            ``"parameters"`` (prediction and ground truth). Off by default to stay exact: the reference
            scores ``"arguments"`` calls as unmatched. Turn on when training a Qwen-template policy
            against ToolRL data.
        assistant_span: how to cut the assistant's reply out of a decoded sequence before scoring:
            ``"qwen"`` (default) — text after the last ``<|im_start|>assistant``, cut at the first
            ``<|im_end|>``, stripped; a no-op apart from the strip when the markers are absent, so it is
            safe for response-only strings. ``"llama"`` — the Llama-3 header/eot markers. ``"none"`` —
            score the text as given (no strip; trailing newlines then matter).
    """

    format_range: tuple[float, float] = (0.0, 1.0)
    correctness_range: tuple[float, float] = (-3.0, 3.0)
    scale_schedule: ScaleSchedule = "constant"
    two_stage_switch_step: int = 30
    schedule_steps: int = 150
    granularity: Granularity = "fine"
    length_reward: LengthReward = "off"
    length_range: tuple[float, float] = (0.0, 1.0)
    length_target_words: float = 512.0
    length_schedule_start: float = 384.0
    length_schedule_end: float = 640.0
    length_schedule_steps: int = 105
    accept_arguments_key: bool = False
    assistant_span: AssistantSpan = "qwen"

    def __post_init__(self) -> None:
        for name in ("format_range", "correctness_range", "length_range"):
            value = getattr(self, name)
            try:
                lo, hi = (float(v) for v in value)
            except (TypeError, ValueError):
                raise ValueError(f"ToolRLConfig.{name} must be a pair (min, max) of numbers, got {value!r}") from None
            if lo > hi:
                raise ValueError(f"ToolRLConfig.{name} must have min <= max, got {value!r}; swap the two values")
            setattr(self, name, (lo, hi))
        choices = {
            "scale_schedule": ScaleSchedule.__args__,
            "granularity": Granularity.__args__,
            "length_reward": LengthReward.__args__,
            "assistant_span": AssistantSpan.__args__,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"ToolRLConfig.{name}={getattr(self, name)!r} is not one of {list(allowed)}")
        for name in ("schedule_steps", "length_schedule_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ToolRLConfig.{name} must be > 0, got {getattr(self, name)!r}")
        if self.length_target_words <= 0:
            raise ValueError(f"ToolRLConfig.length_target_words must be > 0, got {self.length_target_words!r}")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "ToolRLConfig":
        """Build from a plain/Hydra mapping, rejecting unknown keys with the list of valid ones."""
        ranges = [f.name for f in dataclasses.fields(cls) if f.name.endswith("_range")]
        return dataclass_from_mapping(cls, mapping, tuple_fields=ranges)

    @classmethod
    def from_env_flags(cls, flags: Mapping[str, Any], **overrides: Any) -> "ToolRLConfig":
        """Map the reference repository's switches (``{"CORRECTMAX1": "1", ...}``, e.g. ``os.environ``).

        The published runs enable one scale flag and one granularity flag at a time; enabling two of the
        same family is rejected because the typed config cannot represent the mixture.
        """
        on = {k for k, v in flags.items() if str(v) == "1"}
        values: dict[str, Any] = {}
        if "CORRECTMAX1" in on:
            values["correctness_range"] = (-1.0, 1.0)
        scale = [n for n, f in (("two_stage", "MAX1STEP30MAX3"), ("smooth", "SCHEDULEREWARD")) if f in on]
        gran = [n for n, f in (("refined", "REFINEDREWARD"), ("intermediate", "INTERMEDIATEREWARD"),
                               ("coarse", "COARSEREWARD")) if f in on]
        if len(scale) > 1 or len(gran) > 1:
            raise ValueError(f"Enable at most one scale flag and one granularity flag, got {sorted(on)}")
        if scale:
            values["scale_schedule"] = scale[0]
        if gran:
            values["granularity"] = gran[0]
        if "WITHLENGTH" in on:
            values["length_reward"] = "scheduled" if "SCHEDULELENGTH" in on else "fixed"
        values.update(overrides)
        return cls(**values)


@dataclass(slots=True)
class ToolRLResult:
    """``score = format + correctness + length``; ``success`` is the binary exact-match verdict."""

    score: float
    format: float
    correctness: float
    success: bool
    details: dict[str, Any] = field(default_factory=dict)
    length: float = 0.0

    def metrics(self) -> dict[str, float]:
        """Float-only components (what verl logs per sample)."""
        return {
            "score": float(self.score),
            "acc": float(self.success),
            "format": float(self.format),
            "correctness": float(self.correctness),
            "length": float(self.length),
        }


@dataclass(slots=True)
class CallMatch:
    """The correctness part for one call list: the reward and how it was reached."""

    reward: float
    exact: bool  # the reference's test: the lists are equal, order included
    same_calls: bool = False  # equal as multisets: parallel calls in another order still count
    score: float | None = None  # S (None when not computed: exact, coarse or unparsable)
    max_score: float | None = None  # S_max
    error: str | None = None  # why the prediction scored the minimum


# --------------------------------------------------------------------------------------------------
# Small pure pieces
# --------------------------------------------------------------------------------------------------
def extract_assistant_span(text: str, template: AssistantSpan = "qwen") -> str:
    """The assistant's reply as ToolRL scores it: after the last start marker, before the first end."""
    if template == "none":
        return text
    start, end = _SPAN_MARKERS[template]
    return text.rpartition(start)[2].partition(end)[0].strip()


def expected_format(ground_truth: str) -> str:
    """Which layout the ground truth asks for: ``response``, ``tool_call``, ``both`` or ``think``."""
    has_call, has_resp = _TOOL_OPEN in ground_truth, _RESP_OPEN in ground_truth
    if has_call and has_resp:
        return "both"
    if has_call:
        return "tool_call"
    return "response" if has_resp else "think"


def format_matches(response: str, layout: str) -> bool:
    """True when ``response`` fully matches ``layout`` (see ``expected_format``), each tag exactly once."""
    if _LAYOUTS[layout].match(response) is None:
        return False
    if layout in ("tool_call", "both") and (response.count(_TOOL_OPEN) != 1 or response.count(_TOOL_CLOSE) != 1):
        return False
    if layout in ("response", "both") and (response.count(_RESP_OPEN) != 1 or response.count(_RESP_CLOSE) != 1):
        return False
    return True


def _tool_call_body(text: str) -> str:
    # Same slice as ``text.split("<tool_call>")[1].split("</tool_call>")[0].strip()``: it stops at the
    # next *opening* tag too.
    body = text[text.index(_TOOL_OPEN) + len(_TOOL_OPEN):]
    for stop in (_TOOL_OPEN, _TOOL_CLOSE):
        cut = body.find(stop)
        if cut >= 0:
            body = body[:cut]
    return body.strip()


_DECODER = json.JSONDecoder()
_JSON_WS = " \t\n\r"


def _loads(line: str) -> Any:
    """Exactly ``json.loads(line)`` for a ``str``, about 3x faster on the common case.

    ``json.loads`` spends most of its time in two whitespace regexes around ``raw_decode``; we try
    ``raw_decode`` first and fall back to ``json.loads`` (leading whitespace, errors) so every outcome and
    every error is the library's own.
    """
    try:
        obj, end = _DECODER.raw_decode(line)
    except ValueError:
        return json.loads(line)
    if end != len(line) and line[end:].strip(_JSON_WS):
        return json.loads(line)  # raises "Extra data"
    return obj


def _with_parameters_key(call: Any) -> Any:
    if isinstance(call, dict) and "arguments" in call and "parameters" not in call:
        return {("parameters" if k == "arguments" else k): v for k, v in call.items()}
    return call


@lru_cache(maxsize=8192)
def _parse_gt_cached(ground_truth: str, accept_arguments_key: bool) -> list[dict] | None:
    # Shared between calls (ground truths repeat across a GRPO group): callers must not mutate it.
    if _TOOL_OPEN not in ground_truth:
        return None
    if _TOOL_CLOSE not in ground_truth:
        raise GroundTruthError("it has <tool_call> but no </tool_call>; close the block")
    calls = []
    for lineno, line in enumerate(_tool_call_body(ground_truth).split("\n"), 1):
        try:
            call = _loads(line)
        except ValueError as exc:
            raise GroundTruthError(
                f"line {lineno} inside <tool_call> is not JSON ({exc}): {line[:120]!r}; write one JSON object per line"
            ) from None
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise GroundTruthError(f"line {lineno} inside <tool_call> is not an object with a string \"name\": {line[:120]!r}")
        if accept_arguments_key:
            call = _with_parameters_key(call)
        elif "parameters" not in call and "arguments" in call:
            raise GroundTruthError(
                f"call {call['name']!r} (line {lineno}) uses \"arguments\"; rename it to \"parameters\" or set "
                "ToolRLConfig.accept_arguments_key=True"
            )
        if not isinstance(call.get("parameters"), dict):
            raise GroundTruthError(
                f"call {call['name']!r} (line {lineno}) has no \"parameters\" object; add \"parameters\": {{...}}"
            )
        calls.append(call)
    return calls


def _gt_calls(ground_truth: str, sample_id: Any, accept_arguments_key: bool) -> list[dict] | None:
    if not isinstance(ground_truth, str):
        raise GroundTruthError(
            f"ToolRL ground truth of sample {sample_id!r} must be a string, got {type(ground_truth).__name__}; "
            "put the reference reply text in reward_model.ground_truth"
        )
    try:
        return _parse_gt_cached(ground_truth, accept_arguments_key)
    except GroundTruthError as exc:
        raise GroundTruthError(
            f"ToolRL ground truth of sample {sample_id!r} is malformed: {exc}. Ground truth: {ground_truth[:200]!r}"
        ) from None


def parse_ground_truth_calls(ground_truth: str, *, sample_id: Any = None, accept_arguments_key: bool = False) -> list[dict] | None:
    """The ground-truth calls (``None`` when the ground truth has no ``<tool_call>``).

    Raises ``GroundTruthError`` naming the sample when the block is malformed.
    """
    calls = _gt_calls(ground_truth, sample_id, accept_arguments_key)
    return None if calls is None else [dict(c) for c in calls]


def parse_predicted_calls(response: str, *, accept_arguments_key: bool = False) -> tuple[list | None, str | None]:
    """``(calls, None)`` or ``(None, reason)``: one ``json.loads`` per line of the first ``<tool_call>`` block.

    Items are returned as decoded (they may be any JSON value); the matcher treats malformed items as a
    failed parse, exactly as the reference does.
    """
    if _TOOL_OPEN not in response or _TOOL_CLOSE not in response:
        return None, "missing <tool_call> or </tool_call>"
    calls = []
    for line in _tool_call_body(response).split("\n"):
        try:
            calls.append(_loads(line))
        except (ValueError, RecursionError) as exc:
            return None, f"not JSON: {type(exc).__name__}"
    if accept_arguments_key:
        calls = [_with_parameters_key(c) for c in calls]
    return calls, None


def match_score(a: Sequence, b: Sequence, strict: bool = False) -> float:
    """Multiset Jaccard of two lists: 1 if equal; 0 if either is empty (or ``strict`` and not equal)."""
    if a == b:
        return 1.0
    if strict or not a or not b:
        return 0.0
    ca, cb = Counter(a), Counter(b)
    inter = sum(min(ca[k], cb[k]) for k in ca.keys() & cb.keys())
    union = len(a) + len(b) - inter
    return inter / union if union > 0 else 0.0


def _similarity(gt: Sequence[dict], pred: Sequence[Any], granularity: str) -> tuple[float, float]:
    """``(S, S_max)``. May raise on malformed predicted items (callers map that to the minimum)."""
    strict = granularity == "refined"
    intermediate = granularity == "intermediate"
    pred_names = [p["name"] for p in pred]
    score = match_score([g["name"] for g in gt], pred_names, strict)
    max_score = 1.0
    used: set[int] = set()
    for g in gt:
        g_name, g_params = g["name"], g["parameters"]
        max_score += 1.0 if intermediate else 1.0 + len(g_params)
        best, best_idx = 0.0, -1
        for i, p in enumerate(pred):
            if i in used or pred_names[i] != g_name:
                continue
            if intermediate:
                if p == g:
                    best, best_idx = 1.0, i
                    break
                continue
            p_params = p["parameters"]
            total = match_score(list(g_params.keys()), list(p_params.keys()), strict)
            total += sum(1.0 for k, v in g_params.items() if k in p_params and p_params[k] == v)
            if total > best:
                best, best_idx = total, i
        if best_idx >= 0:
            used.add(best_idx)
            score += best
    return score, max_score


def score_call_lists(
    gt_calls: Sequence[dict],
    pred_calls: Sequence[Any] | None,
    low: float = -3.0,
    high: float = 3.0,
    granularity: Granularity = "fine",
    parse_error: str | None = None,
) -> CallMatch:
    """ToolRL's correctness reward of ``pred_calls`` against ``gt_calls`` (both ``{"name", "parameters"}``).

    This is the one matcher of the project: the single-turn reward and the multi-turn per-turn score both
    call it. ``pred_calls=None`` means "could not be parsed" and scores ``low``. Never raises.
    """
    if pred_calls is None:
        return CallMatch(low, False, error=parse_error or "no parsable tool calls")
    try:
        exact = bool(gt_calls == pred_calls) if type(gt_calls) is type(pred_calls) else list(gt_calls) == list(pred_calls)
    except Exception:  # noqa: BLE001 - exotic values must not crash training
        return CallMatch(low, False, error="uncomparable prediction")
    if exact:
        return CallMatch(high, True, True)
    same = _same_multiset(gt_calls, pred_calls)
    if granularity == "coarse":
        return CallMatch(low, False, same, error="not an exact match (coarse)")
    try:
        s, s_max = _similarity(gt_calls, pred_calls, granularity)
    except Exception as exc:  # noqa: BLE001 - malformed items (no name, non-dict params) score the minimum
        return CallMatch(low, False, same, error=f"malformed call: {type(exc).__name__}: {exc}"[:200])
    return CallMatch((high - low) * s / s_max + low, False, same, s, s_max)


def _same_multiset(gt_calls: Sequence[Any], pred_calls: Sequence[Any]) -> bool:
    if len(gt_calls) != len(pred_calls):
        return False
    left = list(pred_calls)
    try:
        for g in gt_calls:
            for i, p in enumerate(left):
                if p == g:
                    del left[i]
                    break
            else:
                return False
    except Exception:  # noqa: BLE001
        return False
    return True


def calls_to_dicts(calls: Iterable[Any]) -> list[dict]:
    """``ToolCall``s (or ``{"name", "arguments"|"parameters"}`` dicts) -> ToolRL's ``{"name", "parameters"}``."""
    out = []
    for c in calls:
        if isinstance(c, dict):
            out.append(_with_parameters_key(c))
        else:
            out.append({"name": c.name, "parameters": dict(c.arguments)})
    return out


def reward_ranges(config: ToolRLConfig, step: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """``((min_f, max_f), (min_c, max_c))`` at training ``step`` under ``config.scale_schedule``."""
    f_lo, f_hi = config.format_range
    c_lo, c_hi = config.correctness_range
    if config.scale_schedule == "two_stage":
        if step >= config.two_stage_switch_step:
            f_hi, f_lo = f_hi / 2, f_lo / 2
        else:
            c_hi, c_lo = c_hi / 3, c_lo / 3
    elif config.scale_schedule == "smooth":
        t = config.schedule_steps
        f_hi = _SCHED_START - (_SCHED_START - f_hi) * step / t
        f_lo = -_SCHED_START + (_SCHED_START + f_lo) * step / t
        f_hi = _SCHED_FORMAT_MAX_FLOOR if f_hi < _SCHED_FORMAT_MAX_FLOOR else f_hi
        f_lo = _SCHED_FORMAT_MIN_CAP if f_lo > _SCHED_FORMAT_MIN_CAP else f_lo
        c_hi = (c_hi - _SCHED_START) * step / t + _SCHED_START
        c_lo = (c_lo + _SCHED_START) * step / t - _SCHED_START
        c_hi = _SCHED_CORRECT_MAX_CAP if c_hi > _SCHED_CORRECT_MAX_CAP else c_hi
        c_lo = _SCHED_CORRECT_MIN_FLOOR if c_lo < _SCHED_CORRECT_MIN_FLOOR else c_lo
    return (f_lo, f_hi), (c_lo, c_hi)


def think_length_reward(response: str, config: ToolRLConfig, step: int) -> float:
    """Words inside the last ``<think>`` over the target, rounded to 2 places, capped at 1, mapped to the range."""
    lo, hi = config.length_range
    if "<think>" not in response or "</think>" not in response:
        return lo
    if config.length_reward == "scheduled":
        target = (config.length_schedule_end - config.length_schedule_start) * step / config.length_schedule_steps \
            + config.length_schedule_start
    else:
        target = config.length_target_words
    think = response.rpartition("<think>")[2].partition("</think>")[0].strip()
    ratio = round(len(think.split()) / target, 2)
    if ratio > 1.0:
        ratio = 1.0
    return ratio * (hi - lo) + lo


# --------------------------------------------------------------------------------------------------
# The reward
# --------------------------------------------------------------------------------------------------
_DEFAULT_CONFIG = ToolRLConfig()


def toolrl_reward(
    solution: str,
    ground_truth: str,
    step: int = 0,
    config: ToolRLConfig | Mapping[str, Any] | None = None,
    *,
    sample_id: Any = None,
) -> ToolRLResult:
    """Score one model reply against a ToolRL ground truth.

    Args:
        solution: the decoded reply (or prompt + reply; the assistant span is cut out per
            ``config.assistant_span``). Malformed replies never raise: they score the minimum.
        ground_truth: the reference reply (``<think>…</think>\\n<tool_call>\\n{json per line}\\n</tool_call>``
            and/or ``<response>…</response>``). A malformed one raises ``GroundTruthError`` naming
            ``sample_id``.
        step: the training step, used only by the scheduled variants.
        config: the variant (a ``ToolRLConfig`` or a mapping of its fields); ``None`` = the paper's default.
    """
    if config is None:
        cfg = _DEFAULT_CONFIG
    elif isinstance(config, ToolRLConfig):
        cfg = config
    else:
        cfg = ToolRLConfig.from_mapping(config)
    gt_calls = _gt_calls(ground_truth, sample_id, cfg.accept_arguments_key)
    if not isinstance(solution, str):
        solution = "" if solution is None else str(solution)
    response = extract_assistant_span(solution, cfg.assistant_span)
    (f_lo, f_hi), (c_lo, c_hi) = reward_ranges(cfg, step)

    layout = expected_format(ground_truth)
    format_ok = format_matches(response, layout)
    format_score = f_hi if format_ok else f_lo

    if gt_calls is None:
        match = CallMatch(0.0, False)
        pred_calls: list | None = None
    else:
        pred_calls, parse_error = parse_predicted_calls(response, accept_arguments_key=cfg.accept_arguments_key)
        match = score_call_lists(gt_calls, pred_calls, c_lo, c_hi, cfg.granularity, parse_error)

    length_score = think_length_reward(response, cfg, step) if cfg.length_reward != "off" else 0.0
    score = format_score + match.reward + length_score
    # The binary verdict: right layout and the right calls. Parallel calls are unordered (as in BFCL), so
    # a reordering succeeds even though the reference's order-sensitive shortcut does not fire.
    success = format_ok and (gt_calls is None or match.same_calls)
    details = {
        "layout": layout,
        "format_ok": format_ok,
        "exact_match": match.exact,
        "same_calls": match.same_calls,
        "num_gt_calls": 0 if gt_calls is None else len(gt_calls),
        "num_pred_calls": None if pred_calls is None else len(pred_calls),
        "match_score": match.score,
        "match_max": match.max_score,
        "error": match.error,
        "format_range": (f_lo, f_hi),
        "correctness_range": (c_lo, c_hi),
    }
    return ToolRLResult(score, format_score, match.reward, success, details, length_score)
