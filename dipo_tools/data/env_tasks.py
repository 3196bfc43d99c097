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
from tool_envs import Task, env_for_task, load_env
from tool_envs.runner import rendered_prompt_length
from tool_envs.tasks import TaskError, load_tasks

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
                      limit: int | None = None, tokenizer: Any = None, max_prompt_length: int | None = None,
                      runner_config: Any = None, stats: dict | None = None) -> pathlib.Path:
    """Convert a Task JSONL (or JSON list) file to one verl parquet file.

    With ``tokenizer`` and ``max_prompt_length`` (verl's ``data.max_prompt_length``), tasks whose prompt, as
    the episode runner renders it with the tool schemas (``runner_config``: a ``RunnerConfig``), is longer are
    dropped: in training their prompt would be cut, losing the system prompt and tools. verl's own
    ``filter_overlong_prompts`` cannot see the tool schemas. ``stats`` (if given) receives ``written`` and
    ``dropped_long``.
    """
    tasks = _load(src)
    if limit is not None:
        tasks = tasks[:limit]
    dicts = [_as_dict(t, f"{src} task {i}") for i, t in enumerate(tasks)]
    keep = list(range(len(dicts)))
    if tokenizer is not None and max_prompt_length is not None:
        keep = [i for i in keep if task_prompt_length(tokenizer, dicts[i], env, runner_config) <= max_prompt_length]
    rows = [env_task_row(dicts[i], j, env=env, data_source=data_source, split=split, where=f"{src} task {i}")
            for j, i in enumerate(tqdm(keep, desc="tasks", disable=len(keep) < 500))]
    if not rows:
        raise DataPrepError(f"{src}: no task left to write (dropped {len(dicts)} over {max_prompt_length} prompt "
                            "tokens); raise --max-prompt-length (and data.max_prompt_length) or shorten the tasks")
    if stats is not None:
        stats.update(written=len(rows), dropped_long=len(dicts) - len(keep))
    return write_verl_parquet(rows, out)


def task_prompt_length(tokenizer: Any, task: dict[str, Any], env: str | None = None, runner_config: Any = None) -> int:
    """Tokens of ``task``'s first prompt as the episode runner renders it (tool schemas included)."""
    parsed = Task.from_dict(task)
    return rendered_prompt_length(tokenizer, load_env(env) if env else env_for_task(parsed), parsed, runner_config)


def _load(src: str | pathlib.Path) -> list[Any]:
    """Tasks via ``tool_envs.load_tasks`` (full validation, ``file:line`` errors) for JSONL files."""
    if str(src).endswith(".jsonl") and pathlib.Path(src).exists():
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
