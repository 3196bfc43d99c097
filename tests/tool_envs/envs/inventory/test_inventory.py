"""The worked-example environment: schema, backend, shipped tasks and the seeded generator."""
from __future__ import annotations

import pathlib

from tool_envs import ToolCall, env_for_task, load_env, load_tasks
from tool_envs.envs.inventory.generate import generate_tasks, split_of

ENV_DIR = pathlib.Path(__file__).resolve().parents[4] / "tool_envs" / "envs" / "inventory"


def _replay(task):
    ep = env_for_task(task).new_episode(task)
    results = [ep.execute(calls) for calls in task.gt_calls]
    return ep, results


def test_tools_and_behaviour():
    env = load_env("inventory")
    assert env.tool_names == ["add_stock", "remove_stock", "check_stock", "list_items"]
    ep = env.new_episode({"initial_state": {"inventory": {"stock": {"apple": 2}}}})
    r = ep.execute([
        ToolCall("add_stock", {"item": "apple", "quantity": "3"}),  # coerced
        ToolCall("remove_stock", {"item": "apple", "quantity": 9}),  # not enough: error, no change
        ToolCall("check_stock", {"item": "apple"}),
        ToolCall("check_stock", {"item": "durian"}),  # not in the enum
    ])
    assert [x.error for x in r] == [False, True, False, True]
    assert "only 5 apple in stock" in r[1].content
    assert r[2].content == '{"item": "apple", "quantity": 5}'
    assert "is not one of" in r[3].content
    assert ep.state()["Inventory"]["stock"]["apple"] == 5


def test_shipped_example_tasks_replay_to_their_final_state():
    tasks = load_tasks(ENV_DIR / "tasks.jsonl")
    assert len(tasks) >= 20
    for t in tasks:
        ep, results = _replay(t)
        assert not any(r.error for turn in results for r in turn), t.id
        assert ep.state() == t.gt_final_state, t.id


def test_generator_is_seeded_and_splits_are_disjoint():
    a = generate_tasks(200, seed=3)
    assert [t.to_dict() for t in a] == [t.to_dict() for t in generate_tasks(200, seed=3)]
    assert [t.to_dict() for t in a] != [t.to_dict() for t in generate_tasks(200, seed=4)]
    held = generate_tasks(100, seed=3, split="heldout")
    train_texts = {m for t in a for m in t.user_texts()}
    held_texts = {m for t in held for m in t.user_texts()}
    assert train_texts and held_texts and not train_texts & held_texts
    assert all(split_of(m) == "heldout" for m in held_texts)
    assert {c.name for t in a for turn in t.gt_calls for c in turn} == {"add_stock", "remove_stock", "check_stock", "list_items"}


def test_generated_multi_turn_tasks_reach_their_final_state():
    for t in generate_tasks(50, seed=1, turns=3):
        assert len(t.turns) == 3 and all(len(c) == 1 for c in t.gt_calls)
        ep, results = _replay(t)
        assert not any(r.error for turn in results for r in turn)
        assert ep.state() == t.gt_final_state
        # a different call leads to a different state (the state check is discriminative)
        other = env_for_task(t).new_episode(t)
        other.execute([ToolCall("add_stock", {"item": "pear", "quantity": 1})])
        assert other.state() != ep.state()


def test_max_quantity_bounds_quantities_and_default_is_unchanged():
    import pytest

    assert [t.to_dict() for t in generate_tasks(60, seed=5)] == [t.to_dict() for t in generate_tasks(60, seed=5, max_quantity=9)]
    easy = generate_tasks(80, seed=5, max_quantity=3)
    qs = {c.arguments["quantity"] for t in easy for turn in t.gt_calls for c in turn if "quantity" in c.arguments}
    assert qs and qs <= {1, 2, 3}
    for t in easy[:20]:
        ep, results = _replay(t)
        assert not any(r.error for turn in results for r in turn)
        assert ep.state() == t.gt_final_state
    with pytest.raises(ValueError):
        generate_tasks(1, max_quantity=0)


def test_larger_quantities_and_stocks_give_harder_tasks_that_replay():
    import pytest

    hard = generate_tasks(200, seed=5, max_quantity=20, max_stock=20)
    qs = {c.arguments["quantity"] for t in hard for turn in t.gt_calls for c in turn if "quantity" in c.arguments}
    sold = {c.arguments["quantity"] for t in hard for turn in t.gt_calls for c in turn if c.name == "remove_stock"}
    assert max(qs) > 9 and max(sold) > 9 and qs <= set(range(1, 21))
    assert len({t.user_texts()[0] for t in hard}) > len({t.user_texts()[0] for t in generate_tasks(200, seed=5)})
    for t in hard[:30]:
        ep, results = _replay(t)
        assert not any(r.error for turn in results for r in turn)
        assert ep.state() == t.gt_final_state
    with pytest.raises(ValueError, match="max_stock"):
        generate_tasks(1, max_stock=0)
    with pytest.raises(ValueError, match="max_quantity"):
        generate_tasks(1, max_quantity=100)
