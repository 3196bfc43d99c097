"""`dipo env validate`: schema files checked against their backends, task files replayed through the
training runner and reward, one line per problem (file:line, task id, field, fix), the other files checked
even when one fails to import."""
from __future__ import annotations

import json
import textwrap

import pytest

from tool_envs.cli import main
from tool_envs.registry import BUILTIN_DIR
from reward.validate import validate_files

BACKEND = textwrap.dedent(
    """
    class Shop:
        def __init__(self):
            self.balance = 0
            self.items = {}

        def load(self, state):
            if not isinstance(state.get("balance", 0), int):
                raise ValueError("balance must be an integer")
            self.balance = state.get("balance", 0)

        def deposit(self, amount):
            self.balance += amount
            return {"balance": self.balance}
    """
)

SCHEMA = textwrap.dedent(
    """
    name: shop
    backend: {class: backend.Shop, init_method: load}
    tools:
      - type: function
        function:
          name: deposit
          parameters: {type: object, properties: {amount: {type: integer, minimum: 1}}, required: [amount]}
    """
)


def _task(tid, initial=None, args=None, final=None):
    return {"id": tid, "envs": ["shop"], "initial_state": {"shop": {"balance": 5}} if initial is None else initial,
            "turns": [[{"role": "user", "content": "Deposit 3."}]],
            "ground_truth": {"calls": [[{"name": "deposit", "arguments": args or {"amount": 3}}]], "final_state": final}}


@pytest.fixture()
def shop(tmp_path):
    d = tmp_path / "shop"
    d.mkdir()
    (d / "backend.py").write_text(BACKEND)
    (d / "env.yaml").write_text(SCHEMA)
    return d


def _write_tasks(path, tasks):
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


def test_every_kind_of_task_problem_is_one_line_with_its_fix(shop, capsys):
    tasks = _write_tasks(shop / "tasks.jsonl", [
        _task("ok", final={"Shop": {"balance": 8}}),
        _task("lots", args={"amount": "lots"}),                                # ground truth breaks the schema
        _task("typo_init", initial={"shpo": {"balance": 5}}),                  # misspelled initial_state key
        _task("typo_final", final={"Shop": {"balanse": 8}}),                   # misspelled final_state attribute
        _task("typo_class", final={"Shopp": {"balance": 8}}),                  # misspelled final_state key
        _task("bad_type", initial={"shop": {"balance": "five"}}),              # rejected by the backend's init
        _task("wrong_final", final={"Shop": {"balance": 9}}),                  # fails its own check
        {"id": "broken_line", "envs": ["shop"], "turns": "nope"},              # malformed line
    ])
    code = main(["validate", str(shop / "env.yaml"), str(tasks)])
    out = capsys.readouterr().out
    assert code == 1
    lines = out.strip().splitlines()
    assert lines[0] == f"OK {shop / 'env.yaml'}: environment 'shop', 1 tools, isolation process"
    expect = {
        ":2: task 'lots': ground_truth.calls[0][0].arguments: invalid arguments for `deposit`: 'lots' is not of type 'integer'",
        ":3: task 'typo_init': initial_state.shpo: no environment or backend class named 'shpo'",
        ":4: task 'typo_final': ground_truth.final_state.Shop.balanse: Shop has no public attribute 'balanse'",
        ":5: task 'typo_class': ground_truth.final_state.Shopp: the episode state has no 'Shopp'",
        ":6: task 'bad_type': initial_state: Shop.load rejects it (ValueError: balance must be an integer)",
        ":7: task 'wrong_final': ground_truth: the ground truth fails its own check: multi_turn:final_state_mismatch",
        ":8: task 'broken_line': turns: must be a list of turns",
    }
    for e in expect:
        assert any(e in line and line.startswith(f"ERROR {tasks}") and ". Fix: " in line for line in lines), (e, out)
    assert "Shop.balance: expected 9, got 8" in out
    assert not any("task 'ok'" in line for line in lines)


def test_schema_parameters_must_match_the_backend_method(tmp_path, capsys):
    (tmp_path / "backend.py").write_text("class Pay:\n    def pay(self, amount, currency):\n        return amount\n")
    (tmp_path / "env.yaml").write_text(textwrap.dedent("""
        name: pay
        backend: {class: backend.Pay}
        tools:
          - type: function
            function:
              name: pay
              parameters: {type: object, properties: {amt: {type: integer}, currency: {type: string}}, required: [amt]}
        """))
    assert main(["validate", str(tmp_path / "env.yaml")]) == 1
    out = capsys.readouterr().out
    assert "$.tools[0].function.parameters.properties.amt: Pay.pay does not accept a parameter 'amt' (it takes: amount, currency)" in out
    assert "required parameter 'amount' of Pay.pay is not in the schema" in out
    assert "$.tools[0].function.parameters.required: parameter 'currency' of Pay.pay has no default but the schema does not require it" in out


def test_a_file_that_fails_to_import_does_not_stop_the_others(tmp_path, shop, capsys):
    (tmp_path / "bad.yaml").write_text("name: bad\nbackend: {class: not_there.Thing}\ntools:\n"
                                       "  - {type: function, function: {name: x, parameters: {type: object}}}\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('import-time bug')\n")
    (tmp_path / "raises.yaml").write_text("name: raises\nbackend: {class: raises.Thing}\ntools:\n"
                                          "  - {type: function, function: {name: x, parameters: {type: object}}}\n")
    tasks = _write_tasks(shop / "tasks.jsonl", [_task("ok", final={"Shop": {"balance": 8}})])
    code = main(["validate", str(tmp_path / "bad.yaml"), str(tmp_path / "raises.yaml"), str(shop / "env.yaml"), str(tasks)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith(f"ERROR {tmp_path / 'bad.yaml'}: $.backend.class: cannot import 'not_there.Thing'")
    assert "Fix: put the module next to the schema file" in out[0]
    assert "RuntimeError: import-time bug" in out[1]
    assert out[2].startswith("OK ") and out[3] == f"OK {tasks}: 1 tasks replayed: the ground truth passes its own check"


def test_process_isolated_backend_must_pickle(tmp_path, capsys):
    (tmp_path / "backend.py").write_text("import threading\n\nclass Locked:\n    def __init__(self):\n"
                                         "        self.lock = threading.Lock()\n\n    def go(self):\n        return 1\n")
    (tmp_path / "env.yaml").write_text("name: locked\nbackend: {class: backend.Locked}\ntools:\n"
                                       "  - {type: function, function: {name: go, parameters: {type: object}}}\n")
    assert main(["validate", str(tmp_path / "env.yaml")]) == 1
    assert "$.isolation: a Locked cannot be pickled" in capsys.readouterr().out
    (tmp_path / "env.yaml").write_text("name: locked\nisolation: thread\nbackend: {class: backend.Locked}\ntools:\n"
                                       "  - {type: function, function: {name: go, parameters: {type: object}}}\n")
    assert main(["validate", str(tmp_path / "env.yaml")]) == 0


def test_builtin_tasks_and_a_thousand_generated_ones_validate(tmp_path):
    from tool_envs.envs.inventory.generate import generate_tasks
    from tool_envs.tasks import save_tasks

    save_tasks(generate_tasks(1000, seed=5, turns=2), tmp_path / "inv.jsonl")
    results = validate_files([BUILTIN_DIR / "inventory" / "env.yaml", BUILTIN_DIR / "inventory" / "tasks.jsonl", tmp_path / "inv.jsonl"])
    assert [problems for _, _, problems in results] == [[], [], []]
    assert results[2][1] == "1000 tasks replayed: the ground truth passes its own check"


def test_a_wrong_generated_task_is_caught(tmp_path):
    """The replay is what catches it: the fields are all well-formed."""
    from tool_envs.envs.inventory.generate import generate_tasks
    from tool_envs.tasks import save_tasks

    tasks = generate_tasks(20, seed=1)
    bad = tasks[7]
    bad.ground_truth["final_state"]["Inventory"]["stock"]["apple"] += 1
    save_tasks(tasks, tmp_path / "inv.jsonl")
    (_, _, problems), = validate_files([tmp_path / "inv.jsonl"])
    assert [(p.task_id, p.field) for p in problems] == [(bad.id, "ground_truth")]
    assert "Inventory.stock.apple: expected" in problems[0].problem
