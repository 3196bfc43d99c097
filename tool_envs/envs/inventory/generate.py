"""Seeded task generator for the ``inventory`` environment (train / held-out splits).

Requests are short, pick the tool by keyword ("add", "sell", "how many", "list") and take arguments from
a closed set (8 items, quantities 1-9), which a tiny model can learn on CPU. Ground-truth calls are
executed in a real episode to get the expected final state, so tasks can be scored by calls or by state.

The split is by request text: a stable hash sends about 1 in 5 distinct requests to ``heldout``, so no
held-out request ever appears in training.

    python -m tool_envs.envs.inventory.generate --n 2000 --split train --seed 0 train.jsonl
"""
from __future__ import annotations

import argparse
import hashlib
import random
from typing import Sequence

from tool_envs.envs.inventory.backend import ITEMS
from tool_envs.registry import load_env
from tool_envs.tasks import Task, save_tasks
from tool_envs.types import ToolCall

PLURAL = {"cherry": "cherries", "mango": "mangoes"}
TEMPLATES: dict[str, tuple[str, ...]] = {
    "add_stock": (
        "Add {q} {items} to the inventory.",
        "We received {q} {items}, please add them.",
        "Restock {item}: add {q} units.",
        "Put {q} more {items} on the shelf.",
    ),
    "remove_stock": (
        "Remove {q} {items} from the inventory.",
        "We sold {q} {items}, please remove them.",
        "Sell {q} {items}.",
        "Take {q} {items} out of stock.",
    ),
    "check_stock": (
        "How many {items} do we have?",
        "Check the stock of {item}.",
        "How many {item} units are in stock?",
    ),
    "list_items": (
        "List all items in stock.",
        "Show me the whole inventory.",
        "What do we have in stock?",
    ),
}
HELDOUT_EVERY = 5


def split_of(request: str) -> str:
    h = int(hashlib.sha256(request.encode()).hexdigest()[:8], 16)
    return "heldout" if h % HELDOUT_EVERY == 0 else "train"


def _request(rng: random.Random, stock: dict[str, int], max_quantity: int = 9, max_stock: int = 9) -> tuple[str, ToolCall]:
    tool = rng.choice(sorted(TEMPLATES))
    template = rng.choice(TEMPLATES[tool])
    item = rng.choice(ITEMS)
    if tool == "remove_stock":
        if stock[item] == 0:
            stock[item] = rng.randint(1, max_stock)  # make the sale possible; GT never relies on an error
        q = rng.randint(1, min(max_quantity, stock[item]))
    else:
        q = rng.randint(1, max_quantity)
    text = template.format(q=q, item=item, items=item if q == 1 else PLURAL.get(item, item + "s"))
    args = {"item": item, "quantity": q} if tool in ("add_stock", "remove_stock") else {"item": item} if tool == "check_stock" else {}
    return text, ToolCall(tool, args)


def generate_tasks(n: int, seed: int = 0, split: str = "train", turns: int = 1, prefix: str | None = None,
                   max_quantity: int = 9, max_stock: int = 9) -> list[Task]:
    """``n`` tasks of the given split (``train`` or ``heldout``), each with ``turns`` user turns.

    ``max_quantity`` (1-99) bounds the quantities in requests and ``max_stock`` (1-99) the starting stock
    of an item, hence the quantities sold. The defaults (9, 9) reproduce the original tasks exactly; a
    smaller ``max_quantity`` gives an easier task (fewer values to copy from the request), larger values
    a harder one with many more distinct requests (e.g. enough unseen texts for a large held-out set).

    Deterministic for a given (n, seed, split, turns). Every turn has exactly one GT call; the GT final
    state comes from executing the calls.
    """
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', not {split!r}")
    if n < 0 or turns < 1:
        raise ValueError("n must be >= 0 and turns >= 1")
    if not 1 <= max_quantity <= 99:
        raise ValueError(f"max_quantity must be in 1..99 (the schema's maximum), not {max_quantity!r}")
    if not 1 <= max_stock <= 99:
        raise ValueError(f"max_stock must be in 1..99, not {max_stock!r}")
    rng = random.Random(f"inventory:{seed}:{split}:{turns}")
    env = load_env("inventory")
    tasks: list[Task] = []
    attempts = 0
    while len(tasks) < n:
        attempts += 1
        if attempts > 1000 * (n + 1):
            raise RuntimeError("could not generate enough distinct tasks for this split")
        stock = {item: rng.randint(0, max_stock) for item in ITEMS}
        initial = dict(stock)
        msgs, calls = [], []
        for _ in range(turns):
            text, call = _request(rng, stock, max_quantity, max_stock)
            msgs.append(text)
            calls.append(call)
            if call.name == "add_stock":
                stock[call.arguments["item"]] += call.arguments["quantity"]
            elif call.name == "remove_stock":
                stock[call.arguments["item"]] -= call.arguments["quantity"]
        if any(split_of(m) != split for m in msgs):
            continue
        # _request may have raised a stock level to make a sale possible: keep the initial state consistent.
        task_initial = {"inventory": {"stock": _initial_with_bumps(initial, msgs, calls)}}
        task = Task(
            id=f"{prefix or 'inventory_' + split}_{seed}_{len(tasks)}",
            envs=["inventory"],
            initial_state=task_initial,
            turns=[[{"role": "user", "content": m}] for m in msgs],
            ground_truth={"calls": [[c] for c in calls], "final_state": None},
            source=f"generated:inventory:{split}",
            metadata={"split": split, "seed": seed},
        )
        ep = env.new_episode(task)
        for c in calls:
            res = ep.execute([c])
            assert not res[0].error, res[0].content  # generated GT must succeed
        task.ground_truth["final_state"] = ep.state()
        tasks.append(task)
    return tasks


def _initial_with_bumps(initial: dict[str, int], msgs: Sequence[str], calls: Sequence[ToolCall]) -> dict[str, int]:
    """The starting stock that makes every GT sale possible (replays the calls and lifts shortfalls)."""
    start = dict(initial)
    level = dict(initial)
    for c in calls:
        item, q = c.arguments.get("item"), c.arguments.get("quantity", 0)
        if c.name == "add_stock":
            level[item] += q
        elif c.name == "remove_stock":
            if level[item] < q:
                start[item] += q - level[item]
                level[item] = q
            level[item] -= q
    return start


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tool_envs.envs.inventory.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .jsonl file")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", choices=("train", "heldout"), default="train")
    ap.add_argument("--turns", type=int, default=1)
    a = ap.parse_args(argv)
    print(f"wrote {save_tasks(generate_tasks(a.n, a.seed, a.split, a.turns), a.out)} tasks to {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
