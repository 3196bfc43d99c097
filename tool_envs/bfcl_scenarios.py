"""Shared pieces of the BFCL-backend task generators: vocabularies, the scenario shape and the task builder.

Each BFCL environment folder (``tool_envs/envs/<name>/generate.py``) draws its own scenarios with these and
registers ``generate_tasks`` in its ``env.json`` (``generator``); :mod:`tool_envs.bfcl_train` mixes all of
them (plus a two-backend scenario). :func:`check_contamination` refuses a set that overlaps BFCL's test data.
"""
from __future__ import annotations

import functools
import json
import random
import re
from typing import Callable, Iterable, Mapping

from tool_envs.bfcl import MULTI_TURN_CATEGORIES, bfcl_env_name, load_bfcl_entries, parse_gt_turn
from tool_envs.registry import env_for_task
from tool_envs.tasks import Task
from tool_envs.types import ToolCall

C = ToolCall
#: ``(backend classes, initial config, [(user request, ground-truth calls)] per turn)``.
Scenario = tuple[list[str], dict, list[tuple[str, list[ToolCall]]]]
ScenarioFn = Callable[[random.Random], Scenario]

WORDS = ["amber", "birch", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "juniper", "kelp", "lumen", "maple", "nimbus", "onyx", "prairie", "quartz", "russet", "sierra", "tundra"]
PEOPLE = ["Priya", "Mateo", "Yuki", "Oluwaseun", "Ingrid", "Tomasz", "Leila", "Anders", "Chiara", "Kwame"]
TOPICS = ["quarterly plan", "garden party", "bike repair", "book club", "server migration", "team lunch", "lab results", "flight delay"]


def scenario_tasks(scenarios: Mapping[str, ScenarioFn], n: int, seed: int | str = 0) -> list[Task]:
    """``n`` tasks cycling through ``scenarios`` in order, deterministic in ``seed``."""
    names = list(scenarios)
    rng = random.Random(f"bfcl-train:{seed}")
    return [scenario_task(f"bfcl_train_{seed}_{i}_{names[i % len(names)]}", names[i % len(names)],
                          scenarios[names[i % len(names)]](rng), seed) for i in range(n)]


def split_seed(seed: int, split: str) -> int | str:
    """The train split keeps ``seed``; any other split draws from its own stream."""
    if split not in ("train", "heldout"):
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    return seed if split == "train" else f"{seed}:{split}"


def _result_failed(content: str, error: bool) -> bool:
    if error:
        return True
    try:
        obj = json.loads(content)
    except (json.JSONDecodeError, TypeError):
        return False
    return isinstance(obj, dict) and "error" in obj


def scenario_task(task_id: str, kind: str, scenario: Scenario, seed: int | str) -> Task:
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
