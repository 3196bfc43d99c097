"""Generated MathAPI tasks: seeded, split by request text, graded by BFCL's checker, not BFCL test data."""
from __future__ import annotations

import pytest

from reward.multi_turn import score_episode
from tool_envs.envs.math_api.generate import generate_tasks, split_of
from tool_envs.types import ToolCall


def test_seeded_and_splits_never_share_a_request():
    a = generate_tasks(120, seed=3, turns=2)
    assert [t.to_dict() for t in a] == [t.to_dict() for t in generate_tasks(120, seed=3, turns=2)]
    held = generate_tasks(60, seed=3, split="heldout", turns=2)
    train_requests = {tuple(t.user_texts()) for t in a}
    assert not train_requests & {tuple(t.user_texts()) for t in held}
    assert all(split_of(t.user_texts()) == "heldout" for t in held)
    assert all(t.envs == ["math_api"] and t.source.startswith("generated:") for t in a + held)


def test_the_follow_up_uses_the_first_result_and_the_checker_grades_it():
    for t in generate_tasks(40, seed=1, turns=2, answer=True):
        first, second = t.gt_calls[0][0], t.gt_calls[1][0]
        ops = {"add": lambda x, y: x + y, "subtract": lambda x, y: x - y, "multiply": lambda x, y: x * y}
        value = ops[first.name](first.arguments["a"], first.arguments["b"])
        assert second.arguments["a"] == value  # only available from the tool output of turn 1
        assert str(value) not in t.user_texts()[1]
        assert t.metadata["answer"] == str(ops[second.name](value, second.arguments["b"]))
        assert t.metadata["reference_reply"] == f"Answer: {t.metadata['answer']}"
        assert score_episode(t.gt_calls, t).success
        wrong = [t.gt_calls[0], [ToolCall(second.name, {"a": value + 1, "b": second.arguments["b"]})]]
        assert not score_episode(wrong, t).success


def test_bad_arguments():
    with pytest.raises(ValueError, match="ops"):
        generate_tasks(1, ops=("divide",))
    with pytest.raises(ValueError, match="split"):
        generate_tasks(1, split="test")
