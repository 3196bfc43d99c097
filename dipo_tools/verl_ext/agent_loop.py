"""verl agent loop ``dipo_tool_agent``: one environment episode per trajectory, run by our episode runner.

verl's ``AgentLoopWorker`` instantiates this class per trajectory and calls ``run(sampling_params,
**row)`` with the dataset row's fields. The row says what to run (``dipo data prepare tasks`` writes it):

* ``extra_info.task`` — the task as JSON (``tool_envs.Task``: initial state, user turns, ground truth);
* ``extra_info.env`` — a schema file or registered environment name; when null the task's own ``envs``
  are composed (``tool_envs.env_for_task``; BFCL tasks use several backends).

The loop runs ``tool_envs.runner.run_episode`` with verl's LLM server client as the token-in/token-out
``generate``, scores the finished episode with ``reward.multi_turn.score_episode`` and returns an
``AgentLoopOutput`` whose ``reward_score`` is set, so verl's reward loop is skipped for these rows. The
binary verdict goes to ``extra_fields["reward_extra_info"]["acc"]`` where the DiPO trainer reads it.

Settings (top-level ``dipo_agent`` section of the training config)::

    dipo_agent:
      runner: {tool_format: hermes, max_assistant_turns: 16, ...}   # tool_envs.runner.RunnerConfig fields
      reward: {}                                                   # reward.multi_turn config fields

``runner.max_response_tokens`` defaults to ``actor_rollout_ref.rollout.response_length`` and
``runner.max_prompt_tokens`` to ``rollout.prompt_length``: an over-long rendered prompt is cut (verl's rule,
keep the end) before the first generation, never after the episode, and counted in ``prompt_truncated``.

Like verl's own loops, the output's ``extra_fields`` carry what the server client returned with the first
generation, with ``max_global_steps`` raised to the last one's: verl's TransferQueue worker turns
``min_global_steps`` / ``max_global_steps`` into the tags the trainer's metrics read.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Any, Mapping
from uuid import uuid4

from omegaconf import DictConfig, OmegaConf
from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register
from verl.utils.profiler import simple_timer

from reward.multi_turn import score_episode
from tool_envs import Task, env_for_task, load_env
from tool_envs.runner import RunnerConfig, run_episode

AGENT_NAME = "dipo_tool_agent"
logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))

#: Reward keys always present in ``reward_extra_info`` (verl stacks them per batch: every row needs the same
#: keys, so optional components such as ``call_score`` stay in ``extra_fields["episode_reward"]`` only).
REWARD_INFO_KEYS = ("score", "acc", "state_ok", "response_ok", "turn_pass_rate", "force_terminated")


def merge_server_extra_fields(merged: dict[str, Any], new: Mapping[str, Any]) -> None:
    """Fold one generation's ``TokenOutput.extra_fields`` into the episode's, as verl's ToolAgentLoop does:
    the first output's fields are kept, ``max_global_steps`` follows the latest weights version."""
    if not merged:
        merged.update(new)
        return
    if new.get("max_global_steps") is not None:
        merged["max_global_steps"] = new["max_global_steps"]


class TaskRowError(ValueError):
    """A dataset row the loop cannot run; names the field and the fix."""


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def runner_config_from(trainer_config: Any) -> Any:
    """``RunnerConfig`` from ``dipo_agent.runner``, with the response budget taken from the rollout config."""
    section = _plain(trainer_config.get("dipo_agent", None)) or {}
    values = dict(section.get("runner") or {})
    values.setdefault("max_response_tokens", int(trainer_config.actor_rollout_ref.rollout.response_length))
    values.setdefault("max_prompt_tokens", int(trainer_config.actor_rollout_ref.rollout.prompt_length))
    try:
        return RunnerConfig.from_mapping(values)
    except (TypeError, ValueError) as exc:
        raise TaskRowError(f"dipo_agent.runner: {exc}") from exc


def task_and_env_from_row(extra_info: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """The ``Task`` and ``ToolEnv`` a dataset row names (see the module docstring)."""
    extra_info = dict(extra_info or {})
    raw = extra_info.get("task")
    if raw is None:
        raise TaskRowError(
            "row for agent 'dipo_tool_agent' has no extra_info.task; build the parquet with "
            "`dipo data prepare tasks TASKS.jsonl OUT.parquet`"
        )
    try:
        task_dict = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except json.JSONDecodeError as exc:
        raise TaskRowError(f"extra_info.task is not valid JSON ({exc.msg}); rebuild the parquet") from exc
    task = Task.from_dict(task_dict)
    env_name = extra_info.get("env")
    env = load_env(env_name) if env_name else env_for_task(task)
    return task, env


def _float_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (bool, int, float))}


@register(AGENT_NAME)
class DiPOToolAgentLoop(AgentLoopBase):
    """Multi-turn tool episodes in ``tool_envs`` environments (see the module docstring)."""

    def __init__(self, *args, **kwargs):
        kwargs.pop("tools", None)  # verl's BaseTool list: our environments bring their own tools
        super().__init__(*args, **kwargs)
        self.runner_config = runner_config_from(self.config)
        self.reward_config = (_plain(self.config.get("dipo_agent", None)) or {}).get("reward") or None
        self.response_length = int(self.rollout_config.response_length)

    async def run(self, sampling_params: dict[str, Any], **kwargs) -> AgentLoopOutput:
        task, env = task_and_env_from_row(kwargs.get("extra_info"))
        request_id = uuid4().hex  # one sticky session per episode (prefix caching across turns)
        timing: dict[str, float] = {}
        server_fields: dict[str, Any] = {}

        async def generate(token_ids: list[int], params: dict) -> tuple[list[int], list[float] | None]:
            with simple_timer("generate_sequences", timing):
                out = await self.server_manager.generate(
                    request_id=request_id, prompt_ids=token_ids, sampling_params=params
                )
            merge_server_extra_fields(server_fields, out.extra_fields or {})
            return list(out.token_ids), (list(out.log_probs) if out.log_probs else None)

        traj = await run_episode(
            tokenizer=self.tokenizer,
            env=env,
            task=task,
            generate=generate,
            sampling_params=dict(sampling_params),
            config=self.runner_config,
        )
        with simple_timer("compute_score", timing):
            result = score_episode(traj, task, config=self.reward_config)

        success = bool(result.success)
        episode_reward = _float_metrics(result.metrics()) if hasattr(result, "metrics") else {}
        episode_reward.setdefault("score", float(result.score))
        episode_reward["acc"] = float(success)
        reward_extra_info = {k: float(episode_reward.get(k, 0.0)) for k in REWARD_INFO_KEYS}
        reward_extra_info.update(
            num_assistant_turns=float(traj.num_assistant_turns),
            num_tool_calls=float(traj.num_tool_calls),
            num_user_turns=float(traj.num_user_turns),
            num_parse_errors=float(traj.num_parse_errors),
            truncated=float(traj.stop_reason != "done"),
            prompt_truncated=float(traj.prompt_truncated),
        )
        if traj.prompt_truncated:
            logger.warning("task %s: rendered prompt exceeds rollout.prompt_length=%d; kept its last tokens "
                           "(drop such tasks at data preparation: dipo data prepare tasks --tokenizer ...)",
                           task.id, self.rollout_config.prompt_length)
        n = self.response_length
        return AgentLoopOutput(
            prompt_ids=list(traj.prompt_ids),
            response_ids=traj.response_ids[:n],
            response_mask=traj.response_mask[:n],
            response_logprobs=traj.response_logprobs[:n],
            reward_score=float(result.score),
            # user + assistant + tool messages, as verl counts turns
            num_turns=traj.num_user_turns + traj.num_assistant_turns + traj.num_tool_calls,
            metrics=AgentLoopMetrics(
                generate_sequences=timing.get("generate_sequences", 0.0),
                compute_score=timing.get("compute_score", 0.0),
            ),
            extra_fields={
                **server_fields,
                "reward_extra_info": reward_extra_info,
                "episode_reward": episode_reward,
                "success": success,
                "stop_reason": traj.stop_reason,
                "task_id": task.id,
                "turn_scores": [],
                "tool_rewards": [],
            },
        )
