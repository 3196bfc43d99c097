"""``dipo env validate``: the static checks of :mod:`tool_envs.validate`, then every task **replayed**.

Replaying plays a task's ground-truth calls as the model's answer through the same episode runner and
reward (:mod:`reward.multi_turn`) that training uses; the ground truth must pass its own check. It lives
here, above the environments, because it needs the reward. Every problem is one
:class:`tool_envs.validate.Problem`; one file failing (even to import) never stops the others.
"""
from __future__ import annotations

import asyncio
import json
import pathlib
from typing import Any, Sequence

from reward.oracle import arun_oracle
from tool_envs.chat import ChatRenderer
from tool_envs.oracle import TextTokenizer
from tool_envs.registry import env_for_task, registered
from tool_envs.schema import load_spec
from tool_envs.tasks import Task
from tool_envs.validate import Problem, final_state_problems, read_task_lines, static_task_problems, validate_schema_file

#: Oracle episodes replayed at the same time (they overlap their worker round trips).
CONCURRENCY = 64


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
