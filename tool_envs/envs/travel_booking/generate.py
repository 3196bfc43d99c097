"""Seeded training tasks for ``travel_booking`` (BFCL's ``TravelAPI``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def travel_scenario(rng: random.Random) -> Scenario:
    city = rng.choice(["Rivermist", "Stonebrook", "Maplecrest", "Silverpine", "Shadowridge", "London", "Paris"])
    cur = rng.choice(["EUR", "JPY", "GBP", "CAD", "AUD", "INR"])
    amount = rng.randint(20, 5000)
    cfg = {"random_seed": rng.randint(1, 10**6)}
    turns = [
        (f"Which airport is closest to {city}?", [C("get_nearest_airport_by_city", {"location": city})]),
        (f"How much is {amount} USD in {cur}?", [C("compute_exchange_rate", {"base_currency": "USD", "target_currency": cur, "value": amount})]),
    ]
    return ["TravelAPI"], cfg, turns


SCENARIOS = {
    "travel": travel_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
