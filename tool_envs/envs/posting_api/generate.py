"""Seeded training tasks for ``posting_api`` (BFCL's ``TwitterAPI``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, WORDS, TOPICS, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def twitter_scenario(rng: random.Random) -> Scenario:
    user = rng.choice(WORDS) + str(rng.randint(1, 999))
    pw = rng.choice(WORDS) + str(rng.randint(1000, 9999))
    topic = rng.choice(TOPICS)
    tag = "#" + rng.choice(WORDS)
    cfg = {"username": user, "password": pw, "authenticated": False, "tweets": {}, "comments": {}, "retweets": {}, "following_list": [], "tweet_counter": rng.randint(0, 20)}
    tid = cfg["tweet_counter"]
    turns = [
        (f"Sign in to Twitter with username {user} and password {pw}, then post 'Notes from the {topic}' tagged {tag}.", [C("authenticate_twitter", {"username": user, "password": pw}), C("post_tweet", {"content": f"Notes from the {topic}", "tags": [tag]})]),
        ("Comment 'More soon.' on that tweet.", [C("comment", {"tweet_id": tid, "comment_content": "More soon."})]),
    ]
    return ["TwitterAPI"], cfg, turns


SCENARIOS = {
    "twitter": twitter_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
