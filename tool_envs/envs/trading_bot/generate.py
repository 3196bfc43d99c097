"""Seeded training tasks for ``trading_bot`` (BFCL's ``TradingBot``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def trading_scenario(rng: random.Random) -> Scenario:
    sym = rng.choice(["AAPL", "GOOG", "TSLA", "MSFT", "NVDA", "ALPH", "NEPT"])
    cfg = {"watch_list": [], "random_seed": rng.randint(1, 10**6)}
    turns = [
        (f"Add {sym} to my watchlist.", [C("add_to_watchlist", {"stock": sym})]),
        (f"What is {sym} trading at right now?", [C("get_stock_info", {"symbol": sym})]),
    ]
    return ["TradingBot"], cfg, turns


SCENARIOS = {
    "trading": trading_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
