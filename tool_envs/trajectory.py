"""What one episode produced: the per-step trace and the token streams (see :mod:`tool_envs.runner`).

The reward scores a :class:`Trajectory` as recorded: per-step results and per-turn state snapshots, so the
model's calls never run a second time.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tool_envs.types import ToolCall, ToolResult

STOP_DONE = "done"
STOP_MAX_TOKENS = "max_response_tokens"
STOP_MAX_STEPS = "max_steps_per_turn"
STOP_MAX_ASSISTANT = "max_assistant_turns"
STOP_REASONS = (STOP_DONE, STOP_MAX_TOKENS, STOP_MAX_STEPS, STOP_MAX_ASSISTANT)


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
    #: ``Episode.snapshot()`` at the end of each entry of ``turns`` (``None`` where the state cannot be
    #: pickled): the reward checks these states instead of running the model's calls again.
    turn_snapshots: list = field(default_factory=list)

    @property
    def turn_calls(self) -> list[list[ToolCall]]:
        """Per user turn, every call the model made (all steps flattened), e.g. for multi-turn rewards."""
        return [[c for step in turn for c in step.calls] for turn in self.turns]

    @property
    def response_text_steps(self) -> list[str]:
        return [s.text for turn in self.turns for s in turn]
