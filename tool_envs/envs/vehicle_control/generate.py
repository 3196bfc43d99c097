"""Seeded training tasks for ``vehicle_control`` (BFCL's ``VehicleControlAPI``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def vehicle_scenario(rng: random.Random) -> Scenario:
    fuel = rng.randint(5, 20)
    add = rng.randint(5, 20)
    temp = rng.randint(17, 26)
    cfg = {"fuelLevel": float(fuel), "engine_state": "stopped", "random_seed": rng.randint(1, 10**6)}
    turns = [
        (f"Add {add} gallons of fuel.", [C("fillFuelTank", {"fuelAmount": add})]),
        ("Lock all four doors.", [C("lockDoors", {"unlock": False, "door": ["driver", "passenger", "rear_left", "rear_right"]})]),
        (f"Set the cabin to {temp} degrees Celsius.", [C("adjustClimateControl", {"temperature": temp, "unit": "celsius"})]),
        ("Turn the headlights on.", [C("setHeadlights", {"mode": "on"})]),
    ]
    rng.shuffle(turns)
    return ["VehicleControlAPI"], cfg, turns[: rng.randint(2, 3)]


SCENARIOS = {
    "vehicle": vehicle_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
