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

import json
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping

from tool_envs.chat import ChatRenderer
from tool_envs.parsing import FORMATS, ToolCallParseError, parse_tool_calls
from tool_envs.tasks import Task
from tool_envs.types import ToolCall, ToolResult
from dipo_tools.config_utils import dataclass_from_mapping

GenerateFn = Callable[[list[int], dict], Awaitable[tuple[list[int], "list[float] | None"]]]

#: BFCL's fixed user message for a miss_func turn whose question is empty.
BFCL_REVEAL_MESSAGE = "I have updated some more functions you can choose from. What about now?"

STOP_DONE = "done"
STOP_MAX_TOKENS = "max_response_tokens"
STOP_MAX_STEPS = "max_steps_per_turn"
STOP_MAX_ASSISTANT = "max_assistant_turns"
STOP_REASONS = (STOP_DONE, STOP_MAX_TOKENS, STOP_MAX_STEPS, STOP_MAX_ASSISTANT)


@dataclass
class RunnerConfig:
    """How one episode is rolled out.

    Attributes:
        tool_format: How the model writes calls: ``"hermes"`` (Qwen ``<tool_call>`` JSON), ``"toolrl"`` (one
            JSON per line in one block) or ``"python"`` (BFCL ``[f(a=1)]``). Must match the training data
            and the system prompt; see :mod:`tool_envs.parsing`.
        max_assistant_turns: Generation calls per episode, over all user turns. Bounds rollout cost on a
            looping policy; too low cuts legitimate multi-step BFCL episodes (ground truth uses up to ~10
            steps per turn across up to 8 turns).
        max_steps_per_turn: Generation calls per user turn; ``None`` uses the environment's
            ``limits.max_turns``. BFCL force-terminates after 20; hitting the limit ends the episode
            (stop reason ``max_steps_per_turn``) as BFCL does.
        max_response_tokens: Budget for all response ids (generated + tool/user tokens), i.e. verl's
            ``rollout.response_length``. Larger allows longer episodes but costs memory quadratically in
            training; when it runs out the episode stops (``max_response_tokens``).
        max_new_tokens_per_step: Cap on one generation call (``None``: the remaining budget). A smaller cap
            stops a rambling step early; a step cut by it is closed and parsed like any other.
        max_calls_per_turn: Calls executed from one assistant message; the rest get an error result.
            ``None`` uses the environment's ``limits.max_calls_per_turn`` (the stricter one always wins).
        system_prompt: System message when the task has none (a task's own ``system_prompt`` wins).
            ``None`` lets the chat template decide (Qwen adds its tools preamble).
        pass_tools_to_template: Give the visible tool schemas to ``apply_chat_template(tools=...)``. Turn
            off when the system prompt already lists the tools (ToolRL data does).
        chat_template_kwargs: Extra template variables, e.g. ``{"enable_thinking": False}`` for Qwen3. Use
            the same values at evaluation.
        reveal_message: User message for a turn that reveals held-out tools (BFCL miss_func) but has no
            user message of its own; defaults to BFCL's fixed sentence.
        reveal_template: How revealed tools are shown: appended to that turn's last user message, with
            ``{message}`` and ``{tools}`` (one JSON schema per line) placeholders. The system prompt is
            already tokenised, so new tools must travel in the conversation (as BFCL's prompting mode does).
        block_hidden_tools: Refuse calls to tools not yet revealed (miss_func) as unknown. Default False
            is BFCL's behaviour: a held-out tool runs if the model guesses its name.
        stop_token_ids: Ids that end an assistant message; ``None``: the template's end token and EOS.
        max_tokens_key: Sampling-parameter name the runner sets to the tokens left (``max_tokens`` for
            vLLM/SGLang; the local engine reads the same key).
        max_prompt_tokens: Cap on the rendered initial prompt (system prompt, tool schemas, first turn).
            A longer prompt keeps its last ``max_prompt_tokens`` tokens, verl's rule, **before** the first
            generation, so the model is trained on the context it saw; ``Trajectory.prompt_truncated`` says
            so. ``None``: no cap. Drop over-long tasks at data preparation instead where you can: a cut
            prompt loses its system prompt and tools.
    """

    tool_format: str = "hermes"
    max_assistant_turns: int = 32
    max_steps_per_turn: int | None = None
    max_response_tokens: int = 4096
    max_new_tokens_per_step: int | None = None
    max_calls_per_turn: int | None = None
    system_prompt: str | None = None
    pass_tools_to_template: bool = True
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    reveal_message: str = BFCL_REVEAL_MESSAGE
    reveal_template: str = "{message}\n\nNew functions are now available:\n<tools>\n{tools}\n</tools>"
    block_hidden_tools: bool = False
    stop_token_ids: list[int] | None = None
    max_tokens_key: str = "max_tokens"
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.tool_format not in FORMATS:
            raise ValueError(f"RunnerConfig.tool_format={self.tool_format!r}; choose one of {', '.join(FORMATS)}")
        for name in ("max_assistant_turns", "max_response_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"RunnerConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_steps_per_turn", "max_new_tokens_per_step", "max_calls_per_turn", "max_prompt_tokens"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ValueError(f"RunnerConfig.{name} must be >= 1 or None, got {v}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> "RunnerConfig":
        """Build from a config mapping (e.g. a hydra/omegaconf node); unknown keys are an error."""
        return dataclass_from_mapping(cls, data)


@dataclass
class StepTrace:
    """One assistant message: its text, the calls parsed from it and their results.

    ``parse_error`` holds the message sent back to the model when the calls were malformed (then
    ``calls`` and ``results`` are empty). ``stopped`` is False when generation was cut by a length limit.
    """

    text: str
    calls: list[ToolCall] = field(default_factory=list)
    results: list[ToolResult] = field(default_factory=list)
    parse_error: str | None = None
    num_tokens: int = 0
    stopped: bool = True


@dataclass
class Trajectory:
    """Everything one episode produced (see the module docstring for the token layout).

    ``turns[t]`` lists the assistant steps of user turn ``t``; fewer entries than the task has turns means
    the episode stopped early (``stop_reason``).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    response_mask: list[int]
    response_logprobs: list[float]
    turns: list[list[StepTrace]]
    final_state: dict
    episode: Any
    num_assistant_turns: int
    num_tool_calls: int
    num_user_turns: int
    stop_reason: str
    messages: list[dict] = field(default_factory=list)
    num_parse_errors: int = 0
    prompt_truncated: bool = False

    @property
    def turn_calls(self) -> list[list[ToolCall]]:
        """Per user turn, every call the model made (all steps flattened), e.g. for multi-turn rewards."""
        return [[c for step in turn for c in step.calls] for turn in self.turns]

    @property
    def response_text_steps(self) -> list[str]:
        return [s.text for turn in self.turns for s in turn]


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


class _Stop(Exception):
    """Internal: end the episode with ``reason``."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


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
    episode = env.new_episode(task, block_hidden=True) if config.block_hidden_tools else env.new_episode(task)
    limits = getattr(env, "limits", None)
    max_steps = config.max_steps_per_turn or getattr(limits, "max_turns", None) or 16
    env_calls = getattr(limits, "max_calls_per_turn", None)
    max_calls = min(c for c in (config.max_calls_per_turn, env_calls, 10**9) if c is not None)
    missed = {int(k): list(v) for k, v in (task.missed_functions or {}).items()}
    base_params = dict(sampling_params or {})

    def visible_tools() -> list[dict] | None:
        return list(episode.tools) if config.pass_tools_to_template else None

    def turn_messages(t: int) -> list[dict]:
        """The user messages of turn ``t``, with tools held out until this turn revealed (BFCL miss_func)."""
        msgs = [dict(m) for m in task.turns[t]]
        names = missed.get(t)
        if names:
            revealed = set(episode.reveal(names))
            schemas = [s for s in env.tools if s["function"]["name"] in revealed]
            users = [i for i, m in enumerate(msgs) if m.get("role") == "user"]
            if not users:
                msgs.append({"role": "user", "content": config.reveal_message})
                users = [len(msgs) - 1]
            if schemas:
                tools_text = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
                last = msgs[users[-1]]
                last["content"] = config.reveal_template.format(message=last["content"], tools=tools_text)
        return msgs

    # --- initial prompt: system + tools + first turn ------------------------------------------------
    messages = initial_messages(task, config, turn_messages(0) if task.turns else [])
    prompt_ids = renderer.prompt_ids(messages, visible_tools())
    prompt_truncated = config.max_prompt_tokens is not None and len(prompt_ids) > config.max_prompt_tokens
    if prompt_truncated:
        prompt_ids = list(prompt_ids)[-config.max_prompt_tokens:]

    response_ids: list[int] = []
    mask: list[int] = []
    logprobs: list[float] = []
    turns: list[list[StepTrace]] = []
    n_assistant = n_calls = n_errors = 0
    closed = True  # whether the last generated message ended with the template's end token

    def append_context(new_messages: list[dict]) -> None:
        """Render tool/user messages after the last assistant message (mask 0), or stop if they do not fit."""
        ids = renderer.delta_ids(new_messages, visible_tools(), closed)
        if len(response_ids) + len(ids) > config.max_response_tokens:
            raise _Stop(STOP_MAX_TOKENS)
        response_ids.extend(ids)
        mask.extend([0] * len(ids))
        logprobs.extend([0.0] * len(ids))
        messages.extend(new_messages)

    stop_reason = STOP_DONE
    try:
        for t in range(len(task.turns)):
            steps: list[StepTrace] = []
            if t > 0:
                new = turn_messages(t)
                if not new:  # an empty turn with nothing to reveal: nothing to answer
                    turns.append(steps)
                    continue
                append_context(new)
            turns.append(steps)
            while True:
                if len(steps) >= max_steps:
                    raise _Stop(STOP_MAX_STEPS)
                if n_assistant >= config.max_assistant_turns:
                    raise _Stop(STOP_MAX_ASSISTANT)
                remaining = config.max_response_tokens - len(response_ids)
                if remaining <= 0:
                    raise _Stop(STOP_MAX_TOKENS)
                cap = min(remaining, config.max_new_tokens_per_step or remaining)
                params = dict(base_params)
                params[config.max_tokens_key] = cap
                new_ids, new_lps = await generate(list(prompt_ids) + response_ids, params)
                new_ids = [int(i) for i in new_ids][:cap]  # an engine overshooting max_tokens is cut here
                if new_lps is None:
                    new_lps = [0.0] * len(new_ids)
                else:
                    new_lps = [float(x) for x in new_lps][: len(new_ids)]
                    if len(new_lps) != len(new_ids):
                        raise ValueError(
                            f"generate returned {len(new_ids)} ids but {len(new_lps)} log-probs; they must align"
                        )
                n_assistant += 1
                response_ids.extend(new_ids)
                mask.extend([1] * len(new_ids))
                logprobs.extend(new_lps)
                closed = renderer.is_closed(new_ids)
                text = renderer.decode(renderer.strip_stop(new_ids))
                messages.append({"role": "assistant", "content": text})
                step = StepTrace(text=text, num_tokens=len(new_ids), stopped=renderer.is_stopped(new_ids))
                steps.append(step)
                if not step.stopped and len(response_ids) >= config.max_response_tokens:
                    raise _Stop(STOP_MAX_TOKENS)  # cut by the budget: nothing more can be shown to it
                try:
                    calls = parse_tool_calls(text, config.tool_format)
                except ToolCallParseError as e:
                    # The model sees what was wrong and may retry within this turn.
                    step.parse_error = str(e)
                    n_errors += 1
                    append_context([{"role": "tool", "name": "parse_error", "content": step.parse_error}])
                    continue
                if not calls:
                    break  # the model answered: this user turn is over
                step.calls = list(calls)
                step.results = episode.execute(calls[:max_calls]) + [
                    ToolResult(c.name, f"Error during execution: call not executed: at most {max_calls} calls per message", error=True)
                    for c in calls[max_calls:]
                ]
                n_calls += len(calls)
                append_context([_tool_message(r) for r in step.results])
    except _Stop as s:
        stop_reason = s.reason
    # Context after the last generated token (tool results, a parse-error message and the next assistant
    # header appended before a limit stopped the episode) is seen by no model turn: drop it from the token
    # streams, which trainers pad to their longest row. The messages, the trace and the state keep it.
    while mask and mask[-1] == 0:
        del response_ids[-1], mask[-1], logprobs[-1]

    return Trajectory(
        prompt_ids=list(prompt_ids),
        response_ids=response_ids,
        response_mask=mask,
        response_logprobs=logprobs,
        turns=turns,
        final_state=episode.state(),
        episode=episode,
        num_assistant_turns=n_assistant,
        num_tool_calls=n_calls,
        num_user_turns=len(turns),
        stop_reason=stop_reason,
        messages=messages,
        num_parse_errors=n_errors,
        prompt_truncated=prompt_truncated,
    )
