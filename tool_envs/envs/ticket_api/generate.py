"""Seeded training tasks for ``ticket_api`` (BFCL's ``TicketAPI``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, PEOPLE, TOPICS, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def ticket_scenario(rng: random.Random) -> Scenario:
    user = rng.choice(PEOPLE)
    title = f"{rng.choice(TOPICS).title()} issue"
    prio = rng.randint(1, 5)
    start = rng.randint(1, 50)
    cfg = {"ticket_queue": [], "ticket_counter": start, "current_user": user}
    turns = [
        (f"Open a ticket titled '{title}' with priority {prio}, description 'reported by {user}'.", [C("create_ticket", {"title": title, "description": f"reported by {user}", "priority": prio})]),
        (f"Resolve ticket {start} with the note 'fixed on site'.", [C("resolve_ticket", {"ticket_id": start, "resolution": "fixed on site"})]),
    ]
    return ["TicketAPI"], cfg, turns


SCENARIOS = {
    "ticket": ticket_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
