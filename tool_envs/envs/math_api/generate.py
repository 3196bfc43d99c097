"""Seeded training tasks over BFCL's ``MathAPI`` backend: arithmetic requests that need a tool call.

Not BFCL test entries: the requests are our own templates with random operands, built through
:func:`tool_envs.bfcl_train.scenario_task` (ground truth executed by our executor) and passed through
:func:`tool_envs.bfcl_train.check_contamination`.

* ``turns=1``: "Multiply 23 by 7." -> ``multiply(a=23, b=7)``.
* ``turns=2``: a follow-up that needs the first result, read from the tool output: "Now add 15 to that."
  -> ``add(a=161, b=15)``. BFCL-style multi-turn: the second call's argument is in no user message.
* ``answer=True``: the task also carries the final number (``metadata.answer``) and the reply that states
  it (``metadata.reference_reply``, ``Answer: 176``), for ``reward.name=math`` (math-verify on the final
  message: tool-integrated arithmetic, where only the stated answer counts).

The split is by request text, as for ``inventory``: a stable hash sends about 1 in 5 distinct requests to
``heldout``, so no held-out request ever appears in training.

    python -m tool_envs.envs.math_api.generate --n 1000 --split train --turns 2 train.jsonl
"""
from __future__ import annotations

import argparse
import random
from typing import Callable, Sequence

from tool_envs.bfcl_scenarios import C, Scenario, check_contamination, scenario_task
from tool_envs.envs.inventory.generate import split_of as split_of_text
from tool_envs.tasks import Task, save_tasks
from tool_envs.types import ToolCall

FIRST: dict[str, tuple[str, ...]] = {
    "add": ("Add {a} and {b}.", "What is {a} plus {b}?", "Compute the sum of {a} and {b}."),
    "subtract": ("Subtract {b} from {a}.", "What is {a} minus {b}?", "Take {b} away from {a}."),
    "multiply": ("Multiply {a} by {b}.", "What is {a} times {b}?", "Compute the product of {a} and {b}."),
}
FOLLOW_UP: dict[str, tuple[str, ...]] = {
    "add": ("Now add {b} to that.", "Then add {b} to the result."),
    "subtract": ("Now subtract {b} from that.", "Then take {b} away from the result."),
    "multiply": ("Now multiply that by {b}.", "Then multiply the result by {b}."),
}
APPLY: dict[str, Callable[[int, int], int]] = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b,
                                               "multiply": lambda a, b: a * b}


def split_of(texts: Sequence[str]) -> str:
    """The split of a whole request (every turn's text), by the same stable hash as ``inventory``."""
    return split_of_text("\n".join(texts))


def _scenario(rng: random.Random, turns: int, max_number: int, ops: Sequence[str]) -> tuple[Scenario, int]:
    op = rng.choice(ops)
    a, b = rng.randint(2, max_number), rng.randint(2, max_number)
    value = APPLY[op](a, b)
    steps = [(rng.choice(FIRST[op]).format(a=a, b=b), [ToolCall(op, {"a": a, "b": b})])]
    for _ in range(turns - 1):
        op = rng.choice(ops)
        b = rng.randint(2, max_number)
        steps.append((rng.choice(FOLLOW_UP[op]).format(b=b), [ToolCall(op, {"a": value, "b": b})]))
        value = APPLY[op](value, b)
    return (["MathAPI"], {}, steps), value


def bfcl_math_scenario(rng: random.Random) -> Scenario:
    nums = [rng.randint(2, 500) for _ in range(rng.randint(3, 6))]
    a, b = rng.randint(3, 999), rng.randint(2, 99)
    turns = [
        (f"What is the average of {', '.join(map(str, nums))}?", [C("mean", {"numbers": nums})]),
        (f"Multiply {a} by {b}.", [C("multiply", {"a": a, "b": b})]),
        (f"And the square root of {a * b}, to 3 decimal places?", [C("square_root", {"number": a * b, "precision": 3})]),
    ]
    return ["MathAPI"], {}, turns[: rng.randint(2, 3)]


def generate_tasks(n: int, seed: int = 0, split: str = "train", turns: int = 1, max_number: int = 99,
                   ops: Sequence[str] = ("add", "subtract", "multiply"), answer: bool = False) -> list[Task]:
    """``n`` tasks of the given split (``train`` or ``heldout``), deterministic in all arguments.

    ``max_number`` bounds the operands (2..max_number): larger means more digits to copy and more distinct
    requests. ``ops`` restricts the operations; ``turns`` adds follow-ups on the previous result.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    if n < 0 or turns < 1 or max_number < 2:
        raise ValueError("n must be >= 0, turns >= 1 and max_number >= 2")
    unknown = sorted(set(ops) - set(APPLY))
    if unknown or not ops:
        raise ValueError(f"ops {list(ops)}: choose among {sorted(APPLY)}")
    rng = random.Random(f"math_api:{seed}:{split}:{turns}:{max_number}:{','.join(ops)}")
    tasks: list[Task] = []
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 1000 * (n + 1):
            raise RuntimeError("could not generate enough tasks for this split")
        scenario, value = _scenario(rng, turns, max_number, list(ops))
        if split_of([text for text, _ in scenario[2]]) != split:
            continue
        task = scenario_task(f"math_api_{split}_{seed}_{len(tasks)}", "arithmetic", scenario, seed)
        task.metadata["split"] = split
        if answer:
            task.metadata.update(answer=str(value), reference_reply=f"Answer: {value}")
        tasks.append(task)
    check_contamination(tasks)
    return tasks


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs.envs.math_api.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .jsonl file")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("train", "heldout"), default="train")
    ap.add_argument("--turns", type=int, default=1)
    ap.add_argument("--max-number", type=int, default=99)
    ap.add_argument("--answer", action="store_true", help="add metadata.answer / reference_reply (reward.name=math)")
    a = ap.parse_args(argv)
    tasks = generate_tasks(a.n, a.seed, a.split, a.turns, a.max_number, answer=a.answer)
    print(f"wrote {save_tasks(tasks, a.out)} tasks to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
