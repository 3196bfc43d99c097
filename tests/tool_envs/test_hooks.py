"""Environment hooks: the generic checks apply BFCL's rule without bfcl-eval, the BFCL environments get
bfcl-eval's own checkers, and scoring a non-BFCL episode never imports bfcl-eval."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tool_envs import load_env
from tool_envs.bfcl import BFCL_HOOK
from tool_envs.env import ToolEnv
from tool_envs.hooks import GENERIC_HOOK
from tool_envs.types import ToolCall


def test_builtin_envs_name_their_hook():
    assert load_env("inventory").hook is GENERIC_HOOK
    assert load_env("ticket_api").hook is BFCL_HOOK
    mixed = ToolEnv([load_env("inventory").specs[0], load_env("ticket_api").specs[0]])
    assert mixed.hook is BFCL_HOOK  # only one family names a hook
    with pytest.raises(ValueError, match="different hooks"):
        import dataclasses
        other = dataclasses.replace(load_env("inventory").specs[0], hook="tool_envs.hooks:GENERIC_HOOK")
        _ = ToolEnv([other, load_env("ticket_api").specs[0]]).hook


@pytest.mark.parametrize("calls", [
    [],                                                              # untouched state
    [ToolCall("add_stock", {"item": "apple", "quantity": 3})],       # one attribute differs
])
def test_generic_state_check_agrees_with_bfcl_eval(calls):
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import state_checker

    env = load_env("inventory")
    task = {"initial_state": {"inventory": {"stock": {"apple": 2}}}}
    model, gt = env.new_episode(task, isolation="thread"), env.new_episode(task, isolation="thread")
    model.execute(calls)
    ours, theirs = GENERIC_HOOK.state_check(model.backends, gt.backends), state_checker(model.backends, gt.backends)
    assert ours["valid"] == theirs["valid"] == (not calls)
    if calls:
        assert ours["error_type"] == theirs["error_type"] and ours["error_message"] == theirs["error_message"]
        assert ours["details"]["differences"] == theirs["details"]["differences"]


@pytest.mark.parametrize("model, gt", [
    (["a", "b"], ["b"]), (["a"], ["a", "a"]), ([], ["x"]), (["x", "x", "y"], ["x", "y", "x"]), (["q"], []),
])
def test_generic_response_check_agrees_with_bfcl_eval(model, gt):
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import response_checker

    ours, theirs = GENERIC_HOOK.response_check(model, gt, 2), response_checker(model, gt, 2)
    assert ours["valid"] == theirs["valid"]
    if not ours["valid"]:
        assert ours["error_message"] == theirs["error_message"]
        assert ours["details"]["missing_items"] == theirs["details"]["missing_items"]


def test_scoring_a_non_bfcl_episode_never_imports_bfcl_eval():
    code = textwrap.dedent("""
        import asyncio, sys
        from reward.multi_turn import score_episode
        from reward.oracle import run_oracle
        from tool_envs import load_tasks
        task = load_tasks("tool_envs/envs/inventory/tasks.jsonl")[1]
        assert run_oracle(task).reward.success
        assert score_episode(task.gt_calls, task.to_dict()).success  # a dict task: entry formats are asked too
        print(sorted(m for m in sys.modules if m.startswith("bfcl_eval")))
    """)
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
