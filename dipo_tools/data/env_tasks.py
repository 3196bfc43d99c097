"""Environment tasks (``tool_envs`` Task JSONL) → verl parquet rows for the multi-turn tool agent loop.

Each row carries everything the agent loop needs, so environments come from data, not code:

* ``agent_name`` — ``dipo_tool_agent`` (our loop, :mod:`dipo_tools.verl_ext.agent_loop`);
* ``extra_info.task`` — the whole task as a JSON string (initial state, user turns, ground truth);
  a string because per-task states have different shapes and parquet needs one schema per column;
* ``extra_info.env`` — a schema-file path or registered environment name, or null to let
  ``tool_envs.env_for_task`` compose the task's own ``envs`` (BFCL tasks use several backends);
* ``prompt`` — the first user turn (and system prompt) so verl can length-filter and log the row.
"""
from __future__ import annotations

import json
import pathlib
from typing import Any

from tqdm import tqdm

from dipo_tools.data.common import DataPrepError, read_records, write_verl_parquet

TOOL_AGENT_NAME = "dipo_tool_agent"
ENV_DATA_SOURCE = "tool_env"


def env_task_row(task: dict[str, Any], index: int, *, env: str | None, data_source: str, split: str,
                 where: str) -> dict[str, Any]:
    """One task dict (the Task JSONL schema) as a verl row."""
    for key in ("id", "turns"):
        if key not in task:
            raise DataPrepError(f"{where}: task is missing field {key!r}; see tool_envs/tasks.py for the schema")
    turns = task["turns"]
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], list) or not turns[0]:
        raise DataPrepError(f"{where}: field 'turns' must be a non-empty list of user-message lists")
    messages = []
    if task.get("system_prompt"):
        messages.append({"role": "system", "content": str(task["system_prompt"])})
    for m in turns[0]:
        if not isinstance(m, dict) or "content" not in m:
            raise DataPrepError(f"{where}: turns[0] messages need 'role' and 'content'")
        messages.append({"role": str(m.get("role", "user")), "content": str(m["content"])})
    if env is None and not task.get("envs"):
        raise DataPrepError(f"{where}: task has no 'envs' and no --env was given; name the environment")
    return {
        # routes reward.compute_score to the episode scorer; the task's own source stays in extra_info
        "data_source": data_source,
        "prompt": messages,
        "ability": "tool_use",
        # the multi-turn scorer reads the task itself; the string keeps verl's reward_model contract
        "reward_model": {"style": "rule", "ground_truth": json.dumps(task.get("ground_truth"), sort_keys=True)},
        "extra_info": {"index": index, "split": split, "task_id": str(task["id"]), "env": env,
                       "source": str(task.get("source") or ""),
                       "task": json.dumps(task, sort_keys=True)},
        "agent_name": TOOL_AGENT_NAME,
    }


def prepare_env_tasks(src: str | pathlib.Path, out: str | pathlib.Path, *, env: str | None = None,
                      data_source: str = ENV_DATA_SOURCE, split: str = "train",
                      limit: int | None = None) -> pathlib.Path:
    """Convert a Task JSONL (or JSON list) file to one verl parquet file."""
    tasks = _load(src)
    if limit is not None:
        tasks = tasks[:limit]
    rows = [env_task_row(_as_dict(t, f"{src} task {i}"), i, env=env, data_source=data_source, split=split,
                         where=f"{src} task {i}")
            for i, t in enumerate(tqdm(tasks, desc="tasks", disable=len(tasks) < 500))]
    return write_verl_parquet(rows, out)


def _load(src: str | pathlib.Path) -> list[Any]:
    """Tasks via ``tool_envs.load_tasks`` (full validation, ``file:line`` errors) for JSONL files."""
    if str(src).endswith(".jsonl") and pathlib.Path(src).exists():
        from tool_envs.tasks import TaskError, load_tasks

        try:
            return load_tasks(src)
        except TaskError as exc:
            raise DataPrepError(str(exc)) from exc
    return read_records(src)


def _as_dict(task: Any, where: str) -> dict[str, Any]:
    if hasattr(task, "to_dict"):
        return task.to_dict()
    if not isinstance(task, dict):
        raise DataPrepError(f"{where}: expected a JSON object per task, got {type(task).__name__}")
    return task
