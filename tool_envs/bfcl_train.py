"""Training tasks over the BFCL backends that are NOT BFCL test entries, and a contamination guard.

Training on BFCL's own 800 multi-turn entries would contaminate every BFCL score reported later, so
:func:`generate_bfcl_training_tasks` builds new tasks: fresh initial states (names, files, numbers drawn
from vocabularies of our own) and templated multi-turn requests. Each scenario lives in its environment's
folder (``tool_envs/envs/<name>/generate.py``, that environment's registered generator); this module mixes
them, plus one scenario that spans two backends. Ground truth is computed by executing
the calls through our executor; a task whose GT call errors is a generator bug and raises.

:func:`check_contamination` refuses (raises :class:`ContaminationError`) a training set that contains a
BFCL test question, a BFCL ground-truth call sequence, or a BFCL initial configuration.

    python -m tool_envs.bfcl_train --n 500 --seed 0 out.jsonl
"""
from __future__ import annotations

import argparse
import random
from typing import Sequence

from tool_envs.bfcl_scenarios import (  # noqa: F401 - re-exported: the guard's public names
    WORDS,
    C,
    ContaminationError,
    Scenario,
    ScenarioFn,
    check_contamination,
    contamination_report,
    scenario_task,
    scenario_tasks,
)
from tool_envs.envs.gorilla_file_system.generate import files_scenario, files_write_scenario
from tool_envs.envs.math_api.generate import bfcl_math_scenario
from tool_envs.envs.message_api.generate import message_scenario
from tool_envs.envs.posting_api.generate import twitter_scenario
from tool_envs.envs.ticket_api.generate import ticket_scenario
from tool_envs.envs.trading_bot.generate import trading_scenario
from tool_envs.envs.travel_booking.generate import travel_scenario
from tool_envs.envs.vehicle_control.generate import vehicle_scenario
from tool_envs.tasks import Task, save_tasks


def _math_files(rng: random.Random) -> Scenario:
    """Two backends in one task: read numbers from a file, then compute."""
    nums = [rng.randint(1, 90) for _ in range(4)]
    fname = f"{rng.choice(WORDS)}_scores.txt"
    cfg = {"GorillaFileSystem": {"root": {"data": {"type": "directory", "contents": {fname: {"type": "file", "content": " ".join(map(str, nums))}}}}}}
    turns = [
        (f"Show me what is in {fname}.", [C("cat", {"file_name": fname})]),
        ("Add up those numbers for me.", [C("sum_values", {"numbers": nums})]),
    ]
    return ["GorillaFileSystem", "MathAPI"], cfg, turns


#: Every scenario, in the order :func:`generate_bfcl_training_tasks` cycles through them.
SCENARIOS: dict[str, ScenarioFn] = {
    "files": files_scenario,
    "files_write": files_write_scenario,
    "math": bfcl_math_scenario,
    "message": message_scenario,
    "twitter": twitter_scenario,
    "ticket": ticket_scenario,
    "vehicle": vehicle_scenario,
    "trading": trading_scenario,
    "travel": travel_scenario,
    "files_math": _math_files,
}


def generate_bfcl_training_tasks(n: int, seed: int = 0, scenarios: Sequence[str] | None = None) -> list[Task]:
    """``n`` training tasks cycling through ``scenarios`` (all by default), deterministic in ``seed``.

    Check them with :func:`check_contamination` against the BFCL test set; the ground truth's final state
    comes from executing the calls.
    """
    names = list(scenarios or SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; choose from {sorted(SCENARIOS)}")
    return scenario_tasks({k: SCENARIOS[k] for k in names}, n, seed)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs.bfcl_train", description="Generate BFCL-backend training tasks (contamination-checked).")
    ap.add_argument("out")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scenarios", nargs="+", default=None, choices=sorted(SCENARIOS))
    a = ap.parse_args(argv)
    tasks = generate_bfcl_training_tasks(a.n, a.seed, a.scenarios)
    check_contamination(tasks)
    print(f"wrote {save_tasks(tasks, a.out)} tasks to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
