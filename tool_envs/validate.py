"""Static checks behind ``dipo env validate``: schema files against their backends, task lines and fields.

A schema file is checked field by field (``env_schema.json``), then against its backend class: the class
imports, every tool is a public method, every schema parameter is one the method accepts and every
required method parameter is in the schema (:func:`tool_envs.schema.backend_problems`); for
``isolation: process`` the backend must also pickle.

A task file is checked line by line, and each task's fields against its environment: ``initial_state`` keys the environment does not have (and initial states its backend
rejects), ``ground_truth.final_state`` keys and attributes the backend's state does not have, and
ground-truth calls whose tools or arguments break the schema. Replaying every task through the runner and
the reward (the ground truth must pass its own check) sits one layer up, in :mod:`reward.validate`.

Every problem is one :class:`Problem` (file:line, task id, field, what is wrong and how to fix it); one file
failing (even to import) never stops the others from being checked.
"""
from __future__ import annotations

import dataclasses
import pathlib
import pickle
from typing import Any, Sequence

from tool_envs.executor import ArgumentError
from tool_envs.schema import SchemaError, backend_problems, load_spec
from tool_envs.tasks import Task, read_task_file


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
    tasks, errors = read_task_file(path)
    return tasks, [Problem(e.where, e.field, e.problem, e.fix, e.task_id) for e in errors]


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
