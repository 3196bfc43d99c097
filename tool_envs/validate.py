"""Checks behind ``dipo env validate``: schema files against their backends, task files by replaying them.

A schema file is checked field by field (``env_schema.json``), then against its backend class: the class
imports, every tool is a public method, every schema parameter is one the method accepts and every
required method parameter is in the schema (:func:`tool_envs.schema.backend_problems`); for
``isolation: process`` the backend must also pickle.

A task file is checked line by line, then every task is **replayed**: its ground-truth calls are played as
the model's answer through the same episode runner and reward (``reward.multi_turn``) that training uses,
and the ground truth must pass its own check. Before that, each task's fields are checked against its
environment: ``initial_state`` keys the environment does not have (and initial states its backend
rejects), ``ground_truth.final_state`` keys and attributes the backend's state does not have, and
ground-truth calls whose tools or arguments break the schema.

Every problem is one :class:`Problem` (file:line, task id, field, what is wrong and how to fix it); one file
failing (even to import) never stops the others from being checked.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import pathlib
import pickle
from typing import Any, Sequence

from tool_envs.executor import ArgumentError
from tool_envs.schema import SchemaError, backend_problems, load_spec
from tool_envs.tasks import Task, TaskError

#: Oracle episodes replayed at the same time (they overlap their worker round trips).
CONCURRENCY = 64


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, written as ``where: task 'id': field: problem. Fix: fix``."""

    where: str
    field: str
    problem: str
    fix: str
    task_id: str | None = None

    def __str__(self) -> str:
        task = f" task {self.task_id!r}:" if self.task_id is not None else ""
        return f"{self.where}:{task} {self.field}: {self.problem}. Fix: {self.fix}"


def _from_schema_error(e: SchemaError) -> Problem:
    return Problem(e.file, e.path, e.problem, e.fix)


# --- schema files ------------------------------------------------------------------------------------


def validate_schema_file(path: str | pathlib.Path) -> tuple[Any, list[Problem]]:
    """``(spec or None, problems)`` of one schema file; never raises."""
    path = pathlib.Path(path)
    try:
        spec = load_spec(path, check_backend=False)
    except SchemaError as e:
        return None, [_from_schema_error(e)]
    except Exception as e:  # noqa: BLE001 - e.g. an unreadable file: report it, check the others
        return None, [Problem(str(path), "$", f"cannot be read ({type(e).__name__}: {e})", "fix the file")]
    if spec.backend is None:
        return spec, []
    try:
        problems = [_from_schema_error(e) for e in backend_problems(spec.backend, list(spec.tools), str(path))]
    except Exception as e:  # noqa: BLE001 - importing user code can raise anything
        return spec, [Problem(str(path), "$.backend.class", f"importing {spec.backend.class_path!r} raised {type(e).__name__}: {e}",
                              "fix the backend module so that it imports")]
    if not problems and spec.isolation == "process":
        problems += _pickle_problems(spec, str(path))
    return spec, problems


def _pickle_problems(spec: Any, where: str) -> list[Problem]:
    """Process isolation sends the backend's state to worker processes: a fresh instance must pickle."""
    try:
        instance = spec.backend.load_class()()
    except Exception:  # noqa: BLE001 - needs arguments or state: the task replays will show any problem
        return []
    try:
        pickle.loads(pickle.dumps(instance))
    except Exception as e:  # noqa: BLE001
        return [Problem(where, "$.isolation", f"a {spec.backend.class_name} cannot be pickled ({type(e).__name__}: {e}), and "
                        "process isolation sends the backend's state to a worker process with every request",
                        "make its attributes picklable (or define __getstate__/__setstate__), or set `isolation: thread` for a trusted backend")]
    return []


# --- task files --------------------------------------------------------------------------------------


def read_task_lines(path: str | pathlib.Path) -> tuple[list[tuple[int, Task]], list[Problem]]:
    """Every well-formed task with its line number, and a problem for every malformed line."""
    path = pathlib.Path(path)
    if not path.is_file():
        return [], [Problem(str(path), "$", "file not found", "pass an existing .jsonl task file")]
    tasks, problems, seen = [], [], {}
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as e:
                problems.append(Problem(where, "$", f"not valid JSON ({e.msg} at column {e.colno})", "one JSON object per line"))
                continue
            try:
                task = Task.from_dict(raw, where)
            except TaskError as e:
                fld, _, rest = str(e)[len(where) + 2:].partition(": ")
                problem, _, fix = rest.partition(". Fix: ")
                problems.append(Problem(where, fld, problem, fix, raw.get("id") if isinstance(raw, dict) else None))
                continue
            if task.id in seen:
                problems.append(Problem(where, "id", f"duplicate id {task.id!r} (first on line {seen[task.id]})", "make ids unique", task.id))
                continue
            seen[task.id] = lineno
            tasks.append((lineno, task))
    return tasks, problems


def static_task_problems(task: Task, env: Any, where: str) -> list[Problem]:
    """Problems of one task that need its environment but no episode."""
    out = []

    def bad(fld: str, problem: str, fix: str) -> None:
        out.append(Problem(where, fld, problem, fix, task.id))

    keys = {s.name for s in env.specs} | {s.backend.class_name for s in env.specs if s.backend is not None}
    for key in task.initial_state:
        if key not in keys:
            bad(f"initial_state.{key}", f"no environment or backend class named {key!r} in this task's envs {task.envs}",
                f"key the initial state by one of {sorted(keys)}")
    for t, calls in enumerate(task.gt_calls or []):
        for k, call in enumerate(calls):
            fld = f"ground_truth.calls[{t}][{k}]"
            if call.name not in env._owner:
                bad(fld, f"unknown tool {call.name!r} for envs {task.envs}", f"use one of {sorted(env.tool_names)}")
                continue
            validator = env._validators[call.name]
            if validator.mode == "off" or "__args__" in call.arguments:
                continue
            try:
                validator.check(call.arguments)
            except ArgumentError as e:
                bad(f"{fld}.arguments", str(e), "correct the ground truth so that it fits the tool's parameters (the model is held to them)")
    return out


def final_state_problems(task: Task, state: dict, where: str) -> list[Problem]:
    """``ground_truth.final_state`` keys and attributes that ``Episode.state()`` of this task never has."""
    expected = task.gt_final_state
    if not expected:
        return []
    out = []
    for key, value in expected.items():
        if key not in state:
            out.append(Problem(where, f"ground_truth.final_state.{key}", f"the episode state has no {key!r}",
                               f"key the final state like Episode.state(): one of {sorted(state)}", task.id))
        elif isinstance(value, dict) and isinstance(state[key], dict):
            for attr in value:
                if attr not in state[key]:
                    out.append(Problem(where, f"ground_truth.final_state.{key}.{attr}", f"{key} has no public attribute {attr!r}",
                                       f"use its attributes: {sorted(state[key])} (or build final states with `dipo env build-tasks`)", task.id))
    return out


def _diff(expected: Any, actual: Any, path: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [d for k, v in expected.items() for d in _diff(v, actual.get(k), f"{path}.{k}" if path else str(k))]
    return [] if expected == actual else [f"{path}: expected {json.dumps(expected)[:60]}, got {json.dumps(actual, default=str)[:60]}"]


def _replay_problem(run: Any, where: str) -> Problem | None:
    """Why the ground truth fails its own check, or None when it passes."""
    r, traj, task = run.reward, run.trajectory, run.task
    if r.success:
        return None
    errors = [f"{res.name}: {res.content[:120]}" for turn in traj.turns for step in turn for res in step.results if res.error]
    detail = f"{r.error_type}: {r.error_message}" if r.error_type else "it does not succeed"
    bad_turns = [tc for tc in r.per_turn if tc.passed is False]
    if bad_turns:
        tc = bad_turns[0]
        extra = tc.state_differences or tc.missing_responses[:2]
        detail += f" (turn {tc.turn}{': ' + ', '.join(map(str, extra)) if extra else ''})"
    if r.final_state_ok is False:
        diffs = _diff(task.gt_final_state, traj.final_state)
        detail += f" ({'; '.join(diffs[:3])})"
    if traj.stop_reason != "done":
        detail += f"; the episode stopped early ({traj.stop_reason})"
    if errors:
        detail += f"; ground-truth calls returned errors: {' | '.join(errors[:2])}"
    return Problem(where, "ground_truth", f"the ground truth fails its own check: {detail}",
                   "correct the calls or final_state (`dipo env build-tasks` computes final states), or the environment's limits", task.id)


async def _replay_all(items: list[tuple[str, Task, Any]]) -> list[Problem]:
    from tool_envs.oracle import TextTokenizer, arun_oracle
    from tool_envs.chat import ChatRenderer

    tok = TextTokenizer()
    renderer = ChatRenderer(tok)
    sem = asyncio.Semaphore(CONCURRENCY)

    async def one(where: str, task: Task, env: Any) -> list[Problem]:
        async with sem:
            try:
                episode = env.new_episode(task)
            except Exception as e:  # noqa: BLE001 - the backend's init hook rejected the initial state
                b = next((s.backend for s in env.specs if s.backend is not None), None)
                hook = f"{b.class_name}.{b.init_method}" if b is not None and b.init_method else "the backend"
                return [Problem(where, "initial_state", f"{hook} rejects it ({type(e).__name__}: {e})",
                                "give the state the backend expects (see its init method)", task.id)]
            problems = final_state_problems(task, episode.state(), where)
            if task.gt_calls is None and task.gt_final_state is None:
                return problems
            try:
                run = await arun_oracle(task, env, tokenizer=tok, renderer=renderer)
            except Exception as e:  # noqa: BLE001 - anything the runner raises would stop a training batch too
                return problems + [Problem(where, "ground_truth", f"replaying it raised {type(e).__name__}: {e}",
                                           "fix the task or the environment", task.id)]
            p = _replay_problem(run, where)
            return problems + ([p] if p else [])

    results = await asyncio.gather(*[one(*it) for it in items])
    return [p for ps in results for p in ps]


def validate_task_file(path: str | pathlib.Path, replay: bool = True) -> tuple[int, list[Problem]]:
    """``(number of tasks read, problems)`` of one task file; never raises."""
    from tool_envs.registry import env_for_task

    lines, problems = read_task_lines(path)
    env_errors: dict[str, Problem] = {}
    to_replay = []
    for lineno, task in lines:
        where = f"{path}:{lineno}"
        try:
            env = env_for_task(task)
        except Exception as e:  # noqa: BLE001 - a broken or missing environment: one report per distinct error
            key = f"{task.envs}: {e}"
            if key not in env_errors:
                env_errors[key] = Problem(where, "envs", f"cannot load {task.envs} ({type(e).__name__}: {str(e).splitlines()[0]})",
                                          "fix the schema file or its backend, or add its folder to --env-path / $TOOL_ENVS_PATH", task.id)
                problems.append(env_errors[key])
            continue
        found = static_task_problems(task, env, where)
        problems += found
        if replay and not any(p.field.startswith("initial_state.") for p in found):
            to_replay.append((where, task, env))
    if to_replay:
        problems += asyncio.run(_replay_all(to_replay))
    return len(lines), problems


def validate_files(paths: Sequence[str | pathlib.Path], replay: bool = True) -> list[tuple[str, str, list[Problem]]]:
    """``(path, summary, problems)`` per file, in the order given. Task files may name the environments of
    the schema files given with them (those are checked first)."""
    from tool_envs.registry import registered

    out = {}
    good = []
    for p in paths:
        if pathlib.Path(p).suffix != ".jsonl":
            spec, problems = validate_schema_file(p)
            summary = f"environment {spec.name!r}, {len(spec.tools)} tools, isolation {spec.isolation}" if spec else ""
            out[str(p)] = (str(p), summary, problems)
            if spec is not None and not problems:
                good.append(load_spec(p))
    with registered(good):
        for p in paths:
            if pathlib.Path(p).suffix == ".jsonl":
                n, problems = validate_task_file(p, replay=replay)
                what = "replayed: the ground truth passes its own check" if replay else "read"
                out[str(p)] = (str(p), f"{n} tasks {what}", problems)
    return [out[str(p)] for p in paths]
