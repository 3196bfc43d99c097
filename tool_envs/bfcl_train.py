"""Training tasks over the BFCL backends that are NOT BFCL test entries, and a contamination guard.

Training on BFCL's own 800 multi-turn entries would contaminate every BFCL score reported later, so
:func:`generate_bfcl_training_tasks` builds new tasks: fresh initial states (names, files, numbers drawn
from vocabularies of our own) and templated multi-turn requests. Ground truth is computed by executing
the calls through our executor; a task whose GT call errors is a generator bug and raises.

:func:`check_contamination` refuses (raises :class:`ContaminationError`) a training set that contains a
BFCL test question, a BFCL ground-truth call sequence, or a BFCL initial configuration.

    python -m tool_envs.bfcl_train --n 500 --seed 0 out.jsonl
"""
from __future__ import annotations

import argparse
import functools
import json
import random
import re
from typing import Callable, Iterable, Sequence

from tool_envs.bfcl import MULTI_TURN_CATEGORIES, bfcl_env_name, load_bfcl_entries, parse_gt_turn
from tool_envs.registry import env_for_task
from tool_envs.tasks import Task, save_tasks
from tool_envs.types import ToolCall

C = ToolCall
Scenario = tuple[list[str], dict, list[tuple[str, list[ToolCall]]]]

_WORDS = ["amber", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kelp", "lumen", "maple", "nimbus", "onyx", "prairie", "quartz", "russet", "sierra", "tundra"]
_PEOPLE = ["Priya", "Mateo", "Yuki", "Oluwaseun", "Ingrid", "Tomasz", "Leila", "Anders", "Chiara", "Kwame"]
_TOPICS = ["quarterly plan", "garden party", "bike repair", "book club", "server migration", "team lunch", "lab results", "flight delay"]


def _fs(rng: random.Random) -> Scenario:
    project = rng.choice(_WORDS) + "_" + rng.choice(_WORDS)
    notes = f"{rng.choice(_WORDS)}_notes.txt"
    words = rng.sample(_WORDS, 4)
    content = "\n".join(words)
    new_dir = rng.choice(["archive", "drafts", "backup", "old", "review"]) + str(rng.randint(1, 99))
    cfg = {"root": {"home": {"type": "directory", "contents": {project: {"type": "directory", "contents": {notes: {"type": "file", "content": content}}}}}}}
    turns = [
        (f"Go into the {project} folder and create a directory called {new_dir}.", [C("cd", {"folder": project}), C("mkdir", {"dir_name": new_dir})]),
        (f"Move {notes} into {new_dir}.", [C("mv", {"source": notes, "destination": new_dir})]),
        (f"Open {new_dir} and show me how {notes} looks with its lines sorted.", [C("cd", {"folder": new_dir}), C("sort", {"file_name": notes})]),
    ]
    return ["GorillaFileSystem"], cfg, turns[: rng.randint(2, 3)]


def _fs_write(rng: random.Random) -> Scenario:
    fname = f"{rng.choice(_WORDS)}_{rng.randint(10, 99)}.md"
    text = f"{rng.choice(_TOPICS)} at {rng.randint(1, 12)} pm"
    cfg = {"root": {"desk": {"type": "directory", "contents": {"readme.txt": {"type": "file", "content": "hello"}}}}}
    turns = [
        (f"Create a file named {fname} and write '{text}' into it.", [C("touch", {"file_name": fname}), C("echo", {"content": text, "file_name": fname})]),
        (f"How many words are in {fname}?", [C("wc", {"file_name": fname, "mode": "w"})]),
    ]
    return ["GorillaFileSystem"], cfg, turns


def _math(rng: random.Random) -> Scenario:
    nums = [rng.randint(2, 500) for _ in range(rng.randint(3, 6))]
    a, b = rng.randint(3, 999), rng.randint(2, 99)
    turns = [
        (f"What is the average of {', '.join(map(str, nums))}?", [C("mean", {"numbers": nums})]),
        (f"Multiply {a} by {b}.", [C("multiply", {"a": a, "b": b})]),
        (f"And the square root of {a * b}, to 3 decimal places?", [C("square_root", {"number": a * b, "precision": 3})]),
    ]
    return ["MathAPI"], {}, turns[: rng.randint(2, 3)]


def _message(rng: random.Random) -> Scenario:
    me, friend = rng.sample(_PEOPLE, 2)
    ids = {p: f"USR{100 + i}" for i, p in enumerate(_PEOPLE)}
    cfg = {"user_count": len(ids), "user_map": ids, "inbox": [{ids[friend]: f"About the {rng.choice(_TOPICS)}?"}], "message_count": 1, "current_user": None, "random_seed": rng.randint(1, 10**6)}
    topic = rng.choice(_TOPICS)
    turns = [
        (f"Log me in as {me}, my user id is {ids[me]}.", [C("message_login", {"user_id": ids[me]})]),
        (f"Find {friend}'s user id and send them: 'Are we still on for the {topic}?'", [C("get_user_id", {"user": friend}), C("send_message", {"receiver_id": ids[friend], "message": f"Are we still on for the {topic}?"})]),
        ("Show me the messages I have sent.", [C("view_messages_sent", {})]),
    ]
    return ["MessageAPI"], cfg, turns[: rng.randint(2, 3)]


def _twitter(rng: random.Random) -> Scenario:
    user = rng.choice(_WORDS) + str(rng.randint(1, 999))
    pw = rng.choice(_WORDS) + str(rng.randint(1000, 9999))
    topic = rng.choice(_TOPICS)
    tag = "#" + rng.choice(_WORDS)
    cfg = {"username": user, "password": pw, "authenticated": False, "tweets": {}, "comments": {}, "retweets": {}, "following_list": [], "tweet_counter": rng.randint(0, 20)}
    tid = cfg["tweet_counter"]
    turns = [
        (f"Sign in to Twitter with username {user} and password {pw}, then post 'Notes from the {topic}' tagged {tag}.", [C("authenticate_twitter", {"username": user, "password": pw}), C("post_tweet", {"content": f"Notes from the {topic}", "tags": [tag]})]),
        ("Comment 'More soon.' on that tweet.", [C("comment", {"tweet_id": tid, "comment_content": "More soon."})]),
    ]
    return ["TwitterAPI"], cfg, turns


def _ticket(rng: random.Random) -> Scenario:
    user = rng.choice(_PEOPLE)
    title = f"{rng.choice(_TOPICS).title()} issue"
    prio = rng.randint(1, 5)
    start = rng.randint(1, 50)
    cfg = {"ticket_queue": [], "ticket_counter": start, "current_user": user}
    turns = [
        (f"Open a ticket titled '{title}' with priority {prio}, description 'reported by {user}'.", [C("create_ticket", {"title": title, "description": f"reported by {user}", "priority": prio})]),
        (f"Resolve ticket {start} with the note 'fixed on site'.", [C("resolve_ticket", {"ticket_id": start, "resolution": "fixed on site"})]),
    ]
    return ["TicketAPI"], cfg, turns


def _vehicle(rng: random.Random) -> Scenario:
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


def _trading(rng: random.Random) -> Scenario:
    sym = rng.choice(["AAPL", "GOOG", "TSLA", "MSFT", "NVDA", "ALPH", "NEPT"])
    cfg = {"watch_list": [], "random_seed": rng.randint(1, 10**6)}
    turns = [
        (f"Add {sym} to my watchlist.", [C("add_to_watchlist", {"stock": sym})]),
        (f"What is {sym} trading at right now?", [C("get_stock_info", {"symbol": sym})]),
    ]
    return ["TradingBot"], cfg, turns


def _travel(rng: random.Random) -> Scenario:
    city = rng.choice(["Rivermist", "Stonebrook", "Maplecrest", "Silverpine", "Shadowridge", "London", "Paris"])
    cur = rng.choice(["EUR", "JPY", "GBP", "CAD", "AUD", "INR"])
    amount = rng.randint(20, 5000)
    cfg = {"random_seed": rng.randint(1, 10**6)}
    turns = [
        (f"Which airport is closest to {city}?", [C("get_nearest_airport_by_city", {"location": city})]),
        (f"How much is {amount} USD in {cur}?", [C("compute_exchange_rate", {"base_currency": "USD", "target_currency": cur, "value": amount})]),
    ]
    return ["TravelAPI"], cfg, turns


def _math_files(rng: random.Random) -> Scenario:
    """Two backends in one task: read numbers from a file, then compute."""
    nums = [rng.randint(1, 90) for _ in range(4)]
    fname = f"{rng.choice(_WORDS)}_scores.txt"
    cfg = {"GorillaFileSystem": {"root": {"data": {"type": "directory", "contents": {fname: {"type": "file", "content": " ".join(map(str, nums))}}}}}}
    turns = [
        (f"Show me what is in {fname}.", [C("cat", {"file_name": fname})]),
        ("Add up those numbers for me.", [C("sum_values", {"numbers": nums})]),
    ]
    return ["GorillaFileSystem", "MathAPI"], cfg, turns


SCENARIOS: dict[str, Callable[[random.Random], Scenario]] = {
    "files": _fs,
    "files_write": _fs_write,
    "math": _math,
    "message": _message,
    "twitter": _twitter,
    "ticket": _ticket,
    "vehicle": _vehicle,
    "trading": _trading,
    "travel": _travel,
    "files_math": _math_files,
}


def _result_failed(content: str, error: bool) -> bool:
    if error:
        return True
    try:
        obj = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return False
    return isinstance(obj, dict) and "error" in obj


def generate_bfcl_training_tasks(n: int, seed: int = 0, scenarios: Sequence[str] | None = None) -> list[Task]:
    """``n`` training tasks cycling through ``scenarios`` (all by default), deterministic in ``seed``.

    Every task is checked with :func:`check_contamination`-style rules against the BFCL test set by the
    caller (:func:`check_contamination`); GT final state comes from executing the calls.
    """
    names = list(scenarios or SCENARIOS)
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown:
        raise ValueError(f"unknown scenarios {unknown}; choose from {sorted(SCENARIOS)}")
    rng = random.Random(f"bfcl-train:{seed}")
    tasks = []
    for i in range(n):
        kind = names[i % len(names)]
        tasks.append(scenario_task(f"bfcl_train_{seed}_{i}_{kind}", kind, SCENARIOS[kind](rng), seed))
    return tasks


def scenario_task(task_id: str, kind: str, scenario: Scenario, seed: int) -> Task:
    """A task from one drawn scenario, its ground truth executed through our executor to get the final
    state; a ground-truth call that errors is a generator bug and raises."""
    classes, cfg, turns = scenario
    initial = cfg if set(cfg) <= set(classes) and cfg else ({classes[0]: cfg} if cfg else {})
    task = Task(
        id=task_id,
        envs=[bfcl_env_name(c) for c in classes],
        initial_state=initial,
        turns=[[{"role": "user", "content": text}] for text, _ in turns],
        ground_truth={"calls": [calls for _, calls in turns], "final_state": None},
        source=f"generated:bfcl_train:{kind}",
        metadata={"scenario": kind, "seed": seed, "involved_classes": classes},
    )
    ep = env_for_task(task).new_episode(task)
    for t, calls in enumerate(task.gt_calls):
        for call, res in zip(calls, ep.execute(calls)):
            if _result_failed(res.content, res.error):
                raise RuntimeError(f"generator bug: scenario {kind!r} turn {t} call {call} failed: {res.content[:200]}")
    task.ground_truth["final_state"] = ep.state()
    return task


# --- contamination guard -----------------------------------------------------------------------------


class ContaminationError(ValueError):
    """A training set overlaps the BFCL test set."""


def _norm_text(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip().lower()


def _calls_key(calls: Iterable[ToolCall]) -> str:
    return json.dumps([[c.name, c.arguments] for c in calls], sort_keys=True, default=str)


@functools.lru_cache(maxsize=1)
def _bfcl_fingerprints() -> tuple[frozenset, frozenset, frozenset, frozenset]:
    questions, turn_gts, entry_gts, configs = set(), set(), set(), set()
    for cat in MULTI_TURN_CATEGORIES:
        for q, a in load_bfcl_entries(cat):
            for turn in q["question"]:
                for m in turn:
                    if m.get("role") == "user" and m.get("content", "").strip():
                        questions.add(_norm_text(m["content"]))
            parsed = [parse_gt_turn(t, q["involved_classes"]) for t in a["ground_truth"]]
            for calls in parsed:
                if len(calls) >= 2:  # single calls like ls() coincide innocently
                    turn_gts.add(_calls_key(calls))
            entry_gts.add(json.dumps([json.loads(_calls_key(c)) for c in parsed], sort_keys=True))
            for cls, cfg in q.get("initial_config", {}).items():
                if cfg:
                    configs.add(json.dumps({cls: cfg}, sort_keys=True))
    return frozenset(questions), frozenset(turn_gts), frozenset(entry_gts), frozenset(configs)


def contamination_report(tasks: Iterable[Task]) -> list[str]:
    """One line per overlap with the BFCL multi-turn test set (empty = clean)."""
    questions, turn_gts, entry_gts, configs = _bfcl_fingerprints()
    problems = []
    for t in tasks:
        if t.id.startswith("multi_turn_") or t.source.startswith("bfcl_v"):
            problems.append(f"{t.id}: is a BFCL test entry (id/source)")
            continue
        for text in t.user_texts():
            if _norm_text(text) in questions:
                problems.append(f"{t.id}: user message is a BFCL test question: {text[:80]!r}")
        calls = t.gt_calls or []
        for ti, turn in enumerate(calls):
            if len(turn) >= 2 and _calls_key(turn) in turn_gts:
                problems.append(f"{t.id}: ground_truth.calls[{ti}] equals a BFCL ground-truth turn")
        if calls and json.dumps([json.loads(_calls_key(c)) for c in calls], sort_keys=True) in entry_gts:
            problems.append(f"{t.id}: ground truth equals a BFCL entry's ground truth")
        for key, cfg in t.initial_state.items():
            if cfg and json.dumps({key: cfg}, sort_keys=True) in configs:
                problems.append(f"{t.id}: initial_state[{key!r}] equals a BFCL test initial_config")
    return problems


def check_contamination(tasks: Iterable[Task]) -> None:
    """Raise :class:`ContaminationError` if any task overlaps the BFCL multi-turn test set."""
    problems = contamination_report(tasks)
    if problems:
        more = f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""
        raise ContaminationError("training set overlaps BFCL test data; remove these tasks:\n  " + "\n  ".join(problems[:10]) + more)


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
