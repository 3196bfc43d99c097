"""Seeded training tasks for ``message_api`` (BFCL's ``MessageAPI``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, PEOPLE, TOPICS, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def message_scenario(rng: random.Random) -> Scenario:
    me, friend = rng.sample(PEOPLE, 2)
    ids = {p: f"USR{100 + i}" for i, p in enumerate(PEOPLE)}
    cfg = {"user_count": len(ids), "user_map": ids, "inbox": [{ids[friend]: f"About the {rng.choice(TOPICS)}?"}], "message_count": 1, "current_user": None, "random_seed": rng.randint(1, 10**6)}
    topic = rng.choice(TOPICS)
    turns = [
        (f"Log me in as {me}, my user id is {ids[me]}.", [C("message_login", {"user_id": ids[me]})]),
        (f"Find {friend}'s user id and send them: 'Are we still on for the {topic}?'", [C("get_user_id", {"user": friend}), C("send_message", {"receiver_id": ids[friend], "message": f"Are we still on for the {topic}?"})]),
        ("Show me the messages I have sent.", [C("view_messages_sent", {})]),
    ]
    return ["MessageAPI"], cfg, turns[: rng.randint(2, 3)]


SCENARIOS = {
    "message": message_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
