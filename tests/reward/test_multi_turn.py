"""Multi-turn episode reward: BFCL verdicts (checked against bfcl-eval's own multi_turn_checker), per-turn
reports, the shaped score, and the Trajectory / plain-list inputs."""
from __future__ import annotations

import copy
import os
import random

import pytest

os.environ.setdefault("BFCL_PROJECT_ROOT", "/tmp/bfcl-root-tests")

from dipo_tools.eval.bfcl_reference import reference_multi_turn_check  # noqa: E402
from reward.multi_turn import (  # noqa: E402
    EMPTY_TURN,
    FINAL_STATE_MISMATCH,
    FORCE_TERMINATED,
    RESPONSE_MISMATCH,
    STATE_MISMATCH,
    MultiTurnConfig,
    check_turns,
    score_episode,
)
from tool_envs.bfcl import MULTI_TURN_CATEGORIES, bfcl_entry_to_task, load_bfcl_entries  # noqa: E402
from tool_envs.runner import StepTrace, Trajectory  # noqa: E402
from tool_envs.tasks import Task, load_tasks  # noqa: E402
from tool_envs.types import ToolCall  # noqa: E402


@pytest.fixture(scope="module")
def bfcl():
    """{category: [(entry, answer, task)]} from the installed bfcl-eval data."""
    out = {}
    for cat in MULTI_TURN_CATEGORIES:
        out[cat] = [(q, a, bfcl_entry_to_task(q, a)) for q, a in load_bfcl_entries(cat)]
    return out


def gt_steps(task: Task) -> list[list[list[ToolCall]]]:
    return [[list(turn)] if turn else [] for turn in task.gt_calls]


def call_string(c: ToolCall) -> str:
    return f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in c.arguments.items()) + ")"


def bfcl_reference_verdict(entry: dict, answer: dict, model_turns: list[list[list[ToolCall]]]) -> tuple[bool, str | None]:
    """bfcl-eval's own verdict (eval_runner's turn-count rule, then multi_turn_checker).

    Only strings built here from the dataset's own ground-truth calls go through bfcl's executor.
    """
    decoded = [[[call_string(c) for c in step] for step in turn] for turn in model_turns]
    res = reference_multi_turn_check(entry, decoded, answer["ground_truth"])
    return res["valid"], res["error_type"]


# --------------------------------------------------------------------------------------------------
# Ground truth succeeds
# --------------------------------------------------------------------------------------------------
def test_every_bfcl_ground_truth_trace_succeeds(bfcl):
    n = 0
    for cat, rows in bfcl.items():
        for _, _, task in rows:
            verdict = check_turns(task, gt_steps(task))
            assert verdict["valid"] and verdict["error_type"] is None, (task.id, verdict["error_message"])
            n += 1
    assert n == 800


def test_ground_truth_scores_max_via_plain_lists(bfcl):
    for _, _, task in bfcl["multi_turn_miss_func"][:25] + bfcl["multi_turn_base"][:25]:
        res = score_episode([list(t) for t in task.gt_calls], task)
        assert res.success and res.state_ok and res.response_ok and res.error_type is None
        assert res.score == pytest.approx(1.0)
        assert res.metrics()["acc"] == 1.0


# --------------------------------------------------------------------------------------------------
# Agreement with bfcl-eval on corrupted traces
# --------------------------------------------------------------------------------------------------
def _corruptions(task: Task, rng: random.Random) -> dict[str, list[list[list[ToolCall]]]]:
    base = gt_steps(task)
    checked = [t for t, turn in enumerate(task.gt_calls) if turn]
    t = rng.choice(checked)
    out = {"drop_turn": base[:-1]}
    emptied = copy.deepcopy(base)
    emptied[t] = []
    out["empty_turn"] = emptied
    dropped = copy.deepcopy(base)
    dropped[t] = [dropped[t][0][:-1]]
    out["drop_last_call"] = dropped
    changed = copy.deepcopy(base)
    calls = changed[t][0]
    for i, c in enumerate(calls):
        str_args = [k for k, v in c.arguments.items() if isinstance(v, str)]
        if str_args:
            k = str_args[0]
            calls[i] = ToolCall(c.name, dict(c.arguments, **{k: c.arguments[k] + "_x"}))
            break
    out["changed_arg"] = changed
    swapped = copy.deepcopy(base)
    swapped[t] = [list(reversed(swapped[t][0]))]
    out["reversed_turn"] = swapped
    split = copy.deepcopy(base)
    split[t] = [[c] for c in split[t][0]]  # same calls, one per step
    out["one_call_per_step"] = split
    return out


def test_verdicts_match_bfcl_multi_turn_checker_on_corruptions(bfcl):
    rng = random.Random(4)
    seen_types: set = set()
    n = 0
    for cat, rows in bfcl.items():
        for entry, answer, task in rng.sample(rows, 12):
            for kind, turns in _corruptions(task, rng).items():
                ours = check_turns(task, turns)
                ref_valid, ref_type = bfcl_reference_verdict(entry, answer, turns)
                assert (ours["valid"], ours["error_type"]) == (ref_valid, ref_type if not ref_valid else None), (task.id, kind)
                seen_types.add(ours["error_type"])
                n += 1
    assert n == 4 * 12 * 6
    # the corruptions exercise every BFCL error type
    assert {None, FORCE_TERMINATED, EMPTY_TURN, STATE_MISMATCH, RESPONSE_MISMATCH} <= seen_types


# --------------------------------------------------------------------------------------------------
# multi_turn_base_0 by hand
# --------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base0(bfcl):
    entry, answer, task = bfcl["multi_turn_base"][0]
    assert task.id == "multi_turn_base_0" and len(task.gt_calls) == 4
    return task


def _edit(task: Task, turn: int, fn) -> list[list[list[ToolCall]]]:
    steps = gt_steps(task)
    steps[turn] = [fn(list(steps[turn][0]))]
    return steps


def test_state_mismatch_reported_with_attribute(base0):
    # turn 0: cd(document), mkdir(temp), mv(final_report.pdf -> temp); make the directory "tmp" instead
    steps = _edit(base0, 0, lambda cs: [cs[0], ToolCall("mkdir", {"dir_name": "tmp"}), cs[2]])
    verdict = check_turns(base0, steps)
    assert (verdict["valid"], verdict["error_type"]) == (False, STATE_MISMATCH)
    t0 = verdict["per_turn"][0]
    assert t0["state_ok"] is False and t0["passed"] is False
    assert any(d.startswith("GorillaFileSystem.") for d in t0["state_differences"])
    res = score_episode(steps, base0)
    assert not res.success and not res.state_ok and res.error_type == STATE_MISMATCH


def test_response_mismatch_reports_missing_output(base0):
    # turn 1: cd(temp), grep(...). Dropping the read-only grep keeps the state but loses its output.
    steps = _edit(base0, 1, lambda cs: cs[:1])
    verdict = check_turns(base0, steps)
    assert (verdict["valid"], verdict["error_type"]) == (False, RESPONSE_MISMATCH)
    t1 = verdict["per_turn"][1]
    assert t1["state_ok"] is True and t1["response_ok"] is False
    assert any("budget analysis" in m for m in t1["missing_responses"])
    res = score_episode(steps, base0)
    assert res.state_ok and not res.response_ok and not res.success


def test_extra_harmless_call_still_succeeds(base0):
    steps = _edit(base0, 1, lambda cs: cs + [ToolCall("ls", {})])
    assert check_turns(base0, steps)["valid"]
    res = score_episode(steps, base0)
    assert res.success
    # the call component still notices the extra call: names Jaccard 2/3 -> S = 2/3 + 2 + 3 = 17/3, S_max = 6
    assert res.per_turn[1].call_score == pytest.approx((2 / 3 + 2 + 3) / 6)


def test_empty_turn_and_force_terminated(base0):
    steps = gt_steps(base0)
    steps[2] = []
    assert check_turns(base0, steps)["error_type"] == EMPTY_TURN
    assert check_turns(base0, [[[]], *gt_steps(base0)[1:]])["error_type"] == EMPTY_TURN  # a step without calls
    short = gt_steps(base0)[:3]
    verdict = check_turns(base0, short)
    assert verdict["error_type"] == FORCE_TERMINATED and not verdict["valid"]
    res = score_episode([list(t) for t in base0.gt_calls[:3]], base0)
    assert res.error_type == FORCE_TERMINATED and not res.success
    assert res.per_turn[3].reached is False
    # three of four checked turns pass; the unreached one counts as failed in every component
    c = res.components
    assert (c["calls"], c["state"], c["response"], c["success"]) == (0.75, 0.75, 0.75, 0.0)
    assert res.score == pytest.approx(0.25 * 0.75 + 0.35 * 0.75 + 0.15 * 0.75)


def test_one_wrong_turn_fails_entry_and_shaped_score_by_hand(base0):
    # Wrong value in the LAST turn only (diff compares other files): turns 0-2 pass, turn 3 fails.
    def corrupt(cs):
        return cs[:3] + [ToolCall("diff", {"file_name1": "final_report.pdf", "file_name2": "final_report.pdf"})]

    steps = _edit(base0, 3, corrupt)
    res = score_episode(steps, base0)
    assert not res.success and res.error_type == RESPONSE_MISMATCH
    assert [tc.passed for tc in res.per_turn] == [True, True, True, False]
    # turn 3 GT: cd(..), mv(previous_report.pdf, temp), cd(temp), diff(final, previous): S_max = 1+2+3+2+3 = 11;
    # the prediction differs only in file_name2: S = 1 + 2 + 3 + 2 + (1 + 1) = 10 -> 10/11
    assert res.per_turn[3].call_score == pytest.approx(10 / 11)
    calls = (1 + 1 + 1 + 10 / 11) / 4
    assert res.components == pytest.approx({"calls": calls, "state": 1.0, "response": 0.75, "success": 0.0})
    assert res.score == pytest.approx(0.25 * calls + 0.35 * 1.0 + 0.15 * 0.75)
    # custom weights and range: only success, mapped to [-1, 1]
    only = score_episode(steps, base0, MultiTurnConfig(call_weight=0, state_weight=0, response_weight=0,
                                                       success_weight=1, score_range=(-1, 1)))
    assert only.score == -1.0


# --------------------------------------------------------------------------------------------------
# Inputs: Trajectory, final-state tasks, malformed calls
# --------------------------------------------------------------------------------------------------
def _trajectory(turns: list[list[StepTrace]]) -> Trajectory:
    return Trajectory(prompt_ids=[1], response_ids=[2], response_mask=[1], response_logprobs=[0.0], turns=turns,
                      final_state={}, episode=None, num_assistant_turns=sum(map(len, turns)),
                      num_tool_calls=sum(len(s.calls) for t in turns for s in t), num_user_turns=len(turns),
                      stop_reason="done")


def test_trajectory_input_counts_parse_errors(base0):
    turns = [[StepTrace(text="...", parse_error="bad json"), StepTrace(text="...", calls=list(calls)),
              StepTrace(text="done")] for calls in base0.gt_calls]
    res = score_episode(_trajectory(turns), base0, MultiTurnConfig(parse_error_penalty=0.05))
    assert res.success and res.num_parse_errors == 4
    assert res.score == pytest.approx(1.0 - 0.2)
    assert res.metrics()["parse_errors"] == 4.0


def test_final_state_graded_task():
    tasks = {t.id: t for t in load_tasks("tool_envs/envs/inventory/tasks.jsonl")}
    task = tasks["inventory_train_0_1"]  # add 8 oranges
    ok = score_episode([[ToolCall("add_stock", {"item": "orange", "quantity": 8})]], task)
    assert ok.success and ok.final_state_ok and ok.score == pytest.approx(1.0)
    # the same final state reached in two calls: the state rule passes, but the ground truth's own result
    # (the stock after adding 8) never appears among the model's results, so BFCL's response rule fails
    two = score_episode([[ToolCall("add_stock", {"item": "orange", "quantity": 5}),
                          ToolCall("add_stock", {"item": "orange", "quantity": 3})]], task)
    assert two.state_ok and two.final_state_ok and not two.response_ok
    assert not two.success and two.error_type == RESPONSE_MISMATCH
    # names 1/2 (a, a vs a); best add_stock: keys 1 + item 1 = 2 -> S = 2.5, S_max = 1 + 3 = 4
    assert two.per_turn[0].call_score == pytest.approx(2.5 / 4)
    wrong = score_episode([[ToolCall("add_stock", {"item": "orange", "quantity": 7})]], task)
    assert not wrong.success and wrong.final_state_ok is False and wrong.error_type == STATE_MISMATCH
    # a task graded by its final state alone
    state_only = Task.from_dict(dict(task.to_dict(), id="state_only", ground_truth={"calls": None, "final_state": task.gt_final_state}))
    res = score_episode([[ToolCall("add_stock", {"item": "orange", "quantity": 7})]], state_only)
    assert res.error_type == FINAL_STATE_MISMATCH and not res.success and res.score == 0.0
    assert score_episode([[ToolCall("add_stock", {"item": "orange", "quantity": 8})]], state_only).success


@pytest.mark.parametrize("bad_call", [
    ToolCall("no_such_tool", {}),
    ToolCall("mkdir", {"dir_name": ["not", "a", "string"]}),
    ToolCall("mkdir", {"unknown_kw": 1}),
    ToolCall("cd", {"__args__": [1, 2, 3, 4]}),
])
def test_malformed_model_calls_never_raise(base0, bad_call):
    steps = _edit(base0, 0, lambda cs: [bad_call] + cs)
    res = score_episode(steps, base0)
    assert isinstance(res.score, float) and 0.0 <= res.score <= 1.0
    assert check_turns(base0, steps)["valid"] in (True, False)


def test_bfcl_entry_dict_input(bfcl):
    entry, answer, task = bfcl["multi_turn_miss_param"][3]
    merged = dict(entry, ground_truth=answer["ground_truth"])
    assert check_turns(merged, gt_steps(task))["valid"]
    with pytest.raises(ValueError, match="has no ground_truth"):
        check_turns(entry, gt_steps(task))


def test_config_as_mapping(base0):
    # the verl agent loop hands the YAML mapping straight through
    res = score_episode([list(t) for t in base0.gt_calls[:3]], base0, {"call_weight": 0, "state_weight": 0,
                                                                       "response_weight": 0, "success_weight": 1})
    assert res.score == 0.0
    with pytest.raises(ValueError, match="valid fields"):
        score_episode([], base0, {"call_wieght": 1})


# --------------------------------------------------------------------------------------------------
# Scoring the runner's recording = replaying the model's calls
# --------------------------------------------------------------------------------------------------
def _episode(task: Task, model_turns: list[list[list[ToolCall]]]):
    """Run ``model_turns`` (one assistant message per step, then a closing answer per turn) through the
    real runner, recording results and per-turn states."""
    import asyncio

    from tool_envs.oracle import TextTokenizer
    from tool_envs.parsing import format_tool_calls
    from tool_envs.registry import env_for_task
    from tool_envs.runner import RunnerConfig, run_episode

    tok = TextTokenizer()
    script = [text for turn in model_turns for text in [format_tool_calls(s, "hermes") for s in turn if s] + ["Done."]]

    async def generate(ids, params):
        new = tok.encode(script.pop(0) if script else "Done.") + [tok.eos_token_id]
        return new, None

    return asyncio.run(run_episode(tokenizer=tok, env=env_for_task(task), task=task, generate=generate,
                                   config=RunnerConfig(max_response_tokens=10**7, max_assistant_turns=10**4)))


def test_recorded_episode_scores_exactly_like_a_replay(bfcl):
    """``score_episode(trajectory)`` reads the recorded results and per-turn states; the result must equal
    re-running the same calls (the reward's path for plain call lists), on right and wrong episodes."""
    rng = random.Random(7)
    n = 0
    for cat, rows in bfcl.items():
        for _, _, task in rng.sample(rows, 5):
            for kind, turns in [("gt", gt_steps(task)), *_corruptions(task, rng).items()]:
                if kind == "drop_turn":  # the runner always plays every turn of the task
                    continue
                traj = _episode(task, turns)
                assert traj.turn_snapshots and all(s is not None for s in traj.turn_snapshots)
                recorded = score_episode(traj, task)
                replayed = score_episode([[list(s.calls) for s in turn] for turn in traj.turns], task)
                assert recorded == replayed, (task.id, kind)
                assert check_turns(task, traj) == check_turns(task, [[list(s.calls) for s in turn] for turn in traj.turns])
                n += 1
    assert n == 4 * 5 * 6
