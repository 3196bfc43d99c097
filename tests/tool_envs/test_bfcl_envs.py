"""BFCL V3 multi-turn backends through our executor, checked with bfcl-eval's own checkers."""
from __future__ import annotations

import asyncio
import json
import uuid


from tool_envs import ToolCall, env_for_task, list_envs, load_env
from reward.multi_turn import check_turns
from tool_envs.bfcl import BFCL_V3_CLASSES, bfcl_env_name, replay_ground_truth


def _gt_steps(task):
    return [[calls] if calls else [] for calls in task.gt_calls]


def test_eight_builtin_bfcl_envs_with_class_aliases():
    names = list_envs()
    for cls in BFCL_V3_CLASSES:
        assert bfcl_env_name(cls) in names
        env = load_env(cls)
        assert env.name == bfcl_env_name(cls)
        assert env.specs[0].backend.class_name == cls
    assert sum(len(load_env(c).tools) for c in BFCL_V3_CLASSES) == 128


def test_gt_replay_results_identical_to_bfcl_executor(bfcl_tasks):
    """Every GT call's result string equals bfcl-eval's eval-based executor output (unique model names,
    its module globals cleaned afterwards)."""
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils as mu

    n_calls = 0
    for task in bfcl_tasks:
        _, ours = replay_ground_truth(task)
        name = "envtest" + uuid.uuid4().hex[:10]
        try:
            for t, strings in enumerate(task.metadata["gt_strings"]):
                ref, _ = mu.execute_multi_turn_func_call(
                    strings, task.initial_state, task.metadata["involved_classes"], name, task.id, long_context=task.long_context
                )
                assert [r.content for r in ours[t]] == ref, (task.id, t)
                n_calls += len(strings)
        finally:
            for k in [k for k in vars(mu) if k.startswith(name)]:
                del vars(mu)[k]
    assert n_calls == 4625


def test_gt_passes_bfcl_checkers_800_of_800(bfcl_tasks):
    verdicts = [check_turns(t, _gt_steps(t), details=False) for t in bfcl_tasks]
    failed = [(t.id, v) for t, v in zip(bfcl_tasks, verdicts) if not v["valid"]]
    assert failed == []
    assert len(verdicts) == 800


def _replace_arg(task, turn, call_idx, key, value):
    steps = _gt_steps(task)
    call = steps[turn][0][call_idx]
    steps[turn][0] = list(steps[turn][0])
    steps[turn][0][call_idx] = ToolCall(call.name, {**call.arguments, key: value})
    return steps


def test_corrupted_argument_fails_state_check(bfcl_by_id):
    task = bfcl_by_id["multi_turn_base_0"]
    first = task.gt_calls[0]
    idx = next(i for i, c in enumerate(first) if c.name == "mkdir")
    res = check_turns(task, _replace_arg(task, 0, idx, "dir_name", "tmp"))
    assert res["valid"] is False
    assert res["error_type"] == "multi_turn:instance_state_mismatch"


def test_dropped_read_only_call_fails_response_check(bfcl_by_id):
    task = bfcl_by_id["multi_turn_base_0"]
    steps = _gt_steps(task)
    steps[1] = [[c for c in steps[1][0] if c.name != "grep"]]
    res = check_turns(task, steps)
    assert res["error_type"] == "multi_turn:execution_response_mismatch"


def test_empty_turn_and_turn_count(bfcl_by_id):
    task = bfcl_by_id["multi_turn_base_0"]
    steps = _gt_steps(task)
    assert check_turns(task, steps[:-1])["error_type"] == "multi_turn:force_terminated"
    steps[0] = []
    assert check_turns(task, steps)["error_type"] == "multi_turn:empty_turn_model_response"


def test_extra_harmless_call_still_valid(bfcl_by_id):
    task = bfcl_by_id["multi_turn_base_0"]
    steps = _gt_steps(task)
    steps[0] = [[ToolCall("ls", {})]] + steps[0]
    assert check_turns(task, steps)["valid"] is True


def test_verdicts_match_bfcl_multi_turn_checker_on_corruptions(bfcl_tasks):
    """On corrupted GT (one argument changed per entry) our verdicts equal multi_turn_checker's."""
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils as mu
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    from tool_envs.parsing import format_tool_calls

    sample = [t for t in bfcl_tasks if t.id.endswith(("_1", "_7", "_42", "_99", "_150"))]
    checked = 0
    for task in sample:
        steps = _gt_steps(task)
        # corrupt the first string argument found
        for t, turn in enumerate(steps):
            hit = next(((i, k) for i, c in enumerate(turn[0] if turn else []) for k, v in c.arguments.items() if isinstance(v, str)), None)
            if hit:
                steps = _replace_arg(task, t, hit[0], hit[1], "corrupted_value_x")
                break
        ours = check_turns(task, steps)
        decoded = [[[format_tool_calls([c], "python").strip("[]") for c in step][:] for step in turn] for turn in steps]
        decoded = [[[s for s in step] for step in turn] for turn in decoded]
        name = "envtest" + uuid.uuid4().hex[:10]
        entry = {"id": task.id, "initial_config": task.initial_state, "involved_classes": task.metadata["involved_classes"]}
        try:
            ref = multi_turn_checker(decoded, task.metadata["gt_strings"], entry, task.metadata["bfcl_category"], name)
        finally:
            for k in [k for k in vars(mu) if k.startswith(name)]:
                del vars(mu)[k]
        assert ours["valid"] == ref["valid"], task.id
        assert ours.get("error_type") == ref.get("error_type"), task.id
        checked += 1
    assert checked == 20


def test_episodes_are_isolated_and_state_is_json(bfcl_by_id):
    task = bfcl_by_id["multi_turn_base_0"]
    env = env_for_task(task)
    a, b = env.new_episode(task), env.new_episode(task)
    a.execute([ToolCall("cd", {"folder": "document"}), ToolCall("mkdir", {"dir_name": "only_in_a"})])
    assert "only_in_a" in json.dumps(a.state())
    assert "only_in_a" not in json.dumps(b.state())
    assert set(a.backends) == {"GorillaFileSystem", "TwitterAPI"}
    json.dumps(a.state())  # JSON-able, no parent back-references


def test_long_context_loads_filler(bfcl_by_id):
    base, long = bfcl_by_id["multi_turn_base_0"], bfcl_by_id["multi_turn_long_context_0"]
    assert long.long_context and not base.long_context
    s_base = json.dumps(env_for_task(base).new_episode(base).state())
    s_long = json.dumps(env_for_task(long).new_episode(long).state())
    assert len(s_long) > len(s_base)


def test_miss_func_hide_and_reveal(bfcl_tasks):
    task = next(t for t in bfcl_tasks if t.missed_functions)
    (turn, names), = task.missed_functions.items()
    assert task.turns[turn][0]["content"].startswith("I have updated some more functions")
    ep = env_for_task(task).new_episode(task, block_hidden=True)
    visible = {t["function"]["name"] for t in ep.tools}
    assert not set(names) & visible
    res = ep.execute([ToolCall(names[0], {})])
    assert res[0].error and "unknown tool" in res[0].content
    assert set(ep.reveal(names)) == set(names)
    assert set(names) <= {t["function"]["name"] for t in ep.tools}
    # BFCL default: hidden tools are not shown but still run when guessed
    ep2 = env_for_task(task).new_episode(task)
    assert not set(names) & {t["function"]["name"] for t in ep2.tools}
    assert "unknown tool" not in ep2.execute([ToolCall(names[0], {})])[0].content


async def test_64_concurrent_episodes_end_in_independent_correct_states(bfcl_by_id):
    """64 episodes of one task run concurrently (threads via asyncio); half replay the GT, half a
    corrupted variant; each ends in exactly its own sequential reference state."""
    task = bfcl_by_id["multi_turn_base_0"]
    env = env_for_task(task)
    good = [list(t) for t in task.gt_calls]
    bad = [list(t) for t in task.gt_calls]
    i = next(i for i, c in enumerate(bad[0]) if c.name == "mkdir")
    bad[0][i] = ToolCall("mkdir", {"dir_name": "other"})

    def run(turns, k):
        ep = env.new_episode(task)
        for calls in turns:
            for c in calls:  # one call per step, interleaving with other threads
                ep.execute([c])
        return k, ep.state()

    ref_good, ref_bad = run(good, -1)[1], run(bad, -2)[1]
    assert ref_good != ref_bad
    results = await asyncio.gather(*(asyncio.to_thread(run, good if k % 2 else bad, k) for k in range(64)))
    for k, state in results:
        assert state == (ref_good if k % 2 else ref_bad), k


def test_backends_never_receive_the_callers_objects(bfcl_by_id):
    """post_tweet stores its `mentions` list and mention() appends to it: without copying, the task's
    ground-truth arguments would change between episodes and later verdicts would flip."""
    from tool_envs.bfcl import bfcl_entry_to_task, load_bfcl_entries

    task = bfcl_by_id["multi_turn_base_147"]
    before = [[dict(c.arguments) for c in turn] for turn in task.gt_calls]
    for _ in range(2):
        ep, _ = replay_ground_truth(task)
        assert check_turns(task, _gt_steps(task))["valid"]
    assert [[dict(c.arguments) for c in turn] for turn in task.gt_calls] == before
    fresh = next(bfcl_entry_to_task(q, a) for q, a in load_bfcl_entries("multi_turn_base") if q["id"] == task.id)
    assert fresh.gt_calls == task.gt_calls


def test_reveal_message_is_bfcl_constant():
    from bfcl_eval.constants.default_prompts import DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC

    from tool_envs.bfcl import MISSED_FUNCTION_MESSAGE

    assert MISSED_FUNCTION_MESSAGE == DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
    # the runner takes it from the environment's hook: every BFCL class names the BFCL hook
    assert {load_env(cls).hook.reveal_message for cls in BFCL_V3_CLASSES} == {MISSED_FUNCTION_MESSAGE}
