"""Every environment is playable by its ground truth (``dipo env play --policy oracle``) and tasks get their
final state by execution (``dipo env build-tasks``)."""
from __future__ import annotations

import json

import pytest

from tool_envs.cli import main
from reward.oracle import run_oracle
from tool_envs.oracle import TextTokenizer, with_final_state
from tool_envs.registry import BUILTIN_DIR, list_envs
from tool_envs.tasks import load_tasks, save_tasks


def test_text_tokenizer_round_trips_and_renders_tools():
    tok = TextTokenizer()
    text = "<|im_start|>user\nÄpfel: 3 <tool_call>{}</tool_call><|im_end|>\n"
    ids = tok.encode(text)
    assert tok.decode(ids) == text and ids.count(tok.eos_token_id) == 1
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tools=[{"type": "function", "function": {"name": "f"}}],
                                       add_generation_prompt=True)
    assert '<tools>\n{"type": "function", "function": {"name": "f"}}\n</tools>' in rendered
    assert rendered.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def task_files(tmp_path_factory, bfcl_tasks):
    """One task file per built-in environment: inventory's own, and BFCL tasks of each backend."""
    d = tmp_path_factory.mktemp("oracle")
    files = {"inventory": BUILTIN_DIR / "inventory" / "tasks.jsonl"}
    for name in list_envs():
        if name != "inventory":
            picked = [t for t in bfcl_tasks if name in t.envs][:2]
            save_tasks(picked, d / f"{name}.jsonl")
            files[name] = d / f"{name}.jsonl"
    return files


def test_every_builtin_environment_plays_its_ground_truth(task_files, capsys):
    assert len(task_files) == 9
    for name, path in task_files.items():
        task = load_tasks(path)[-1]
        code = main(["play", name, "--tasks", str(path), "--task-id", task.id, "--policy", "oracle"])
        out = capsys.readouterr().out
        assert code == 0, (name, out)
        assert "[user] " in out and "[assistant] <tool_call>" in out and "[tool " in out, name
        assert "reward: score=1.000 success=True" in out and "components: calls=1.000" in out, (name, out[-500:])


def test_oracle_of_a_wrong_task_reports_the_failing_turn(tmp_path, capsys):
    task = load_tasks(BUILTIN_DIR / "inventory" / "tasks.jsonl")[1]
    task.ground_truth["final_state"]["Inventory"]["stock"]["orange"] = 0
    save_tasks([task], tmp_path / "t.jsonl")
    assert main(["play", "inventory", "--tasks", str(tmp_path / "t.jsonl"), "--policy", "oracle"]) == 1
    out = capsys.readouterr().out
    assert "success=False (multi_turn:final_state_mismatch" in out and "final_state_ok=False" in out


def test_build_tasks_computes_final_states_by_execution(tmp_path, capsys):
    shipped = load_tasks(BUILTIN_DIR / "inventory" / "tasks.jsonl")
    bare = tmp_path / "bare.jsonl"
    bare.write_text("".join(json.dumps({**t.to_dict(), "ground_truth": {"calls": t.to_dict()["ground_truth"]["calls"], "final_state": None}}) + "\n"
                            for t in shipped))
    assert main(["build-tasks", str(bare), str(tmp_path / "built.jsonl")]) == 0
    assert "wrote 24 tasks" in capsys.readouterr().out
    built = load_tasks(tmp_path / "built.jsonl")
    assert [t.gt_final_state for t in built] == [t.gt_final_state for t in shipped]  # generate.py's, by execution too
    assert all(run_oracle(t).reward.final_state_ok for t in built[:5])


def test_build_tasks_on_multi_backend_bfcl_tasks(bfcl_tasks):
    task = next(t for t in bfcl_tasks if len(t.envs) == 2 and not t.missed_functions)
    built = with_final_state(task)
    assert set(built.gt_final_state) == {c for c in task.metadata["involved_classes"]}
    assert run_oracle(built).reward.success


def test_play_errors_are_one_line(tmp_path, capsys):
    assert main(["play", "inventory", "--policy", "oracle"]) == 2
    assert main(["play", "inventory", "--tasks", str(BUILTIN_DIR / "inventory" / "tasks.jsonl"), "--task-id", "nope"]) == 2
    assert main(["play", "no_such_env"]) == 2
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("error: ") for line in err)
    assert "give --tasks FILE" in err[0] and "no task with id 'nope'" in err[1] and "unknown environment 'no_such_env'" in err[2]
