"""The ground truth as a policy: scripted episodes through the real runner, and tasks completed by execution.

* :class:`TextTokenizer` — a character-level tokenizer with the tiny model's ChatML tool template. It is
  enough for :func:`tool_envs.runner.run_episode` to replay scripted conversations (validation, the
  ``--policy oracle`` player) without loading ``transformers``; nothing is trained on it.
* :func:`oracle_generate` — a ``generate`` function that writes each turn's ground-truth calls as one
  assistant message, then a short final answer, exactly as the CPU engine's warm-up does.
* :func:`oracle_runner_config` — runner limits for such replays. Scoring them is :mod:`reward.oracle`.
* :func:`with_final_state` — a task whose ``ground_truth.final_state`` is computed by executing its
  ground-truth calls, so nobody writes final states by hand.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import re
from typing import Any, Sequence

import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dipo_tools.models.tiny import CHAT_TEMPLATE, SPECIAL_TOKENS  # core layer: the tiny model's tool template
from tool_envs.bfcl import replay_ground_truth
from tool_envs.parsing import format_tool_calls
from tool_envs.runner import RunnerConfig
from tool_envs.tasks import Task

#: What the oracle says after a turn's calls (the message that ends the turn).
FINAL_TEXT = "Done."


class TextTokenizer:
    """One id per character, plus one id per special token (``<|im_start|>``, ``<|im_end|>``, ...).

    Implements the part of the Hugging Face tokenizer interface the episode runner uses: ``chat_template``,
    ``apply_chat_template(tokenize=False)``, ``encode``/``decode``, ``eos_token_id``, ``pad_token_id``.
    Round-trips any text exactly.
    """

    def __init__(self) -> None:
        self.chat_template = CHAT_TEMPLATE
        self.specials = list(SPECIAL_TOKENS)
        self._special_id = {t: i for i, t in enumerate(self.specials)}
        self._split = re.compile("(" + "|".join(re.escape(t) for t in sorted(self.specials, key=len, reverse=True)) + ")")
        self.eos_token = "<|im_end|>"
        self.eos_token_id = self._special_id[self.eos_token]
        self.pad_token_id = self._special_id["<|endoftext|>"]
        self._template = _compile(self.chat_template)

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:  # noqa: ARG002 - HF signature
        n = len(self.specials)
        ids: list[int] = []
        for piece in self._split.split(text):
            if piece in self._special_id:
                ids.append(self._special_id[piece])
            else:
                ids.extend(n + ord(c) for c in piece)
        return ids

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
        return {"input_ids": self.encode(text, add_special_tokens)}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        n = len(self.specials)
        return "".join(("" if skip_special_tokens else self.specials[i]) if i < n else chr(i - n) for i in ids)

    def apply_chat_template(self, messages, tools=None, tokenize=False, add_generation_prompt=False, **kwargs):
        text = self._template.render(messages=list(messages), tools=tools, add_generation_prompt=add_generation_prompt, **kwargs)
        return self.encode(text) if tokenize else text


@functools.lru_cache(maxsize=4)
def _compile(template: str):
    """Compile as ``transformers`` does (sandboxed, trim/lstrip blocks, its ``tojson``)."""
    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    return env.from_string(template)


def oracle_script(task: Task, tool_format: str = "hermes", final_text: str = FINAL_TEXT) -> list[str]:
    """The assistant messages of an oracle episode: per turn, its ground-truth calls (if any), then the closing
    reply: the task's ``metadata.reference_reply`` when it has one (e.g. ``Answer: 161`` for a math-scored task),
    else ``final_text``."""
    closing = (task.metadata or {}).get("reference_reply") or final_text
    texts = []
    for turn in task.gt_calls or [[] for _ in task.turns]:
        if turn:
            texts.append(format_tool_calls(turn, tool_format))
        texts.append(closing)
    return texts


def oracle_generate(tokenizer: Any, task: Task, tool_format: str = "hermes", final_text: str = FINAL_TEXT):
    """A runner ``generate`` that plays :func:`oracle_script` (then ``final_text`` forever), log-probs 0."""
    queue = oracle_script(task, tool_format, final_text)

    async def generate(ids: list[int], params: dict) -> tuple[list[int], list[float]]:  # noqa: ARG001
        text = queue.pop(0) if queue else final_text
        new = list(tokenizer(text, add_special_tokens=False)["input_ids"]) + [tokenizer.eos_token_id]
        return new, [0.0] * len(new)

    return generate


def oracle_runner_config(tool_format: str = "hermes") -> Any:
    """Runner limits for oracle replays: the environment's own limits, no token budget in the way."""
    return RunnerConfig(tool_format=tool_format, max_response_tokens=10**9, max_assistant_turns=10**6)


def with_final_state(task: Task) -> Task:
    """A copy of ``task`` whose ``ground_truth.final_state`` is the state after its ground-truth calls.

    The calls run in a fresh in-process episode (they are the task author's, so trusted), revealing held-out
    tools at their turn, and the state is ``Episode.state()`` (every backend's public attributes).
    """
    if task.gt_calls is None:
        raise ValueError(f"task {task.id!r} has no ground_truth.calls to execute")
    episode, _ = replay_ground_truth(task, isolation="thread")
    return dataclasses.replace(task, ground_truth={**task.ground_truth, "final_state": episode.state()})
