"""A new user's environment kept outside the repository, as the tutorial describes it: a folder with
``env.yaml``, ``backend.py`` and ``tasks.jsonl``. It validates, plays with the oracle and trains, with no
PYTHONPATH pointing at it; tasks name it by name through the environment search path."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

BACKEND = textwrap.dedent(
    """
    from .prices import PRICES  # a sibling module, imported relative to the package of this folder


    class Kiosk:
        def __init__(self):
            self.cash = 0
            self.sold = {}

        def open(self, state):
            self.cash = int(state.get("cash", 0))

        def sell(self, item, count):
            if item not in PRICES:
                raise ValueError(f"we do not sell {item}")
            self.sold[item] = self.sold.get(item, 0) + count
            self.cash += PRICES[item] * count
            return {"cash": self.cash}

        def cash_report(self):
            return {"cash": self.cash}
    """
)

SCHEMA = textwrap.dedent(
    """
    name: kiosk
    description: A newspaper kiosk.
    backend: {class: backend.Kiosk, init_method: open}
    limits: {max_turns: 3, call_timeout_s: 5}
    tools:
      - type: function
        function:
          name: sell
          description: Sell newspapers or magazines.
          parameters:
            type: object
            properties:
              item: {type: string, enum: [paper, magazine]}
              count: {type: integer, minimum: 1, maximum: 9}
            required: [item, count]
      - type: function
        function:
          name: cash_report
          description: How much cash is in the till.
          parameters: {type: object, properties: {}}
    """
)


@pytest.fixture()
def kiosk(tmp_path):
    """The user's folder, and the tasks written with the task builder (final states computed by execution)."""
    from tool_envs.oracle import with_final_state
    from tool_envs.registry import registered
    from tool_envs.schema import load_spec
    from tool_envs.tasks import Task, save_tasks
    from tool_envs.types import ToolCall

    d = tmp_path / "kiosk"
    d.mkdir()
    (d / "backend.py").write_text(BACKEND)
    (d / "prices.py").write_text("PRICES = {'paper': 2, 'magazine': 5}\n")
    (d / "env.yaml").write_text(SCHEMA)
    tasks = []
    for i in range(6):
        item, count = ("paper", "magazine")[i % 2], 1 + i % 3
        tasks.append(Task(id=f"k{i}", envs=["kiosk"], initial_state={"kiosk": {"cash": 10 * i}},
                          turns=[[{"role": "user", "content": f"Sell {count} {item}."}]],
                          ground_truth={"calls": [[ToolCall("sell", {"item": item, "count": count})]], "final_state": None}))
    with registered([load_spec(d / "env.yaml")]):
        save_tasks([with_final_state(t) for t in tasks], d / "tasks.jsonl")
    assert str(d) not in sys.path and not any(str(d) in p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep))
    return d


def _cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k != "TOOL_ENVS_PATH"}
    env["PYTHONPATH"] = str(REPO)  # the project only: nothing points at the user's folder
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "dipo_tools.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=str(REPO))


def test_built_tasks_carry_their_final_state(kiosk):
    rows = [json.loads(line) for line in (kiosk / "tasks.jsonl").read_text().splitlines()]
    assert rows[1]["ground_truth"]["final_state"] == {"Kiosk": {"cash": 20, "sold": {"magazine": 2}}}


def test_validates_and_plays_with_the_oracle_from_the_command_line(kiosk):
    # tasks name the environment "kiosk": the task file's own folder is on the search path
    r = _cli("env", "validate", str(kiosk / "env.yaml"), str(kiosk / "tasks.jsonl"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"OK {kiosk / 'tasks.jsonl'}: 6 tasks replayed" in r.stdout
    r = _cli("env", "play", "kiosk", "--tasks", str(kiosk / "tasks.jsonl"), "--task-id", "k1", "--policy", "oracle")
    assert r.returncode == 0, r.stdout + r.stderr
    assert '[tool sell] {"cash": 20}' in r.stdout and "reward: score=1.000 success=True" in r.stdout
    # by name from anywhere, through $TOOL_ENVS_PATH (the folder that holds kiosk/)
    r = _cli("env", "play", "kiosk", "--state", '{"kiosk": {"cash": 3}}', env_extra={"TOOL_ENVS_PATH": str(kiosk.parent)})
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "dipo_tools.cli", "env", "play", "kiosk", "--state", '{"kiosk": {"cash": 3}}'],
                       input='sell {"item": "paper", "count": 2}\n', capture_output=True, text=True, timeout=300, cwd=str(REPO),
                       env={**os.environ, "PYTHONPATH": str(REPO), "TOOL_ENVS_PATH": str(kiosk.parent)})
    assert 'sell -> {"cash": 7}' in r.stdout, r.stderr
    # without the search path the error is one line naming the fix
    r = _cli("env", "play", "kiosk")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "TOOL_ENVS_PATH" in r.stderr


@pytest.mark.slow
def test_trains_with_the_local_engine(kiosk, tmp_path):
    from dipo_tools.engines.config import load_config
    from dipo_tools.engines.local import run_training
    from tool_envs.registry import set_env_path

    cfg = load_config(None, [
        f"data.train_file={kiosk / 'tasks.jsonl'}", f"data.eval_file={kiosk / 'tasks.jsonl'}", "data.num_eval=2",
        f"data.env_path=[{kiosk.parent}]", "model.preset=test", "model.vocab_size=400", "sft.steps=2",
        "trainer.total_steps=2", "trainer.eval_every=2", "trainer.progress=false", "trainer.tensorboard=false",
        "trainer.plots=false", f"trainer.output_dir={tmp_path / 'run'}", "rollout.tasks_per_step=2", "rollout.group_size=2",
        "rollout.max_new_tokens=16", "rollout.max_response_tokens=64", "rollout.runner.pass_tools_to_template=false",
        "rollout.system_prompt='Tools: sell(item, count), cash_report().'",
    ])
    try:
        out = run_training(cfg)
    finally:
        set_env_path([])
    assert out["steps"] == 2 and out["checkpoint"].endswith("step_000002")
    last = out["rows"][-1]
    assert "train/reward" in last and "eval/success" in last
    assert str(kiosk) not in sys.path
