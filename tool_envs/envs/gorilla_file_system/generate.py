"""Seeded training tasks for ``gorilla_file_system`` (BFCL's ``GorillaFileSystem``): fresh initial states and templated requests.

None of them is a BFCL test entry (``tool_envs.bfcl_train.check_contamination`` checks); the ground truth's
final state comes from executing it. Registered in ``env.json`` as this environment's ``generator``.
"""
from __future__ import annotations

import random

from tool_envs.bfcl_scenarios import C, WORDS, TOPICS, Scenario, scenario_tasks, split_seed
from tool_envs.tasks import Task


def files_scenario(rng: random.Random) -> Scenario:
    project = rng.choice(WORDS) + "_" + rng.choice(WORDS)
    notes = f"{rng.choice(WORDS)}_notes.txt"
    words = rng.sample(WORDS, 4)
    content = "\n".join(words)
    new_dir = rng.choice(["archive", "drafts", "backup", "old", "review"]) + str(rng.randint(1, 99))
    cfg = {"root": {"home": {"type": "directory", "contents": {project: {"type": "directory", "contents": {notes: {"type": "file", "content": content}}}}}}}
    turns = [
        (f"Go into the {project} folder and create a directory called {new_dir}.", [C("cd", {"folder": project}), C("mkdir", {"dir_name": new_dir})]),
        (f"Move {notes} into {new_dir}.", [C("mv", {"source": notes, "destination": new_dir})]),
        (f"Open {new_dir} and show me how {notes} looks with its lines sorted.", [C("cd", {"folder": new_dir}), C("sort", {"file_name": notes})]),
    ]
    return ["GorillaFileSystem"], cfg, turns[: rng.randint(2, 3)]


def files_write_scenario(rng: random.Random) -> Scenario:
    fname = f"{rng.choice(WORDS)}_{rng.randint(10, 99)}.md"
    text = f"{rng.choice(TOPICS)} at {rng.randint(1, 12)} pm"
    cfg = {"root": {"desk": {"type": "directory", "contents": {"readme.txt": {"type": "file", "content": "hello"}}}}}
    turns = [
        (f"Create a file named {fname} and write '{text}' into it.", [C("touch", {"file_name": fname}), C("echo", {"content": text, "file_name": fname})]),
        (f"How many words are in {fname}?", [C("wc", {"file_name": fname, "mode": "w"})]),
    ]
    return ["GorillaFileSystem"], cfg, turns


SCENARIOS = {
    "files": files_scenario,
    "files_write": files_write_scenario,
}


def generate_tasks(n: int, seed: int = 0, split: str = "train") -> list[Task]:
    """``n`` tasks cycling through :data:`SCENARIOS`; ``split="heldout"`` draws from a separate stream."""
    return scenario_tasks(SCENARIOS, n, split_seed(seed, split))
