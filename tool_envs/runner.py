"""The one multi-turn episode runner, shared by the CPU engine and verl's agent loop.

``run_episode`` drives a model through a :class:`~tool_envs.tasks.Task` in a
:class:`~tool_envs.env.ToolEnv`: render the prompt with the tokenizer's chat template, generate, parse the
tool calls, execute them in an isolated :class:`~tool_envs.env.Episode`, append the results, and move on
to the next user turn when the model answers without calls. It stops at the limits of
:class:`RunnerConfig`.

Token-in/token-out: ``response_ids`` are exactly the generated ids (mask 1, with their log-probs) and the
rendered tool/user ids between them (mask 0, log-prob 0.0); they end with the last generated id. Generated text is decoded only for parsing;
it is never re-tokenised. See :mod:`tool_envs.chat` for how appended messages are rendered.

Usage::

    traj = await run_episode(tokenizer=tok, env=env, task=task, generate=my_generate,
                             sampling_params={"temperature": 1.0}, config=RunnerConfig())

``generate(token_ids, sampling_params) -> (new_ids, logprobs)`` must return the ids it generated
(including the stop token if it stopped on one) and their log-probs (or ``None``). The runner sets
``sampling_params["max_tokens"]`` for every call to the tokens left in the response budget.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from tool_envs.chat import ChatRenderer
from tool_envs.executor import ERROR_PREFIX
from tool_envs.parsing import ToolCallParseError, parse_tool_calls
from tool_envs.runner_config import RunnerConfig
from tool_envs.tasks import Task
from tool_envs.trajectory import (  # noqa: F401 - re-exported: the runner's public names
    STOP_DONE,
    STOP_MAX_ASSISTANT,
    STOP_MAX_STEPS,
    STOP_MAX_TOKENS,
    STOP_REASONS,
    StepTrace,
    Trajectory,
)
from tool_envs.types import ToolResult

GenerateFn = Callable[[list[int], dict], Awaitable[tuple[list[int], "list[float] | None"]]]

def _tool_message(result: ToolResult) -> dict:
    return {"role": "tool", "name": result.name, "content": result.content}


def _as_task(task: Task | Mapping[str, Any]) -> Task:
    if isinstance(task, Task):
        return task
    if isinstance(task, Mapping):
        return Task.from_dict(task)
    raise TypeError(f"run_episode: task must be a tool_envs.Task or a mapping, got {type(task).__name__}")


def initial_messages(task: Task, config: RunnerConfig, first_turn: list[dict]) -> list[dict]:
    """System message (the task's own, else the config's) followed by the first user turn."""
    system = task.system_prompt if task.system_prompt is not None else config.system_prompt
    return ([{"role": "system", "content": system}] if system is not None else []) + list(first_turn)


def rendered_prompt_length(tokenizer: Any, env: Any, task: Task | Mapping[str, Any],
                           config: RunnerConfig | None = None, renderer: ChatRenderer | None = None) -> int:
    """Tokens of the prompt :func:`run_episode` would start ``task`` with (tool schemas included).

    What data preparation measures to drop tasks that exceed ``rollout.prompt_length``. Tools held out until
    a later turn (BFCL miss_func) are not shown, as in the episode.
    """
    config = config or RunnerConfig()
    task = _as_task(task)
    if renderer is None:
        renderer = ChatRenderer(tokenizer, dict(config.chat_template_kwargs), config.stop_token_ids)
    hidden = {n for names in (task.missed_functions or {}).values() for n in names}
    tools = [t for t in env.tools if t["function"]["name"] not in hidden] if config.pass_tools_to_template else None
    first = [dict(m) for m in task.turns[0]] if task.turns else []
    return len(renderer.prompt_ids(initial_messages(task, config, first), tools))


class EpisodeState(enum.Enum):
    """Where an episode is; :func:`run_episode` calls one handler per state until ``TERMINATED``."""

    PENDING = "pending"                    # render the system prompt, tools and first user turn
    USER_TURN = "user_turn"                # append the next user turn (revealing held-out tools)
    GENERATING = "generating"              # one generation call
    PROCESSING_TOOLS = "processing_tools"  # parse the reply; run its calls or end the user turn
    TURN_DONE = "turn_done"                # snapshot the backend state at the end of the user turn
    TERMINATED = "terminated"


@dataclass
class EpisodeData:
    """Everything one episode carries between states (one object per episode, never shared)."""

    task: Task
    env: Any
    config: RunnerConfig
    renderer: ChatRenderer
    generate: GenerateFn
    episode: Any
    base_params: dict
    max_steps: int
    max_calls: int
    missed: dict[int, list[str]]
    messages: list[dict] = field(default_factory=list)
    prompt_ids: list[int] = field(default_factory=list)
    prompt_truncated: bool = False
    response_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    turns: list[list[StepTrace]] = field(default_factory=list)
    turn_index: int = 0
    num_assistant: int = 0
    num_calls: int = 0
    num_parse_errors: int = 0
    #: Whether the last generated message ended with the template's end token.
    closed: bool = True
    snapshots: list = field(default_factory=list)
    #: ``(num_calls, snapshot)`` of the last snapshot taken: an unchanged state is not pickled again.
    last_snapshot: tuple[int, Any] | None = None
    stop_reason: str = STOP_DONE

    @property
    def steps(self) -> list[StepTrace]:
        """The steps of the current user turn."""
        return self.turns[-1]


def _visible_tools(d: EpisodeData) -> list[dict] | None:
    return list(d.episode.tools) if d.config.pass_tools_to_template else None


def _turn_messages(d: EpisodeData, t: int) -> list[dict]:
    """The user messages of turn ``t``, with tools held out until this turn revealed (BFCL miss_func)."""
    msgs = [dict(m) for m in d.task.turns[t]]
    names = d.missed.get(t)
    if names:
        revealed = set(d.episode.reveal(names))
        schemas = [s for s in d.env.tools if s["function"]["name"] in revealed]
        users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
        if not users:
            message = d.config.reveal_message
            if message is None:
                message = d.env.hook.reveal_message
            msgs.append({"role": "user", "content": message})
            users = [len(msgs) - 1]
        if schemas:
            tools_text = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
            last = msgs[users[-1]]
            last["content"] = d.config.reveal_template.format(message=last["content"], tools=tools_text)
    return msgs


def _append_context(d: EpisodeData, new_messages: list[dict]) -> bool:
    """Render tool/user messages after the last assistant message (mask 0); False if they do not fit."""
    ids = d.renderer.delta_ids(new_messages, _visible_tools(d), d.closed)
    if len(d.response_ids) + len(ids) > d.config.max_response_tokens:
        return False
    d.response_ids.extend(ids)
    d.mask.extend([0] * len(ids))
    d.logprobs.extend([0.0] * len(ids))
    d.messages.extend(new_messages)
    return True


def _snapshot_turn(d: EpisodeData) -> None:
    if not hasattr(d.episode, "snapshot"):
        return
    if d.last_snapshot is None or d.last_snapshot[0] != d.num_calls:
        d.last_snapshot = (d.num_calls, d.episode.snapshot())
    d.snapshots.append(d.last_snapshot[1])


def _stop(d: EpisodeData, reason: str) -> EpisodeState:
    d.stop_reason = reason
    return EpisodeState.TERMINATED


async def _handle_pending(d: EpisodeData) -> EpisodeState:
    d.messages = initial_messages(d.task, d.config, _turn_messages(d, 0) if d.task.turns else [])
    d.prompt_ids = list(d.renderer.prompt_ids(d.messages, _visible_tools(d)))
    cap = d.config.max_prompt_tokens
    d.prompt_truncated = cap is not None and len(d.prompt_ids) > cap
    if d.prompt_truncated:
        d.prompt_ids = d.prompt_ids[-cap:]
    return EpisodeState.USER_TURN


async def _handle_user_turn(d: EpisodeData) -> EpisodeState:
    t = d.turn_index
    if t >= len(d.task.turns):
        return _stop(d, STOP_DONE)
    if t > 0:  # turn 0 is part of the prompt
        new = _turn_messages(d, t)
        if not new:  # an empty turn with nothing to reveal: nothing to answer
            d.turns.append([])
            return EpisodeState.TURN_DONE
        if not _append_context(d, new):
            return _stop(d, STOP_MAX_TOKENS)
    d.turns.append([])
    return EpisodeState.GENERATING


async def _handle_generating(d: EpisodeData) -> EpisodeState:
    cfg = d.config
    if len(d.steps) >= d.max_steps:
        return _stop(d, STOP_MAX_STEPS)
    if d.num_assistant >= cfg.max_assistant_turns:
        return _stop(d, STOP_MAX_ASSISTANT)
    remaining = cfg.max_response_tokens - len(d.response_ids)
    if remaining <= 0:
        return _stop(d, STOP_MAX_TOKENS)
    cap = min(remaining, cfg.max_new_tokens_per_step or remaining)
    params = dict(d.base_params)
    params[cfg.max_tokens_key] = cap
    new_ids, new_lps = await d.generate(d.prompt_ids + d.response_ids, params)
    new_ids = [int(i) for i in new_ids][:cap]  # an engine overshooting max_tokens is cut here
    if new_lps is None:
        new_lps = [0.0] * len(new_ids)
    else:
        new_lps = [float(x) for x in new_lps][: len(new_ids)]
        if len(new_lps) != len(new_ids):
            raise ValueError(f"generate returned {len(new_ids)} ids but {len(new_lps)} log-probs; they must align")
    d.num_assistant += 1
    d.response_ids.extend(new_ids)
    d.mask.extend([1] * len(new_ids))
    d.logprobs.extend(new_lps)
    d.closed = d.renderer.is_closed(new_ids)
    text = d.renderer.decode(d.renderer.strip_stop(new_ids))
    d.messages.append({"role": "assistant", "content": text})
    step = StepTrace(text=text, num_tokens=len(new_ids), stopped=d.renderer.is_stopped(new_ids))
    d.steps.append(step)
    if not step.stopped and len(d.response_ids) >= cfg.max_response_tokens:
        return _stop(d, STOP_MAX_TOKENS)  # cut by the budget: nothing more can be shown to it
    return EpisodeState.PROCESSING_TOOLS


async def _handle_processing_tools(d: EpisodeData) -> EpisodeState:
    step = d.steps[-1]
    try:
        calls = parse_tool_calls(step.text, d.config.tool_format)
    except ToolCallParseError as e:
        # The model sees what was wrong and may retry within this turn.
        step.parse_error = str(e)
        d.num_parse_errors += 1
        message = {"role": "tool", "name": "parse_error", "content": step.parse_error}
        return EpisodeState.GENERATING if _append_context(d, [message]) else _stop(d, STOP_MAX_TOKENS)
    if not calls:
        return EpisodeState.TURN_DONE  # the model answered: this user turn is over
    step.calls = list(calls)
    run = calls[: d.max_calls]
    # Awaited: the calls run on a pool thread or in a worker process, never in the event loop.
    aexecute = getattr(d.episode, "aexecute", None)
    done = await aexecute(run) if aexecute is not None else d.episode.execute(run)
    refused = f"{ERROR_PREFIX}call not executed: at most {d.max_calls} calls per message"
    step.results = done + [ToolResult(c.name, refused, error=True) for c in calls[d.max_calls:]]
    d.num_calls += len(calls)
    if not _append_context(d, [_tool_message(r) for r in step.results]):
        return _stop(d, STOP_MAX_TOKENS)
    return EpisodeState.GENERATING


async def _handle_turn_done(d: EpisodeData) -> EpisodeState:
    _snapshot_turn(d)
    d.turn_index += 1
    return EpisodeState.USER_TURN


_HANDLERS = {
    EpisodeState.PENDING: _handle_pending,
    EpisodeState.USER_TURN: _handle_user_turn,
    EpisodeState.GENERATING: _handle_generating,
    EpisodeState.PROCESSING_TOOLS: _handle_processing_tools,
    EpisodeState.TURN_DONE: _handle_turn_done,
}


def _new_episode_data(task: Task, env: Any, config: RunnerConfig, renderer: ChatRenderer, generate: GenerateFn,
                      sampling_params: Mapping[str, Any] | None) -> EpisodeData:
    limits = getattr(env, "limits", None)
    env_calls = getattr(limits, "max_calls_per_turn", None)
    return EpisodeData(
        task=task, env=env, config=config, renderer=renderer, generate=generate,
        episode=env.new_episode(task, block_hidden=True) if config.block_hidden_tools else env.new_episode(task),
        base_params=dict(sampling_params or {}),
        max_steps=config.max_steps_per_turn or getattr(limits, "max_turns", None) or 16,
        max_calls=min(c for c in (config.max_calls_per_turn, env_calls, 10**9) if c is not None),
        missed={int(k): list(v) for k, v in (task.missed_functions or {}).items()},
    )


def _trajectory(d: EpisodeData) -> Trajectory:
    if len(d.snapshots) < len(d.turns):  # stopped inside a turn: record the state it reached
        _snapshot_turn(d)
    # Context after the last generated token (tool results, a parse-error message and the next assistant
    # header appended before a limit stopped the episode) is seen by no model turn: drop it from the token
    # streams, which trainers pad to their longest row. The messages, the trace and the state keep it.
    while d.mask and d.mask[-1] == 0:
        del d.response_ids[-1], d.mask[-1], d.logprobs[-1]
    return Trajectory(
        prompt_ids=list(d.prompt_ids),
        response_ids=d.response_ids,
        response_mask=d.mask,
        response_logprobs=d.logprobs,
        turns=d.turns,
        final_state=d.episode.state(),
        episode=d.episode,
        num_assistant_turns=d.num_assistant,
        num_tool_calls=d.num_calls,
        num_user_turns=len(d.turns),
        stop_reason=d.stop_reason,
        messages=d.messages,
        num_parse_errors=d.num_parse_errors,
        prompt_truncated=d.prompt_truncated,
        turn_snapshots=d.snapshots if len(d.snapshots) == len(d.turns) else [],
    )


async def run_episode(
    *,
    tokenizer: Any,
    env: Any,
    task: Task | Mapping[str, Any],
    generate: GenerateFn,
    sampling_params: Mapping[str, Any] | None = None,
    config: RunnerConfig | None = None,
    renderer: ChatRenderer | None = None,
) -> Trajectory:
    """Roll out one episode of ``task`` in a fresh episode of ``env``; see the module docstring.

    Args:
        tokenizer: Hugging Face tokenizer with a chat template.
        env: A :class:`~tool_envs.env.ToolEnv` (``env.new_episode(task)`` gives isolated state).
        task: The task (or its dict form).
        generate: Async token-in/token-out generation function.
        sampling_params: Passed to ``generate`` (copied; ``max_tokens`` is set per call).
        config: Limits and formats; :class:`RunnerConfig` defaults when ``None``.
        renderer: A prebuilt :class:`~tool_envs.chat.ChatRenderer` for ``tokenizer`` (saves re-probing the
            template on every episode); built from ``config`` when ``None``.

    Never raises for anything the model generates: malformed calls become tool-role error messages and
    tool failures error results. Errors of ``generate`` itself (infrastructure) propagate.
    """
    config = config or RunnerConfig()
    task = _as_task(task)
    if renderer is None:
        renderer = ChatRenderer(tokenizer, dict(config.chat_template_kwargs), config.stop_token_ids)
    data = _new_episode_data(task, env, config, renderer, generate, sampling_params)
    state = EpisodeState.PENDING
    while state is not EpisodeState.TERMINATED:
        state = await _HANDLERS[state](data)
    return _trajectory(data)
