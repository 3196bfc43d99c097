"""Oracle episodes scored: a task's ground truth played through the training runner and reward.

``dipo env play --policy oracle`` and :mod:`reward.validate` use it; the scripted policy itself
(:func:`tool_envs.oracle.oracle_generate`) lives with the environments.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from reward.multi_turn import score_episode
from tool_envs.oracle import TextTokenizer, oracle_generate, oracle_runner_config
from tool_envs.registry import env_for_task
from tool_envs.runner import run_episode
from tool_envs.tasks import Task


@dataclasses.dataclass
class OracleRun:
    """An oracle episode and its reward (``reward.multi_turn.MultiTurnResult``)."""

    task: Task
    trajectory: Any
    reward: Any


async def arun_oracle(task: Task, env: Any = None, tokenizer: Any = None, config: Any = None, renderer: Any = None,
                      reward_config: Any = None) -> OracleRun:
    """Play ``task``'s ground truth through :func:`tool_envs.runner.run_episode` and score it with
    ``reward.multi_turn.score_episode``, the runner and reward that training uses."""
    env = env if env is not None else env_for_task(task)
    tokenizer = tokenizer or TextTokenizer()
    config = config or oracle_runner_config()
    traj = await run_episode(tokenizer=tokenizer, env=env, task=task, generate=oracle_generate(tokenizer, task, config.tool_format),
                             config=config, renderer=renderer)
    return OracleRun(task, traj, score_episode(traj, task, config=reward_config))


def run_oracle(task: Task, env: Any = None, **kwargs: Any) -> OracleRun:
    """Blocking :func:`arun_oracle`."""
    return asyncio.run(arun_oracle(task, env, **kwargs))
