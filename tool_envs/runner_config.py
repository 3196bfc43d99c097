"""How one episode is rolled out: :class:`RunnerConfig`, the limits and formats of :mod:`tool_envs.runner`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from dipo_tools.config_utils import dataclass_from_mapping
from tool_envs.parsing import FORMATS


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
            user message of its own. ``None``: the environment hook's (BFCL's fixed sentence for the BFCL
            environments, a neutral one otherwise); set it to try another wording everywhere.
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
    reveal_message: str | None = None
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
