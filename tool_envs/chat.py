"""Chat-template rendering for token-in/token-out multi-turn rollouts.

The episode runner never re-tokenises what the model generated. It needs two things from the chat
template:

* the **initial prompt** (system + tools + first user turn + generation prompt), tokenised once, and
* the **delta** for messages appended later (tool results, the next user turn): the tokens that follow
  the model's own end-of-message token up to and including the next generation prompt.

Chat templates are not append-only (Qwen3 drops the reasoning of earlier assistant messages), so the delta
is not cut out of a re-rendering of the whole conversation. Instead it is rendered after a *fixed dummy
conversation* ``[user, assistant(SENTINEL)]``: the text after the sentinel in ``dummy + new_messages`` is
the assistant's closing suffix (``<|im_end|>\\n`` for ChatML) followed by the new messages and the
generation prompt. When the model ended its message with the end-of-message token, only the rest of the
suffix (``\\n``) is added; when generation was cut by a length limit, the whole suffix is added, so the next
message is always well-formed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

_SENTINEL = "\u2063DIPO\u2063ASSISTANT\u2063SENTINEL\u2063"  # invisible separators: never in real text
_DUMMY_USER = "\u2063DIPO\u2063USER\u2063"


class ChatTemplateError(ValueError):
    """The tokenizer's chat template cannot be used for token-in/token-out rollouts (message says why)."""


@dataclass
class ChatRenderer:
    """Renders prompts and appended-message deltas with a Hugging Face tokenizer's chat template.

    Attributes:
        tokenizer: A ``transformers`` tokenizer with a chat template.
        chat_template_kwargs: Extra variables for the template (e.g. ``{"enable_thinking": False}`` for
            Qwen3). They must be the same for the whole rollout and for training-time re-rendering.
        stop_token_ids: Token ids that end an assistant message when generated (the engine's stop set).
            ``None`` means: the first token of the template's assistant suffix (``<|im_end|>``) plus the
            tokenizer's ``eos_token_id``.
    """

    tokenizer: Any
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    stop_token_ids: Sequence[int] | None = None

    def __post_init__(self) -> None:
        if not getattr(self.tokenizer, "chat_template", None):
            raise ChatTemplateError(
                f"{type(self.tokenizer).__name__} has no chat_template; load a chat/instruct tokenizer or set "
                "tokenizer.chat_template"
            )
        base = self.render(self._dummy(), tools=None, add_generation_prompt=False)
        at = base.find(_SENTINEL)
        if at < 0:
            raise ChatTemplateError("the chat template drops assistant content; it cannot be used for rollouts")
        #: Text the template puts after an assistant message's content (e.g. "<|im_end|>\n").
        self.assistant_suffix = base[at + len(_SENTINEL) :]
        suffix_ids = self.encode(self.assistant_suffix)
        self._end_id = suffix_ids[0] if suffix_ids else None
        #: ``assistant_suffix`` minus its first token, which the model generates itself (e.g. "\n").
        self.suffix_rest = self.tokenizer.decode(suffix_ids[1:]) if suffix_ids else ""
        if self.encode(self.suffix_rest) != suffix_ids[1:]:
            raise ChatTemplateError(
                f"the assistant suffix {self.assistant_suffix!r} does not split cleanly after its first token"
            )
        stops = set(self.stop_token_ids or ())
        if self.stop_token_ids is None:
            if self._end_id is not None:
                stops.add(self._end_id)
            eos = getattr(self.tokenizer, "eos_token_id", None)
            for e in eos if isinstance(eos, (list, tuple)) else [eos]:
                if isinstance(e, int):
                    stops.add(e)
        self.stops = frozenset(stops)

    # ------------------------------------------------------------------------------------------------
    def render(self, messages: Sequence[dict], tools: Sequence[dict] | None, add_generation_prompt: bool) -> str:
        """The template's text for ``messages`` (never tokenised by the template itself)."""
        try:
            return self.tokenizer.apply_chat_template(
                list(messages),
                tools=list(tools) if tools else None,
                tokenize=False,
                add_generation_prompt=add_generation_prompt,
                **self.chat_template_kwargs,
            )
        except Exception as e:  # jinja errors: bad message shapes or a template that needs other fields
            roles = [m.get("role") for m in messages]
            raise ChatTemplateError(f"chat template failed on messages with roles {roles}: {e}") from e

    def encode(self, text: str) -> list[int]:
        # Specials such as <|im_start|> are written in the text by the template, so no extra BOS/EOS.
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, messages: Sequence[dict], tools: Sequence[dict] | None) -> list[int]:
        """Token ids of the initial prompt, ending with the generation prompt."""
        return self.encode(self.render(messages, tools, add_generation_prompt=True))

    def delta_text(self, new_messages: Sequence[dict], tools: Sequence[dict] | None, closed: bool) -> str:
        """Text to append after an assistant message for ``new_messages`` plus the generation prompt.

        Args:
            new_messages: Tool and/or user messages to append.
            tools: The tools the template was given for the prompt (some templates render them per turn).
            closed: Whether the assistant message ended with the end-of-message token (then only the rest
                of the suffix is added; otherwise the whole suffix, closing the cut message).
        """
        full = self.render(self._dummy() + list(new_messages), tools, add_generation_prompt=True)
        at = full.find(_SENTINEL)
        if at < 0 or full.count(_SENTINEL) != 1:
            raise ChatTemplateError("the chat template re-renders assistant content unexpectedly")
        after = full[at + len(_SENTINEL) :]
        if not after.startswith(self.assistant_suffix):
            raise ChatTemplateError(
                "the chat template changes how an assistant message ends when messages follow it "
                f"({after[:40]!r} does not start with {self.assistant_suffix!r}); token-in/token-out needs a fixed suffix"
            )
        tail = after[len(self.assistant_suffix) :]
        return (self.suffix_rest if closed else self.assistant_suffix) + tail

    def delta_ids(self, new_messages: Sequence[dict], tools: Sequence[dict] | None, closed: bool) -> list[int]:
        return self.encode(self.delta_text(new_messages, tools, closed))

    def is_stopped(self, generated: Sequence[int]) -> bool:
        """Whether generation stopped on a stop token (rather than a length limit)."""
        return bool(generated) and generated[-1] in self.stops

    def is_closed(self, generated: Sequence[int]) -> bool:
        """Whether generated ids end with the template's own end-of-message token (``<|im_end|>``).

        A message stopped by another stop token (e.g. ``<|endoftext|>``) is not closed: the full suffix is
        added after it so the conversation stays well-formed.
        """
        return bool(generated) and self._end_id is not None and generated[-1] == self._end_id

    def strip_stop(self, generated: Sequence[int]) -> list[int]:
        ids = list(generated)
        return ids[:-1] if ids and ids[-1] in self.stops else ids

    def decode(self, ids: Sequence[int]) -> str:
        # Keep special tokens: <tool_call> and <think> are specials in Qwen tokenizers and must be parsed.
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    @staticmethod
    def _dummy() -> list[dict]:
        return [{"role": "user", "content": _DUMMY_USER}, {"role": "assistant", "content": _SENTINEL}]
