# Over 400 lines on purpose: the BFCL verdict and the shaped score share one per-turn pass (TurnCheck), split they would run the episode twice.
"""Multi-turn episode reward: BFCL's per-entry verdict plus a shaped score for training.

Given the model's episode and a task with ground-truth calls per turn, ``check_turns`` replays the ground
truth on a fresh in-process episode and compares, after every turn whose ground truth is non-empty, in
BFCL's order. The model's side is read from the runner's recording (a ``Trajectory``: per-step results and
per-turn state snapshots), never run again; only a plain list of calls (the BFCL evaluation harness, which
has no recording) is executed, on a fresh episode with the environment's isolation. The checks are the
environment's hook (:mod:`tool_envs.hooks`): bfcl-eval's own sub-checkers for the BFCL environments, the
same rule without bfcl-eval for every other one:

1. the model made at least one call in the turn   (``multi_turn:empty_turn_model_response``)
2. ``state_checker`` on the backend instances     (``multi_turn:instance_state_mismatch``)
3. ``response_checker``: every ground-truth result of the turn occurs among the model's results so far
   (``multi_turn:execution_response_mismatch``)

and a turn-count mismatch fails the entry as ``multi_turn:force_terminated``. The verdict (``valid`` and
the first failure's ``error_type``) is ``multi_turn_checker``'s; unlike BFCL we keep checking the later
turns so the shaped score can give partial credit.

``score_episode`` turns that into a ``MultiTurnResult``: ``success`` = the BFCL verdict (every checked
turn passes), and ``score`` = a weighted mix of per-turn ToolRL call matching, per-turn state match,
per-turn result match and the verdict (weights in ``MultiTurnConfig``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from dipo_tools.config_utils import dataclass_from_mapping
from reward.toolrl import Granularity, calls_to_dicts, score_call_lists
from tool_envs.env import public_state
from tool_envs.hooks import RESPONSE_MISMATCH, STATE_MISMATCH  # noqa: F401 - re-exported error types
from tool_envs.registry import builtin_hooks, env_for_task
from tool_envs.tasks import Task
from tool_envs.types import ToolCall

__all__ = [
    "MultiTurnConfig",
    "MultiTurnResult",
    "TurnCheck",
    "check_turns",
    "score_episode",
    "as_task",
    "model_turns_from",
]

EMPTY_TURN = "multi_turn:empty_turn_model_response"
FORCE_TERMINATED = "multi_turn:force_terminated"
FINAL_STATE_MISMATCH = "multi_turn:final_state_mismatch"  # ours: tasks graded by final state only
EXECUTION_ERROR = "multi_turn:execution_error"  # ours: the replay itself failed (never a model's fault alone)


@dataclass
class MultiTurnConfig:
    """Weights and switches of the multi-turn episode reward.

    ``score = lo + (hi - lo) * (Σ_k w_k · c_k) / Σ_k w_k - parse_error_penalty · #parse errors``, over the
    components ``c_k ∈ [0, 1]`` that the task can grade (a task with only a final state has no call
    component; a component with weight 0 is left out).

    Parameters:
        call_weight: weight of the mean per-turn ToolRL call match (``S / S_max`` of the turn's calls,
            all steps flattened, against the turn's ground truth; 1 for an exact match). Dense: credits a
            right tool with a wrong argument. Too high and the policy imitates the ground-truth path
            instead of reaching the right state some other valid way.
        state_weight: weight of the fraction of checked turns whose backend state equals the ground
            truth's (BFCL's state rule). The outcome the user cares about; sparse on long episodes.
        response_weight: weight of the fraction of checked turns whose ground-truth results all appear
            among the model's results (BFCL's response rule: read-only calls must really be made).
        success_weight: weight of the entry verdict (1 only if every checked turn passes). Keeps the
            maximum reserved for fully correct episodes, so shaping cannot outrank success.
        parse_error_penalty: subtracted per assistant step whose calls could not be parsed (only known
            when scoring a ``Trajectory``). 0 by default: unparsable steps already earn no credit.
        score_range: ``(lo, hi)`` the weighted mean is mapped to. (0, 1) by default; (-1, 1) centres it.
        granularity: ToolRL granularity of the per-turn call match (see ``ToolRLConfig.granularity``).
        empty_turn_credit: call-component credit of a turn whose ground truth is empty and where the model
            also made no call (BFCL does not check such turns; they are left out when False, the default).
    """

    call_weight: float = 0.25
    state_weight: float = 0.35
    response_weight: float = 0.15
    success_weight: float = 0.25
    parse_error_penalty: float = 0.0
    score_range: tuple[float, float] = (0.0, 1.0)
    granularity: Granularity = "fine"
    empty_turn_credit: bool = False

    def __post_init__(self) -> None:
        for name in ("call_weight", "state_weight", "response_weight", "success_weight", "parse_error_penalty"):
            if getattr(self, name) < 0:
                raise ValueError(f"MultiTurnConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.call_weight + self.state_weight + self.response_weight + self.success_weight <= 0:
            raise ValueError("MultiTurnConfig: at least one of the four weights must be > 0")
        lo, hi = (float(v) for v in self.score_range)
        if lo > hi:
            raise ValueError(f"MultiTurnConfig.score_range must have min <= max, got {self.score_range!r}")
        self.score_range = (lo, hi)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> "MultiTurnConfig":
        return dataclass_from_mapping(cls, mapping, tuple_fields=("score_range",))


@dataclass
class TurnCheck:
    """What happened in one user turn. ``checked`` is False when the ground truth of the turn is empty
    (BFCL does not check it) or the model never reached the turn (``reached`` False)."""

    turn: int
    checked: bool
    reached: bool
    num_gt_calls: int
    num_model_calls: int
    call_score: float | None = None  # ToolRL S/S_max of the turn's calls, in [0, 1]
    empty: bool | None = None
    state_ok: bool | None = None
    response_ok: bool | None = None
    state_differences: list[str] = field(default_factory=list)  # attribute names ("Class.attr")
    missing_responses: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        if not self.checked:
            return None
        return bool(self.reached and not self.empty and self.state_ok and self.response_ok)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["passed"] = self.passed
        return d


@dataclass
class MultiTurnResult:
    """The episode's reward. ``success`` is BFCL's entry verdict (the binary signal DiPO uses)."""

    score: float
    success: bool
    per_turn: list[TurnCheck]
    state_ok: bool
    response_ok: bool
    error_type: str | None
    error_message: str | None = None
    call_score: float | None = None
    turn_pass_rate: float = 0.0
    final_state_ok: bool | None = None
    num_parse_errors: int = 0
    components: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Float-only view: what the agent loop hands to ``reward.compute_score`` and verl logs."""
        out = {
            "score": float(self.score),
            "acc": float(self.success),
            "state_ok": float(self.state_ok),
            "response_ok": float(self.response_ok),
            "turn_pass_rate": float(self.turn_pass_rate),
            "force_terminated": float(self.error_type == FORCE_TERMINATED),
            "parse_errors": float(self.num_parse_errors),
        }
        if self.call_score is not None:
            out["call_score"] = float(self.call_score)
        return out


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------
def as_task(task_or_entry: Any) -> Task:
    """A ``tool_envs`` Task from a Task, a task dict, or an entry in an environment family's own format
    (a BFCL entry that carries its ``ground_truth``), which that family's hook reads."""
    if isinstance(task_or_entry, Task):
        return task_or_entry
    if isinstance(task_or_entry, Mapping):
        for hook in builtin_hooks():
            task = hook.task_from_entry(task_or_entry)
            if task is not None:
                return task
        return Task.from_dict(task_or_entry, where=f"task {task_or_entry.get('id')!r}")
    raise TypeError(f"expected a tool_envs Task, a task dict or a BFCL entry, got {type(task_or_entry).__name__}")


def _is_call(x: Any) -> bool:
    return isinstance(x, ToolCall) or (isinstance(x, Mapping) and "name" in x)


def _to_call(x: Any) -> ToolCall:
    if isinstance(x, ToolCall):
        return x
    args = x.get("arguments", x.get("parameters", {}))
    return ToolCall(x["name"], dict(args) if isinstance(args, Mapping) else args)


def model_turns_from(trajectory_or_turn_calls: Any) -> tuple[list[list[list[ToolCall]]], int]:
    """``([turn][step][call], #parse errors)`` from a runner ``Trajectory`` or a plain list.

    A plain list may be ``[turn][call]`` (one step per turn) or ``[turn][step][call]``; calls may be
    ``ToolCall``s or ``{"name", "arguments"}`` dicts.
    """
    turns = getattr(trajectory_or_turn_calls, "turns", None)
    if turns is not None and not isinstance(trajectory_or_turn_calls, (list, tuple)):
        out = [[list(step.calls) for step in turn] for turn in turns]
        errors = sum(1 for turn in turns for step in turn if getattr(step, "parse_error", None))
        return out, errors
    if not isinstance(trajectory_or_turn_calls, (list, tuple)):
        raise TypeError(
            "score_episode expects a tool_envs Trajectory or a list of turns of calls, got "
            f"{type(trajectory_or_turn_calls).__name__}"
        )
    out = []
    for turn in trajectory_or_turn_calls:
        turn = list(turn)
        if turn and all(_is_call(x) for x in turn):
            out.append([[_to_call(c) for c in turn]])
        else:
            out.append([[_to_call(c) for c in step] for step in turn])
    return out, 0


# --------------------------------------------------------------------------------------------------
# BFCL per-turn check
# --------------------------------------------------------------------------------------------------
def _flat(steps: Sequence[Sequence[ToolCall]]) -> list[ToolCall]:
    return [c for s in steps for c in s]


class _Recorded:
    """The model's side of an episode as the runner recorded it: per turn, the results of the steps that
    made calls and the backend state at the end of the turn (``Trajectory.turn_snapshots``)."""

    def __init__(self, env: Any, results: list[list[list[str]]], snapshots: list, final_state: Any = None):
        self.env, self.results, self.snapshots = env, results, snapshots
        self._final_state = final_state
        self._cache: tuple[Any, dict] | None = None

    def final_state(self) -> dict:
        if self._final_state is None:
            self._final_state = {k: public_state(v) for k, v in self.backends(len(self.snapshots) - 1).items()}
        return self._final_state

    @classmethod
    def of(cls, trajectory: Any) -> "_Recorded | None":
        """The recording, or None when the trajectory cannot be scored without replaying it."""
        snaps = getattr(trajectory, "turn_snapshots", None)
        turns = getattr(trajectory, "turns", None)
        if not snaps or turns is None or len(snaps) != len(turns) or any(s is None for s in snaps):
            return None
        if not hasattr(getattr(getattr(trajectory, "episode", None), "env", None), "backends_from_snapshot"):
            return None
        results = [[[r.content for r in step.results] for step in turn if step.calls] for turn in turns]
        return cls(trajectory.episode.env, results, list(snaps), trajectory.final_state)

    @classmethod
    def replay(cls, episode: Any, model_turns: Sequence[Sequence[Sequence[ToolCall]]]) -> "_Recorded | None":
        """Run the model's calls in ``episode`` in one go (one worker request in process isolation)."""
        steps = [[list(s) for s in turn if len(s)] for turn in model_turns]
        results, snaps = episode.execute_turns(steps)
        if not snaps or any(s is None for s in snaps):
            return None
        return cls(episode.env, [[[r.content for r in step] for step in turn] for turn in results], snaps)

    def backends(self, turn: int) -> dict:
        """Backend instances at the end of ``turn`` (the last recorded turn's for turns never reached)."""
        snap = self.snapshots[min(turn, len(self.snapshots) - 1)]
        if self._cache is None or self._cache[0] is not snap:  # consecutive turns often share one snapshot
            self._cache = (snap, self.env.backends_from_snapshot(snap))
        return self._cache[1]


def _check(
    task, model_turns: Sequence[Sequence[Sequence[ToolCall]]], granularity: str = "fine", verdict_only: bool = False,
    recorded: _Recorded | None = None,
) -> tuple[dict, list[TurnCheck], Any]:
    """Replay model and ground-truth calls turn by turn; ``verdict_only`` stops at the first failing turn
    and skips the ToolRL call matching (what a pure BFCL check needs, about twice as fast).

    With ``recorded`` the model's results and states are read from the runner's recording instead of running
    its calls again (model output may be slow or hostile; the ground truth is trusted and runs in-process).
    Returns ``(verdict, per_turn, final_state)`` where ``final_state()`` gives the model's final
    ``Episode.state()``."""
    gt_turns = task.gt_calls
    if gt_turns is None:
        gt_turns = []
    env = env_for_task(task)
    hook = env.hook  # BFCL environments: bfcl-eval's own checkers; others: the same rule, no bfcl-eval
    gt_ep = env.new_episode(task, isolation="thread")
    # BFCL's executor runs held-out (miss_func) functions too; the verdict must be BFCL's.
    gt_ep.reveal()
    if recorded is None:
        model_ep = env.new_episode(task)
        model_ep.reveal()
        if model_ep.isolation == "process" and model_turns:  # one worker round trip instead of one per step
            recorded = _Recorded.replay(model_ep, model_turns)

    verdict: dict = {"valid": True}
    if len(model_turns) != len(gt_turns) and task.gt_calls is not None:
        verdict = {
            "valid": False,
            "error_type": FORCE_TERMINATED,
            "error_message": f"model produced {len(model_turns)} turns, ground truth has {len(gt_turns)}",
        }

    per_turn: list[TurnCheck] = []
    all_model_results: list[str] = []
    # Model turns beyond the ground truth (or all of them for a final-state-only task) still run, so the
    # final state is the model's; they are never checked.
    for t in range(max(len(gt_turns), len(model_turns))):
        gt_calls = gt_turns[t] if t < len(gt_turns) else []
        reached = t < len(model_turns)
        # BFCL drops steps that decode to no call before checking.
        steps = [list(s) for s in model_turns[t] if len(s)] if reached else []
        if recorded is None:
            for step in steps:
                all_model_results.extend(r.content for r in model_ep.execute(step))
        elif reached:
            for step_results in recorded.results[t]:
                all_model_results.extend(step_results)
        gt_results = [r.content for r in gt_ep.execute(list(gt_calls))]
        flat = _flat(steps)
        tc = TurnCheck(t, checked=bool(gt_calls), reached=reached, num_gt_calls=len(gt_calls), num_model_calls=len(flat))
        if gt_calls:
            if not verdict_only:
                tc.call_score = score_call_lists(calls_to_dicts(gt_calls), calls_to_dicts(flat), 0.0, 1.0, granularity).reward
            tc.empty = not steps
            first_error = None
            if tc.empty:
                first_error = {"valid": False, "error_type": EMPTY_TURN, "error_message": f"Model response list is empty for turn {t}"}
            st = hook.state_check(model_ep.backends if recorded is None else recorded.backends(t), gt_ep.backends)
            tc.state_ok = bool(st["valid"])
            if not tc.state_ok:
                diffs = st.get("details", {}).get("differences", {})
                cls = st.get("error_message", "").split(" for ", 1)[-1].split(" ", 1)[0]
                tc.state_differences = [f"{cls}.{k}" for k in diffs]
                first_error = first_error or st
            rs = hook.response_check(all_model_results, gt_results, t)
            tc.response_ok = bool(rs["valid"])
            if not tc.response_ok:
                tc.missing_responses = list(rs.get("details", {}).get("missing_items", []))
                first_error = first_error or rs
            if not reached:
                tc.empty = True
            if verdict["valid"] and first_error is not None:
                verdict = dict(first_error, turn=t)
        if verdict_only and not verdict["valid"]:
            per_turn.append(tc)
            break
        elif reached:
            tc.empty = not steps
        per_turn.append(tc)
    return verdict, per_turn, (model_ep.state if recorded is None else recorded.final_state)


def check_turns(
    task_or_entry: Any, model_turn_calls: Sequence[Sequence[Sequence[ToolCall]]], details: bool = True
) -> dict:
    """bfcl-eval's ``multi_turn_checker`` verdict for ``model_turn_calls`` (``[turn][step][call]``, or a
    runner ``Trajectory``, whose recorded results and states are checked without running its calls again).

    Returns ``{"valid", "error_type", "error_message", "per_turn": [TurnCheck.to_dict()...], "details"}``;
    ``error_type`` is None when valid, else BFCL's (``multi_turn:force_terminated``,
    ``multi_turn:empty_turn_model_response``, ``multi_turn:instance_state_mismatch``,
    ``multi_turn:execution_response_mismatch``) for the first failing turn. The model's calls (unless
    recorded) run on a fresh episode of the task's environment with its isolation, the ground truth on a
    fresh in-process one; nothing is ``eval``'d. With ``details=False``
    the check stops at the first failing turn and returns no ``per_turn`` list (the fast verdict path).

    This is the project's one implementation of BFCL's multi-turn rule: the BFCL harness
    (``dipo_tools.eval.bfcl``), the episode reward and the environment tests all call it.
    """
    task = as_task(task_or_entry)
    if task.gt_calls is None:
        raise ValueError(f"task {task.id!r}: ground_truth.calls is required for a BFCL check (one list per turn)")
    model_turns, _ = model_turns_from(model_turn_calls if hasattr(model_turn_calls, "turns") else list(model_turn_calls))
    if len(model_turns) != len(task.gt_calls) and not details:  # bfcl stops before executing anything
        return {"valid": False, "error_type": FORCE_TERMINATED, "per_turn": [], "details": None,
                "error_message": f"model produced {len(model_turns)} turns, ground truth has {len(task.gt_calls)}"}
    verdict, per_turn, _ = _check(task, model_turns, verdict_only=not details, recorded=_Recorded.of(model_turn_calls))
    return {
        "valid": bool(verdict["valid"]),
        "error_type": verdict.get("error_type"),
        "error_message": verdict.get("error_message"),
        "per_turn": [tc.to_dict() for tc in per_turn] if details else [],
        "details": verdict.get("details"),
    }


# --------------------------------------------------------------------------------------------------
# Shaped episode score
# --------------------------------------------------------------------------------------------------
def _final_state_ok(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    """Every key given in the expected final state equals the episode's (recursively on mappings)."""
    for k, v in expected.items():
        if k not in actual:
            return False
        if isinstance(v, Mapping) and isinstance(actual[k], Mapping):
            if not _final_state_ok(v, actual[k]):
                return False
        elif actual[k] != v:
            return False
    return True


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def score_episode(trajectory_or_turn_calls: Any, task: Any, config: MultiTurnConfig | Mapping[str, Any] | None = None) -> MultiTurnResult:
    """Score one multi-turn episode (see the module docstring). Never raises on the model's output.

    Args:
        trajectory_or_turn_calls: a ``tool_envs.runner.Trajectory`` (its steps' calls and parse errors
            are used) or the model's calls as ``[turn][call]`` / ``[turn][step][call]``.
        task: a ``tool_envs`` Task (or task dict / BFCL entry with ``ground_truth``) with
            ``ground_truth.calls`` (per turn) and/or ``ground_truth.final_state``.
        config: weights (a ``MultiTurnConfig`` or a mapping of its fields); ``None`` = defaults.
    """
    cfg = MultiTurnConfig.from_mapping(config)
    task = as_task(task)
    if task.gt_calls is None and task.gt_final_state is None:
        raise ValueError(
            f"task {task.id!r} has neither ground_truth.calls nor ground_truth.final_state; add one so the "
            "episode can be graded"
        )
    model_turns, parse_errors = model_turns_from(trajectory_or_turn_calls)
    try:
        verdict, per_turn, final_state = _check(task, model_turns, cfg.granularity,
                                                recorded=_Recorded.of(trajectory_or_turn_calls))
    except Exception as exc:  # noqa: BLE001 - a crash here must not stop training; report and score the minimum
        lo = cfg.score_range[0]
        return MultiTurnResult(lo, False, [], False, False, EXECUTION_ERROR, f"{type(exc).__name__}: {exc}"[:300],
                               num_parse_errors=parse_errors)

    checked = [tc for tc in per_turn if tc.checked]
    final_ok = None
    if task.gt_final_state is not None:
        final_ok = _final_state_ok(task.gt_final_state, final_state())
        if verdict["valid"] and not final_ok:
            verdict = {"valid": False, "error_type": FINAL_STATE_MISMATCH,
                       "error_message": "the episode's final state differs from ground_truth.final_state"}
    success = bool(verdict["valid"])

    comps: dict[str, float] = {}
    weights: dict[str, float] = {}
    if checked:
        call_scores = [tc.call_score if tc.reached else 0.0 for tc in checked]
        if cfg.empty_turn_credit:
            call_scores += [1.0 if tc.num_model_calls == 0 else 0.0 for tc in per_turn if not tc.checked and tc.reached]
        comps["calls"] = _mean(call_scores)
        comps["state"] = _mean([float(bool(tc.state_ok and tc.reached)) for tc in checked])
        comps["response"] = _mean([float(bool(tc.response_ok and tc.reached)) for tc in checked])
        weights.update(calls=cfg.call_weight, state=cfg.state_weight, response=cfg.response_weight)
    if final_ok is not None:
        # Graded by final state: it is the state component (averaged with the per-turn one if both exist).
        comps["state"] = (comps["state"] + float(final_ok)) / 2 if "state" in comps else float(final_ok)
        weights["state"] = cfg.state_weight
    comps["success"] = float(success)
    weights["success"] = cfg.success_weight
    total_w = sum(w for w in weights.values())
    if total_w <= 0:  # e.g. only success_weight = 0 and nothing else gradable
        weights, total_w = {"success": 1.0}, 1.0
    mix = sum(weights[k] * comps[k] for k in weights) / total_w
    lo, hi = cfg.score_range
    score = lo + (hi - lo) * mix - cfg.parse_error_penalty * parse_errors

    state_ok = all(tc.state_ok and tc.reached for tc in checked) and final_ok is not False
    response_ok = all(tc.response_ok and tc.reached for tc in checked)
    return MultiTurnResult(
        score=score,
        success=success,
        per_turn=per_turn,
        state_ok=bool(state_ok),
        response_ok=bool(response_ok),
        error_type=verdict.get("error_type"),
        error_message=verdict.get("error_message"),
        call_score=comps.get("calls"),
        turn_pass_rate=_mean([float(bool(tc.passed)) for tc in checked]) if checked else float(success),
        final_state_ok=final_ok,
        num_parse_errors=parse_errors,
        components=comps,
    )
