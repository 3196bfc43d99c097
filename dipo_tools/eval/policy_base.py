"""The policy interface of the eval harnesses, and what every policy shares.

A :class:`Policy` answers a single-turn :class:`~dipo_tools.eval.prompts.Request` with the assistant's raw
text (``complete``) and, for multi-turn episodes run by ``tool_envs.runner.run_episode``, provides a
token-level ``GenerateFn`` (``make_generate``) plus the tokenizer whose chat template renders the
conversation. The policies: ``policies`` (self-tests, and the public names), ``endpoint`` (an
OpenAI-compatible server), ``hf_policy`` (an in-process transformers model).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from tool_envs.parsing import format_tool_calls
from tool_envs.types import ToolCall

from dipo_tools.eval.prompts import PromptConfig, Request

GenerateFn = Callable[[list[int], dict], Awaitable[tuple[list[int], list[float]]]]


def _format_calls(calls: list[tuple[str, dict]], cfg: PromptConfig) -> str:
    """Assistant text carrying ``calls`` in the mode's wire format (written by ``tool_envs.parsing``)."""
    body = format_tool_calls([ToolCall(n, a) for n, a in calls], cfg.tool_format) if calls else ""
    if cfg.mode == "toolrl":
        think = "<think> I should use the appropriate tool. </think>\n"
        return think + body if calls else think + "<response> Done. </response>"
    return body if calls else "Done."


def template_fingerprint(tokenizer) -> dict[str, Any]:
    tpl = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    if isinstance(tpl, dict):  # some tokenizers carry several named templates
        tpl = tpl.get("default") or json.dumps(tpl, sort_keys=True)
    return {
        "chat_template_sha256": hashlib.sha256(tpl.encode()).hexdigest()[:16] if tpl else None,
        "tokenizer": getattr(tokenizer, "name_or_path", None) if tokenizer is not None else None,
    }

class Policy:
    """Base class. Subclasses set ``kind`` and implement ``complete``; multi-turn needs ``tokenizer`` and
    ``make_generate``."""

    kind = "base"
    tokenizer: Any = None
    #: how many requests may run at once (endpoints profit from concurrency, local models do not)
    concurrency: int = 1

    def complete(self, request: Request) -> str:
        raise NotImplementedError

    def make_generate(self, task: Any) -> GenerateFn:
        raise NotImplementedError(f"the {self.kind} policy cannot run multi-turn episodes")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, **template_fingerprint(self.tokenizer)}

    def close(self) -> None:
        pass


def _eos_ids(tokenizer) -> list[int]:
    ids = []
    for tok in ("<|im_end|>",):
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int) and i != getattr(tokenizer, "unk_token_id", None) and i >= 0:
            ids.append(i)
    if not ids and tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def _default_tokenizer():
    """The offline tiny tokenizer (self-test policies without ``--tokenizer``)."""
    # imported here: dipo_tools.models loads transformers and torch (seconds), which only this path needs
    from dipo_tools.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@dataclass
class SamplingConfig:
    """Decoding settings shared by the endpoint and transformers policies.

    Attributes:
        temperature: 0 = greedy (bfcl's leaderboard uses 0.001; greedy is reproducible, sampling is needed
            for mean@k / maj@k in the math harness).
        top_p: nucleus sampling mass (1.0 = off).
        max_tokens: new tokens per assistant step; too small truncates calls, too large wastes time on
            runaway generations.
        seed: sampling seed (endpoints that support it; local sampling).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 1024
    seed: int | None = 0

    def as_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "seed": self.seed}
