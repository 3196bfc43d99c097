"""Task JSONL format: round trip and validation errors naming file, line, field and fix."""
from __future__ import annotations

import json

import pytest

from tool_envs import Task, TaskError, ToolCall, load_tasks, save_tasks

GOOD = {
    "id": "t1",
    "envs": ["inventory"],
    "initial_state": {"inventory": {"stock": {"apple": 1}}},
    "turns": [[{"role": "user", "content": "Add 2 apples."}], [{"role": "user", "content": "And 1 pear."}]],
    "ground_truth": {"calls": [[{"name": "add_stock", "arguments": {"item": "apple", "quantity": 2}}], []], "final_state": None},
    "missed_functions": {"1": ["list_items"]},
    "system_prompt": "be brief",
    "long_context": False,
    "source": "unit",
    "metadata": {"k": 1},
}


def test_round_trip(tmp_path):
    t = Task.from_dict(GOOD)
    assert t.gt_calls == [[ToolCall("add_stock", {"item": "apple", "quantity": 2})], []]
    assert t.missed_functions == {1: ["list_items"]}
    p = tmp_path / "sub" / "tasks.jsonl"
    assert save_tasks([t, Task.from_dict({**GOOD, "id": "t2"})], p) == 2
    back = load_tasks(p)
    assert [x.id for x in back] == ["t1", "t2"]
    assert back[0].to_dict() == t.to_dict()
    assert back[0].user_texts() == ["Add 2 apples.", "And 1 pear."]


@pytest.mark.parametrize(
    "patch, field, words",
    [
        ({"id": ""}, "id", "non-empty string"),
        ({"envs": []}, "envs", "non-empty list"),
        ({"turns": "hi"}, "turns", "list of turns"),
        ({"turns": [[{"role": "user"}]]}, "turns[0][0]", "string `role` and `content`"),
        ({"ground_truth": {"calls": [[]]}}, "ground_truth.calls", "one list of calls per turn"),
        ({"ground_truth": {"calls": [[{"arguments": {}}], []]}}, "ground_truth.calls[0][0]", "string `name`"),
        ({"ground_truth": {"calls": None, "final": {}}}, "ground_truth.final", "unknown field"),
        ({"missed_functions": {"9": ["x"]}}, "missed_functions.9", "turn index"),
        ({"long_context": "yes"}, "long_context", "has type str"),
        ({"colour": 1}, "colour", "unknown field"),
    ],
)
def test_bad_task_lines_name_file_line_field(tmp_path, patch, field, words):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(GOOD) + "\n\n" + json.dumps({**GOOD, "id": "t2", **patch}) + "\n")
    with pytest.raises(TaskError) as ei:
        load_tasks(p)
    msg = str(ei.value)
    assert msg.startswith(f"{p}:3: {field}: "), msg
    assert words in msg and "Fix:" in msg


def test_missing_required_invalid_json_and_duplicates(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text(json.dumps({k: v for k, v in GOOD.items() if k != "turns"}) + "\n")
    with pytest.raises(TaskError, match=r":1: turns: required field is missing"):
        load_tasks(p)
    p.write_text("{not json\n")
    with pytest.raises(TaskError, match=r":1: \$: not valid JSON"):
        load_tasks(p)
    p.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(TaskError, match=r":2: id: duplicate id 't1' \(first on line 1\)"):
        load_tasks(p)
    with pytest.raises(TaskError, match="file not found"):
        load_tasks(tmp_path / "nope.jsonl")
