"""Small value types shared by the parser, the executor, the episode runner and the rewards.

They live in one module so that every part of the stack hands over the same objects:
``parse_tool_calls`` produces ``ToolCall``s, ``Episode.execute`` turns them into ``ToolResult``s, and the
episode runner records both in a ``StepTrace``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolCall:
    """One parsed call: a tool name and its keyword arguments (JSON-like values only, never code)."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": dict(self.arguments)}


@dataclass(frozen=True)
class ToolResult:
    """What one call returned, as the text the model will see.

    ``error`` is True when the call was refused or raised (unknown tool, invalid arguments, timeout,
    exception); ``content`` then holds a message written for the model.
    """

    name: str
    content: str
    error: bool = False
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "content": self.content, "error": self.error, "truncated": self.truncated}
