"""Prompt modes for evaluation: how a BFCL request is shown to the model and how its reply is decoded.

Two modes (BFCL scores move by many points with the prompt, so the mode, the system prompt and the chat
template are recorded in every report):

* ``qwen`` — Qwen native function calling: the tools go to the chat template (``apply_chat_template(...,
  tools=...)`` or the server's ``tools=`` field) and calls come back as hermes ``<tool_call>{json}</tool_call>``.
* ``toolrl`` — the ToolRL prompt (peers.md Part B): tools listed in the system prompt, the user request
  wrapped as dialogue history, calls as one ``{"name", "parameters"}`` JSON per line inside ``<tool_call>``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from tool_envs.bfcl_schema import bfcl_doc_to_tool, sanitize_name  # the one BFCL → JSON Schema converter

from tool_envs.parsing import ToolCallParseError, parse_tool_calls

PROMPT_MODES = ("qwen", "toolrl")

TOOLRL_SYSTEM_TEMPLATE = (
    "You are a helpful multi-turn dialogue assistant capable of leveraging tool calls to solve user tasks "
    "and provide structured chat responses.\n\n"
    "**Available Tools**\nIn your response, you can use the following tools:\n{tools}\n\n"
    "**Steps for Each Turn**\n"
    "1. **Think:** Recall relevant context and analyze the current user goal.\n"
    "2. **Decide on Tool Usage:** If a tool is needed, specify the tool and its parameters.\n"
    "3. **Respond Appropriately:** If a response is needed, generate one while maintaining consistency "
    "across user queries.\n\n"
    "**Output Format**\n```plaintext\n<think> Your thoughts and reasoning </think>\n<tool_call>\n"
    '{{"name": "Tool name", "parameters": {{"Parameter name": "Parameter content", "... ...": "... ..."}}}}\n'
    '{{"name": "... ...", "parameters": {{"... ...": "... ...", "... ...": "... ..."}}}}\n...\n</tool_call>\n'
    "<response> AI's final response </response>\n```\n\n"
    "**Important Notes**\n"
    "1. You must always include the `<think>` field to outline your reasoning. Provide at least one of "
    "`<tool_call>` or `<response>`. Decide whether to use `<tool_call>` (possibly multiple times), "
    "`<response>`, or both.\n"
    "2. You can invoke multiple tool calls simultaneously in the `<tool_call>` fields. Each tool call should "
    'be a JSON object with a "name" field and an "parameters" field containing a dictionary of parameters. '
    'If no parameters are needed, leave the "parameters" field an empty dictionary.\n'
    "3. Refer to the previous dialogue records in the history, including the user's queries, previous "
    "`<tool_call>`, `<response>`, and any tool feedback noted as `<obs>` (if exists)."
)


def toolrl_system_prompt(docs: list[dict]) -> str:
    lines = []
    for i, d in enumerate(docs, 1):
        props = (d.get("parameters") or {}).get("properties", {})
        lines.append(f"{i}. Name: {d['name']}\nDescription: {d.get('description', '')}\nParameters: {json.dumps(props)}")
    return TOOLRL_SYSTEM_TEMPLATE.format(tools="\n".join(lines))


def toolrl_user_content(text: str) -> str:
    return f"**Dialogue Records History**\n<user> {text} </user>"


@dataclass
class PromptConfig:
    """How requests are rendered and replies decoded.

    Attributes:
        mode: ``qwen`` (native function calling through the chat template; what a Qwen checkpoint served by
            vLLM with ``--tool-call-parser hermes`` sees) or ``toolrl`` (the ToolRL training prompt; use it for
            checkpoints trained on it — a model scores very differently under the prompt it was not trained on).
        system_prompt: extra system prompt for ``qwen`` mode (None = the template's default). In ``toolrl`` mode
            the system prompt is generated from the tools and this field is ignored.
        sanitize_names: replace ``.`` in tool names by ``_`` before showing them (needed by strict OpenAI-style
            servers; names are mapped back before scoring). Off by default: Qwen's template and vLLM accept dots,
            and renaming changes what the model sees.
    """

    mode: str = "qwen"
    system_prompt: str | None = None
    sanitize_names: bool = False

    def __post_init__(self) -> None:
        if self.mode not in PROMPT_MODES:
            raise ValueError(f"prompt mode {self.mode!r} is not one of {PROMPT_MODES} (option --prompt-mode)")

    @property
    def tool_format(self) -> str:
        """The ``tool_envs.parsing`` format used to decode replies."""
        return "hermes" if self.mode == "qwen" else "toolrl"


@dataclass
class Request:
    """One single-turn request: what a policy needs to answer, plus bookkeeping for oracles and reports."""

    id: str
    category: str
    messages: list[dict]                       # chat messages (system first when the mode uses one)
    tools: list[dict] | None                   # OpenAI tool schemas for the template/server; None in toolrl mode
    name_map: dict[str, str] = field(default_factory=dict)   # shown name -> bfcl name
    docs: list[dict] = field(default_factory=list)


def build_request(entry: dict, category: str, cfg: PromptConfig) -> Request:
    """Render a single-turn bfcl entry. bfcl's question is ``[[messages]]`` (one turn)."""
    docs = entry.get("function", [])
    turn = [dict(m) for m in entry["question"][0]]
    name_map = {(sanitize_name(d["name"]) if cfg.sanitize_names else d["name"]): d["name"] for d in docs}
    if cfg.mode == "qwen":
        # ``any`` shown as ``string``, as bfcl-eval's own prompts do: scores stay comparable with its harness
        tools = [bfcl_doc_to_tool(d, sanitize=cfg.sanitize_names, untyped_as="string") for d in docs]
        msgs = turn
        if cfg.system_prompt and not any(m["role"] == "system" for m in turn):
            msgs = [{"role": "system", "content": cfg.system_prompt}] + turn
        return Request(entry["id"], category, msgs, tools, name_map, docs)
    shown = [dict(d, name=n) for n, d in zip(name_map, docs)]
    # bfcl single-turn questions may carry their own system message; ToolRL has one system prompt, so fold
    # any extra system text into the history.
    user_text = "\n".join(m["content"] for m in turn if m["role"] != "system")
    extra_sys = "\n".join(m["content"] for m in turn if m["role"] == "system")
    system = toolrl_system_prompt(shown) + (f"\n\n{extra_sys}" if extra_sys else "")
    return Request(entry["id"], category, [{"role": "system", "content": system},
                                           {"role": "user", "content": toolrl_user_content(user_text)}],
                   None, name_map, docs)


class DecodeError(ValueError):
    pass


def decode_calls(text: str, cfg: PromptConfig, name_map: dict[str, str] | None = None) -> list[dict]:
    """Reply text → bfcl's decoded form ``[{name: {arg: value}}]`` ([] when the reply has no call).

    Raises DecodeError when the reply tries to call but cannot be parsed (bfcl: "failed to decode")."""
    try:
        calls = parse_tool_calls(text or "", cfg.tool_format)
    except ToolCallParseError as e:
        raise DecodeError(str(e)) from e
    name_map = name_map or {}
    return [{name_map.get(c.name, c.name): dict(c.arguments)} for c in calls]
