"""Training tasks over BFCL backends, and the contamination guard."""
from __future__ import annotations

import dataclasses

import pytest

from tool_envs import ToolCall, env_for_task, load_tasks, save_tasks
from tool_envs.bfcl_train import SCENARIOS, ContaminationError, check_contamination, contamination_report, generate_bfcl_training_tasks


@pytest.fixture(scope="module")
def train_tasks():
    return generate_bfcl_training_tasks(2 * len(SCENARIOS), seed=0)


def test_generated_tasks_are_clean_deterministic_and_replay(train_tasks, tmp_path):
    check_contamination(train_tasks)  # does not raise
    again = generate_bfcl_training_tasks(2 * len(SCENARIOS), seed=0)
    assert [t.to_dict() for t in again] == [t.to_dict() for t in train_tasks]
    assert {t.metadata["scenario"] for t in train_tasks} == set(SCENARIOS)
    classes = {c for t in train_tasks for c in t.metadata["involved_classes"]}
    assert len(classes) == 8
    p = tmp_path / "train.jsonl"
    save_tasks(train_tasks, p)
    for t in load_tasks(p):
        ep = env_for_task(t).new_episode(t)
        for calls in t.gt_calls:
            assert not any(r.error for r in ep.execute(calls))
        assert ep.state() == t.gt_final_state, t.id


def test_guard_refuses_bfcl_questions_ground_truths_and_entries(train_tasks, bfcl_tasks):
    base = train_tasks[0]
    bfcl = next(t for t in bfcl_tasks if t.id == "multi_turn_base_0")
    leaked_q = dataclasses.replace(base, id="leak_q", turns=[[{"role": "user", "content": "  " + bfcl.turns[1][0]["content"].upper()}]] + base.turns[1:])
    two_call_turn = next(c for c in bfcl.gt_calls if len(c) >= 2)
    leaked_gt = dataclasses.replace(base, id="leak_gt", ground_truth={"calls": [two_call_turn] + base.gt_calls[1:], "final_state": None})
    leaked_cfg = dataclasses.replace(base, id="leak_cfg", initial_state={"GorillaFileSystem": bfcl.initial_state["GorillaFileSystem"]})
    report = contamination_report([base, leaked_q, leaked_gt, leaked_cfg, bfcl])
    assert any(r.startswith("leak_q: user message is a BFCL test question") for r in report)
    assert any(r.startswith("leak_gt: ground_truth.calls[0] equals a BFCL ground-truth turn") for r in report)
    assert any(r.startswith("leak_cfg: initial_state['GorillaFileSystem'] equals a BFCL test initial_config") for r in report)
    assert any(r.startswith("multi_turn_base_0: is a BFCL test entry") for r in report)
    assert not any(r.startswith(base.id + ":") for r in report)
    with pytest.raises(ContaminationError, match="leak_q"):
        check_contamination([base, leaked_q])


def test_single_common_call_is_not_flagged(train_tasks):
    t = dataclasses.replace(train_tasks[0], id="ls_only", ground_truth={"calls": [[ToolCall("ls", {})]] + train_tasks[0].gt_calls[1:], "final_state": None})
    assert contamination_report([t]) == []
